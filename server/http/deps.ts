import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AuditLog } from '../audit/log.js';
import type { AuditSigner } from '../audit/signer.js';
import type { JwtMethod } from '../auth/jwt-login.js';
import type { AppRoleMethod, UserpassMethod } from '../auth/logins.js';
import type { AuthService } from '../auth/service.js';
import type { ByokService } from '../keys/byok.js';
import type { SealManager } from '../keys/seal.js';
import type { SecretsEngine } from '../secrets/engine.js';
import type { RewrapJobs } from '../secrets/rewrap.js';
import type { Store } from '../store/db.js';
import type { LoginLimitSettings } from './login-limits.js';
import type { Replication } from '../replication/node.js';
import type { TransitEngine } from '../transit/engine.js';
import type { VaultSettings } from './vault/mounts.js';

/** Everything the HTTP layer needs, built by main.ts (or a test) and handed to createApp. */
export interface AppDeps {
  store: Store;
  seal: SealManager;
  secrets: SecretsEngine;
  transit: TransitEngine;
  byok: ByokService;
  access: AuthService;
  logins: { userpass: UserpassMethod; approle: AppRoleMethod; jwt: JwtMethod };
  rewrap: RewrapJobs;
  audit: AuditLog;
  auditSigner: AuditSigner;
  log: Logger;
  metrics: Registry;
  version: string;
  /** Failed logins per minute per client address and per userpass user (config `login_failures_per_minute`, `login_user_failures_per_minute`; defaults 60 and 10). */
  loginLimits?: LoginLimitSettings;
  /** Peers (IPs or CIDRs) whose X-Forwarded-For names the client (config `trusted_proxies`; default none). */
  trustedProxies?: string[];
  /** Serve /v1/sys/metrics without a token (config `metrics_public`). */
  metricsPublic?: boolean;
  /** Set by main.ts on SIGTERM: health answers 503 draining and responses close their connections. */
  lifecycle?: { draining: boolean };
  /** The Vault-compatible mounts (config `vault_kv_mounts`, `vault_jwt_mounts`; default `secret` and `jwt`). */
  vault?: VaultSettings;
  /** Replication role, status and promotion (absent: a standalone server). */
  replication?: Replication;
}

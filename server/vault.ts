import type { Logger } from 'pino';
import { AuditLog, type AuditOptions } from './audit/log.js';
import { AuditSigner } from './audit/signer.js';
import { initializeVault, type Initialized } from './auth/bootstrap.js';
import { Directory } from './auth/directory.js';
import { JwtMethod } from './auth/jwt-login.js';
import { AppRoleMethod, UserpassMethod } from './auth/logins.js';
import { AuthService } from './auth/service.js';
import { TokenService, type TokenOptions } from './auth/tokens.js';
import { createApp, type App, type AppDeps } from './http/app.js';
import { auditSinkMetrics, createMetrics } from './http/metrics.js';
import { DEFAULT_VAULT_SETTINGS } from './http/vault/mounts.js';
import { ByokService } from './keys/byok.js';
import type { KeyringOptions } from './keys/keyring.js';
import type { RootKeySource } from './keys/root-key.js';
import { SealManager, type VaultStore } from './keys/seal.js';
import type { Replication } from './replication/node.js';
import { SecretsEngine, type SecretsOptions } from './secrets/engine.js';
import { RewrapJobs } from './secrets/rewrap.js';
import type { Store } from './store/db.js';
import { FORMAT_KEY, GROUP_PREFIX, POLICY_PREFIX } from './store/keys.js';
import { TransitEngine } from './transit/engine.js';

/** What the HTTP layer gets beside the engines (config-derived; see server/http/deps.ts). */
export type HttpSettings = Pick<
  AppDeps,
  'version' | 'loginLimits' | 'trustedProxies' | 'metricsPublic' | 'lifecycle' | 'vault'
>;

export interface VaultOptions {
  /** Opened by the caller, which closes it (also when building fails). */
  store: Store;
  source: RootKeySource;
  env: NodeJS.ProcessEnv;
  log: Logger;
  audit: AuditOptions;
  http: HttpSettings;
  /** One clock for every engine (tests move it); default `Date.now`. */
  now?: () => number;
  keyring?: Partial<KeyringOptions>;
  secrets?: Partial<SecretsOptions>;
  tokens?: Omit<TokenOptions, 'now'>;
  /** Opened before the vault (a fresh replica copies the vault's identity first); absent: standalone. */
  replication?: Replication;
  /** Node's process metrics in /v1/sys/metrics (default true; tests leave them out). */
  processMetrics?: boolean;
}

export interface Vault {
  store: Store;
  /** The storage barrier every engine uses (sealed values; refuses while sealed). */
  barrier: VaultStore;
  seal: SealManager;
  secrets: SecretsEngine;
  transit: TransitEngine;
  byok: ByokService;
  rewrap: RewrapJobs;
  audit: AuditLog;
  auditSigner: AuditSigner;
  access: AuthService;
  app: App;
  /** The init sequence (server/auth/bootstrap.ts) on this vault. */
  initialize: (shape: { shares: number; threshold: number }) => Promise<Initialized>;
}

/**
 * The composition root, used by server/main.ts and the tests alike: the seal manager over the
 * store, the engines over its barrier, the audit log (started here), access, and the app. Engines
 * get the barrier only; replication keeps the raw store and ships sealed bytes.
 */
export async function buildVault(options: VaultOptions): Promise<Vault> {
  const { store, log, replication } = options;
  const now = options.now ?? Date.now;
  const seal = new SealManager(store, {
    source: options.source,
    env: options.env,
    log,
    keyring: options.keyring ?? {},
  });
  replication?.attach(seal); // its hooks run in the unseal phases `storage` and `serving`
  const barrier = seal.barrier;
  const secrets = new SecretsEngine(barrier, { now, ...options.secrets });
  const rewrap = new RewrapJobs(barrier, seal, log);
  const transit = new TransitEngine(barrier, now);
  rewrap.handle('transit', () => transit.rewrapKeys());
  const byok = new ByokService(barrier, seal, now);
  const audit = new AuditLog(options.audit);
  await audit.start();
  const auditSigner = new AuditSigner(barrier, seal, audit);
  const directory = new Directory(barrier, seal, (options.http.vault ?? DEFAULT_VAULT_SETTINGS).kvMounts); // loads at unseal
  const access = new AuthService(new TokenService(barrier, seal, { ...options.tokens, now }), directory);
  if (replication) {
    replication.onApplied(async (keys) => {
      const touched = (prefix: string) => keys.some((k) => k === '*' || k.startsWith(prefix));
      if (touched(FORMAT_KEY)) await barrier.refresh(); // the primary's migration to the barrier arrived
      if (touched(POLICY_PREFIX) || touched(GROUP_PREFIX)) await directory.reload();
      // Signing keys, revocations, renewals, the token tree: just the changed keys (`*`: all).
      if (TokenService.STATE_PREFIXES.some(touched)) await access.tokens.applyChanged(keys);
    });
  }
  const metrics = createMetrics(options.processMetrics ?? true);
  replication?.registerMetrics(metrics);
  auditSinkMetrics(metrics, audit);
  const logins = {
    userpass: new UserpassMethod(barrier),
    approle: new AppRoleMethod(barrier, now),
    jwt: new JwtMethod(barrier, log, now),
  };
  const app = createApp({
    ...options.http,
    store,
    seal,
    secrets,
    transit,
    byok,
    access,
    logins,
    rewrap,
    audit,
    auditSigner,
    log,
    metrics,
    ...(replication ? { replication } : {}),
  });
  return {
    store,
    barrier,
    seal,
    secrets,
    transit,
    byok,
    rewrap,
    audit,
    auditSigner,
    access,
    app,
    initialize: (shape) => initializeVault(seal, access.tokens, shape),
  };
}

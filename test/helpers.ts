import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { Express } from 'express';
import { AuditLog, type AuditOptions } from '../server/audit/log.js';
import { AuditSigner } from '../server/audit/signer.js';
import { Directory } from '../server/auth/directory.js';
import { JwtMethod } from '../server/auth/jwt-login.js';
import { AppRoleMethod, UserpassMethod } from '../server/auth/logins.js';
import { AuthService } from '../server/auth/service.js';
import { TokenService } from '../server/auth/tokens.js';
import { createApp, type AppDeps } from '../server/http/app.js';
import { createMetrics } from '../server/http/metrics.js';
import type { KeyringOptions } from '../server/keys/keyring.js';
import type { RootKeySource } from '../server/keys/root-key.js';
import { ByokService } from '../server/keys/byok.js';
import { SealManager, type VaultStore } from '../server/keys/seal.js';
import { SecretsEngine, type SecretsOptions } from '../server/secrets/engine.js';
import { TransitEngine } from '../server/transit/engine.js';
import { RewrapJobs } from '../server/secrets/rewrap.js';
import { Store } from '../server/store/db.js';

export const silentLog = pino({ level: 'silent' });

/** A fresh directory under the OS temp dir; removed by `cleanup`. */
export async function tempDir(prefix = 'coffer-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export interface TestVault {
  dir: string;
  /** The raw store (stored bytes, sealed): what tests tamper with. */
  store: Store;
  /** The storage barrier the engines use. */
  barrier: VaultStore;
  seal: SealManager;
  secrets: SecretsEngine;
  access: AuthService;
  rewrap: RewrapJobs;
  audit: AuditLog;
  auditSigner: AuditSigner;
  /** The vault's audit file. */
  auditFile: string;
  app: Express;
  /** Root token (set once initialized through `initVault`). */
  rootToken: string;
  /** Shares returned by init. */
  shares: string[];
  auth: { Authorization: string };
  /** Closes the store and, unless `keep`, removes the directory. */
  cleanup(keep?: boolean): Promise<void>;
}

export interface VaultOptions {
  dir?: string;
  source?: RootKeySource;
  env?: NodeJS.ProcessEnv;
  keyring?: Partial<KeyringOptions>;
  secrets?: Partial<SecretsOptions>;
  audit?: Partial<AuditOptions>;
  loginLimits?: AppDeps['loginLimits'];
  /** Logger for the app and engines (default: silent). */
  log?: Logger;
  /** Clock for tokens (TTL tests). */
  now?: () => number;
  /** Initialize (and for shamir, unseal) right away: default true. */
  init?: { shares: number; threshold: number } | false;
}

/**
 * A real vault in a temp dir, wired like main.ts but without listening: supertest drives
 * `app` in-process. Default: shamir 3-of-5, initialized and unsealed.
 */
export async function openVault(options: VaultOptions = {}): Promise<TestVault> {
  const dir = options.dir ?? (await tempDir());
  const store = await Store.open(join(dir, 'db'));
  const seal = new SealManager(store, { source: options.source ?? { kind: 'shamir' }, env: options.env ?? {}, keyring: options.keyring ?? {}, log: options.log ?? silentLog });
  const audit = new AuditLog({ files: [join(dir, 'audit.log')], headFile: join(dir, 'audit.head'), stdout: false, checkpointEvery: 50, timeoutMs: 2_000, now: Date.now, ...options.audit });
  await audit.start().catch(async (e: unknown) => {
    await store.close(); // a refused start (a truncated log) must not leave the store locked
    throw e;
  });
  const barrier = seal.barrier;
  const auditSigner = new AuditSigner(barrier, seal, audit);
  const directory = new Directory(barrier, seal);
  const access = new AuthService(new TokenService(barrier, seal, options.now ?? Date.now), directory);
  const secrets = new SecretsEngine(barrier, options.secrets ?? {});
  const log = options.log ?? silentLog;
  const rewrap = new RewrapJobs(barrier, seal, log);
  const logins = { userpass: new UserpassMethod(barrier), approle: new AppRoleMethod(barrier, options.now ?? Date.now), jwt: new JwtMethod(barrier, log, options.now ?? Date.now) };
  const transit = new TransitEngine(barrier, options.now ?? Date.now);
  const byok = new ByokService(barrier, seal, options.now ?? Date.now);
  const app = createApp({ store, seal, secrets, transit, byok, access, logins, rewrap, audit, auditSigner, loginLimits: options.loginLimits, log, metrics: createMetrics(false), version: 'test' });
  const vault: TestVault = {
    dir,
    store,
    barrier,
    seal,
    secrets,
    access,
    rewrap,
    audit,
    auditSigner,
    auditFile: join(dir, 'audit.log'),
    app,
    rootToken: '',
    shares: [],
    auth: { Authorization: '' },
    async cleanup(keep = false) {
      await audit.close();
      await seal.seal();
      await rewrap.idle();
      await store.close();
      if (!keep) await rm(dir, { recursive: true, force: true });
    },
  };
  const init = options.init ?? { shares: 5, threshold: 3 };
  if (init && !seal.initialized) {
    vault.shares = await seal.init(init.shares, init.threshold, async (tx, keys) => {
      vault.rootToken = await access.tokens.createRoot(tx, keys);
    });
    vault.auth = { Authorization: `Bearer ${vault.rootToken}` };
    for (const share of vault.shares.slice(0, init.threshold)) {
      if (!seal.sealed) break;
      await seal.submitShare(share);
    }
  }
  return vault;
}

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { App } from '../server/http/app.js';
import type { AuditLog, AuditOptions } from '../server/audit/log.js';
import type { AuditSigner } from '../server/audit/signer.js';
import type { AuthService } from '../server/auth/service.js';
import type { AppDeps } from '../server/http/app.js';
import type { KeyringOptions } from '../server/keys/keyring.js';
import type { RootKeySource } from '../server/keys/root-key.js';
import type { SealManager, VaultStore } from '../server/keys/seal.js';
import type { SecretsEngine, SecretsOptions } from '../server/secrets/engine.js';
import type { RewrapJobs } from '../server/secrets/rewrap.js';
import { Store, type StoreOptions } from '../server/store/db.js';
import { buildVault } from '../server/vault.js';
import request from 'supertest';

export const silentLog = pino({ level: 'silent' });

/** The open flags of one of this process's file descriptors, as Linux shows them in /proc/self/fdinfo. */
export async function openFlags(fd: number): Promise<number> {
  const flags = /flags:\s+([0-7]+)/.exec(await readFile(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
  if (flags === undefined) throw new Error(`no flags in /proc/self/fdinfo/${fd}`);
  return parseInt(flags, 8);
}

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
  app: App;
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
  /** The Vault-compatible mounts (default `secret` and `jwt`). */
  vault?: AppDeps['vault'];
  /** Logger for the app and engines (default: silent). */
  log?: Logger;
  /** Clock for tokens (TTL tests). */
  now?: () => number;
  /** Options of the vault's store (the write benchmark turns group commit off with `maxGroup: 1`). */
  store?: StoreOptions;
  /** Initialize (and for shamir, unseal) right away: default true. */
  init?: { shares: number; threshold: number } | false;
}

/**
 * A real vault in a temp dir, built by the same composition root as main.ts (server/vault.ts) but without listening: supertest drives
 * `app` in-process. Default: shamir 3-of-5, initialized and unsealed.
 */
export async function openVault(options: VaultOptions = {}): Promise<TestVault> {
  const dir = options.dir ?? (await tempDir());
  const store = await Store.open(join(dir, 'db'), options.store);
  const built = await buildVault({
    store,
    source: options.source ?? { kind: 'shamir' },
    env: options.env ?? {},
    log: options.log ?? silentLog,
    ...(options.now ? { now: options.now } : {}),
    keyring: options.keyring ?? {},
    secrets: options.secrets ?? {},
    audit: {
      files: [join(dir, 'audit.log')],
      headFile: join(dir, 'audit.head'),
      stdout: false,
      checkpointEvery: 50,
      timeoutMs: 2_000,
      now: Date.now,
      ...options.audit,
    },
    http: {
      version: 'test',
      ...(options.loginLimits ? { loginLimits: options.loginLimits } : {}),
      ...(options.vault ? { vault: options.vault } : {}),
    },
    processMetrics: false,
  }).catch(async (e: unknown) => {
    await store.close(); // a refused start (a truncated log) must not leave the store locked
    throw e;
  });
  const { seal, audit, rewrap, access } = built;
  const vault: TestVault = {
    dir,
    store,
    barrier: built.barrier,
    seal,
    secrets: built.secrets,
    access,
    rewrap,
    audit,
    auditSigner: built.auditSigner,
    auditFile: join(dir, 'audit.log'),
    app: built.app,
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
    const initialized = await built.initialize(init);
    vault.shares = initialized.shares;
    vault.rootToken = initialized.rootToken;
    vault.auth = { Authorization: `Bearer ${vault.rootToken}` };
    for (const share of vault.shares.slice(0, init.threshold)) {
      if (!seal.sealed) break;
      await seal.submitShare(share);
    }
  }
  return vault;
}

/** Headers carrying a new token for `svc:<name>`, whose one policy `<name>` holds `rules` (made through the API). */
export async function tokenWith(vault: TestVault, name: string, rules: object[]): Promise<Record<string, string>> {
  assert.equal((await request(vault.app).put(`/v1/policies/${name}`).set(vault.auth).send({ rules })).status, 200);
  const res = await request(vault.app)
    .post('/v1/auth/token/create')
    .set(vault.auth)
    .send({ identity: `svc:${name}`, policies: [name] });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return { Authorization: `Bearer ${res.body.token}` };
}

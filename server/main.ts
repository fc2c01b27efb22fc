import { createServer, type Server } from 'node:http';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { ACCEPT_TRUNCATION_ENV, AuditLog } from './audit/log.js';
import { AuditSigner } from './audit/signer.js';
import { Directory } from './auth/directory.js';
import { JwtMethod } from './auth/jwt-login.js';
import { AppRoleMethod, UserpassMethod } from './auth/logins.js';
import { AuthService } from './auth/service.js';
import { TokenService } from './auth/tokens.js';
import { loadConfig, type ServerConfig } from './config.js';
import { CofferError } from './errors.js';
import { createApp } from './http/app.js';
import { createMetrics } from './http/metrics.js';
import { createKeyFile, parseKekUri, type RootKeySource } from './keys/root-key.js';
import { ByokService } from './keys/byok.js';
import { SealManager } from './keys/seal.js';
import { SecretsEngine } from './secrets/engine.js';
import { TransitEngine } from './transit/engine.js';
import { RewrapJobs } from './secrets/rewrap.js';
import { Store } from './store/db.js';
import { Replication, settingsFromConfig } from './replication/node.js';

export const VERSION = '0.1.0';

export interface RunningServer {
  url: string;
  server: Server;
  seal: SealManager;
  store: Store;
  rewrap: RewrapJobs;
  replication: Replication;
  /** Only set by a dev server's first start. */
  rootToken?: string;
  /** Drains (in-flight requests finish, at most `graceMs`, default `shutdown_grace_s`), then closes. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Wires the server: store, seal, engines, app; listens. Dev mode keeps a key file and the root
 * token in the data directory and initializes itself on first start.
 */
export async function startServer(config: ServerConfig, options: { log?: Logger; env?: NodeJS.ProcessEnv } = {}): Promise<RunningServer> {
  const env = options.env ?? process.env;
  const log = options.log ?? pino({ level: config.log_level, base: { service: 'coffer' } });
  const dataDir = resolve(config.data_dir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });

  let source: RootKeySource;
  if (config.dev) {
    const keyFile = join(dataDir, 'kek.key');
    if (!config.kek) await createKeyFile(keyFile).then((k) => k.fill(0)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    source = config.kek ? parseKekUri(config.kek) : { kind: 'file', path: keyFile };
  } else {
    source = parseKekUri(config.kek ?? 'shamir:');
  }

  const store = await Store.open(join(dataDir, 'db'));
  try {
    // Before the seal manager: a fresh replica copies the vault's identity from the bucket first.
    const replication = await Replication.open(settingsFromConfig(config), store, log);
    const seal = new SealManager(store, {
      source,
      env,
      log,
      keyring: {
        cacheTtlMs: config.keyring_cache_ttl_s * 1000,
        maxWraps: config.keyring_max_wraps,
        maxAgeMs: config.keyring_max_age_days * 86_400_000,
      },
    });
    replication.attach(seal); // its unseal hook runs first: a replica loads its snapshot before engines read the store
    const secrets = new SecretsEngine(store, seal, { maxVersions: config.max_versions });
    const rewrap = new RewrapJobs(store, seal, log);
    const transit = new TransitEngine(store, seal);
    const byok = new ByokService(store, seal);
    const acceptTruncation = env[ACCEPT_TRUNCATION_ENV];
    const audit = new AuditLog({
      files: config.audit_files ?? [join(dataDir, 'audit.log')],
      // In the data directory (0700), not beside the log: see server/audit/head.ts.
      headFile: join(dataDir, 'audit.head'),
      ...(acceptTruncation ? { acceptTruncationAt: Number(acceptTruncation) } : {}),
      stdout: config.audit_stdout,
      checkpointEvery: config.audit_checkpoint_every,
      checkpointIntervalMs: config.audit_checkpoint_interval_s * 1000,
      timeoutMs: 5_000,
      now: Date.now,
    });
    await audit.start();
    const auditSigner = new AuditSigner(store, seal, audit);
    const directory = new Directory(store);
    await directory.load();
    const access = new AuthService(new TokenService(store, seal, { maxTtlSeconds: config.token_max_ttl_s }), directory);
    replication.onApplied(async (keys) => {
      const touched = (prefix: string) => keys.some((k) => k === '*' || k.startsWith(prefix));
      if (touched('auth/policy/') || touched('auth/group/')) await directory.load();
      if (TokenService.STATE_PREFIXES.some(touched)) await access.tokens.reload(); // signing keys, revocations, renewals, the token tree
    });
    replication.armAfterUnseal(seal);
    let rootToken: string | undefined;
    if (config.dev && !seal.initialized) {
      const [recoveryShare] = await seal.init(1, 1, async (tx, keys) => {
        rootToken = await access.tokens.createRoot(tx, keys);
      });
      await writeSecretFile(join(dataDir, 'root-token'), `${rootToken}\n`);
      // Dev only: after a manual seal, this share (or a restart) unseals the vault again.
      await writeSecretFile(join(dataDir, 'recovery-share'), `${recoveryShare}\n`);
    }
    if (seal.initialized && seal.autoUnseal && seal.sealed) await seal.startAutoUnseal();
    await replication.waitForLease(5_000);

    const lifecycle = { draining: false };
    const metrics = createMetrics();
    replication.registerMetrics(metrics);
    const logins = { userpass: new UserpassMethod(store), approle: new AppRoleMethod(store), jwt: new JwtMethod(store, log) };
    const app = createApp({ store, seal, secrets, transit, byok, access, logins, rewrap, audit, auditSigner, log, metrics, version: VERSION, metricsPublic: config.metrics_public, replication,
      loginLimits: { failuresPerMinute: config.login_failures_per_minute, userFailuresPerMinute: config.login_user_failures_per_minute },
      trustedProxies: config.trusted_proxies, lifecycle });
    const server = await listen(app, config.listen);
    const address = server.address() as AddressInfo;
    const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
    replication.setAddress(config.api_addr ?? url);
    log.info({ url, data_dir: dataDir, dev: config.dev, provider: source.kind, initialized: seal.initialized, sealed: seal.sealed }, 'coffer listening');
    let closing: Promise<void> | undefined;
    return {
      url,
      server,
      seal,
      store,
      rewrap,
      replication,
      ...(rootToken ? { rootToken } : {}),
      close: (graceMs = config.shutdown_grace_s * 1000) =>
        (closing ??= (async () => {
          // Drain before anything closes: every in-flight request finishes (its audit line
          // durable) before the final checkpoint, so a clean stop leaves a signed tail.
          lifecycle.draining = true;
          await drain(server, graceMs);
          await replication.close();
          await audit.close();
          seal.stopRetrying();
          await seal.seal();
          await rewrap.idle();
          await store.close();
        })()),
    };
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** How long a draining server keeps listening before it closes idle connections. */
const DRAIN_SETTLE_MS = 200;

/**
 * Lets requests in flight finish (their responses say `Connection: close`), then stops. While
 * connections are open it first keeps listening for a moment: node counts a connection whose
 * request has arrived but is not parsed yet as idle, and closing idle connections at once would
 * reset such requests. Then it stops accepting and closes idle keep-alive connections;
 * connections still open after `graceMs` are cut.
 */
async function drain(server: Server, graceMs: number): Promise<void> {
  const open = await new Promise<number>((done) => server.getConnections((e, n) => done(e ? 1 : n)));
  if (open > 0) await new Promise((r) => setTimeout(r, Math.min(DRAIN_SETTLE_MS, graceMs)));
  await new Promise<void>((done) => {
    const cut = setTimeout(() => server.closeAllConnections(), graceMs);
    cut.unref();
    server.close(() => {
      clearTimeout(cut);
      done();
    });
    server.closeIdleConnections();
  });
}

function listen(app: Parameters<typeof createServer>[1], listenOn: string): Promise<Server> {
  const colon = listenOn.lastIndexOf(':');
  const host = listenOn.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(listenOn.slice(colon + 1));
  const server = createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 60_000, headersTimeout: 30_000, keepAliveTimeout: 5_000 }, app);
  server.maxHeadersCount = 100;
  server.maxConnections = 10_000;
  return new Promise((done, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      fail(new CofferError('internal', e.code === 'EADDRINUSE' ? `address ${listenOn} is already in use` : `cannot listen on ${listenOn}: ${e.message}`)),
    );
    server.listen(port, host, () => done(server));
  });
}

async function writeSecretFile(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600 });
  await chmod(path, 0o600);
}

/** `coffer server`: loads config, starts, prints the dev token once, stops on signals. */
export async function runServer(flags: { config?: string } & Partial<Record<keyof ServerConfig, unknown>>): Promise<void> {
  const { config: file, ...rest } = flags;
  const config = await loadConfig({ file, env: process.env, flags: rest });
  const running = await startServer(config);
  if (config.dev) {
    const tokenFile = join(resolve(config.data_dir), 'root-token');
    if (running.rootToken) {
      process.stderr.write(
        `\nCoffer dev server at ${running.url}. This root token is shown once (also saved to ${tokenFile}, mode 0600):\n\n    ${running.rootToken}\n\n` +
          `Try:  export COFFER_ADDR=${running.url} COFFER_TOKEN=$(cat ${tokenFile})\n\n`,
      );
    } else {
      const saved = await readFile(tokenFile, 'utf8').catch(() => undefined);
      process.stderr.write(`\nCoffer dev server at ${running.url}. Root token: ${saved ? `in ${tokenFile}` : 'see the first start'}\n\n`);
    }
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      process.stderr.write(`received ${signal} again: exiting without waiting for requests in flight\n`);
      process.exit(1);
    }
    stopping = true;
    process.stderr.write(`received ${signal}: draining (up to ${config.shutdown_grace_s} s for requests in flight), then stopping\n`);
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal));
}

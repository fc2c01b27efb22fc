import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { ACCEPT_TRUNCATION_ENV } from './audit/log.js';
import { loadConfig, type ServerConfig } from './config.js';
import { CofferError } from './errors.js';
import { drainable } from './drain.js';
import { capConnectionsPerAddress } from './http/connection-cap.js';
import { trustedProxies } from './http/client-address.js';
import { paced } from './http/pacing.js';
import { acceptListVerb } from './http/vault/list-verb.js';
import { vaultSettings } from './http/vault/mounts.js';
import { createKeyFile, parseKekUri, type RootKeySource } from './keys/root-key.js';
import type { SealManager } from './keys/seal.js';
import type { RewrapJobs } from './secrets/rewrap.js';
import { Store } from './store/db.js';
import { buildVault } from './vault.js';
import { Replication, isReplicated, settingsFromConfig } from './replication/node.js';
import { loadTls, serverTlsOptions, tlsSettingsFromConfig, type TlsMaterial, type TlsSettings } from './tls/context.js';
import { ensureDevTls } from './tls/dev.js';
import { packageVersion } from '../sdk/version.js';

/** Read once at start from package.json (health, metrics, logs). */
export const VERSION = packageVersion();

export interface RunningServer {
  url: string;
  server: Server;
  seal: SealManager;
  store: Store;
  rewrap: RewrapJobs;
  replication: Replication;
  /** Only set by a dev server's first start. */
  rootToken?: string | undefined;
  /** Set when serving HTTPS; `caFile` only with --dev-tls (the throw-away CA to trust). */
  tls?: { notAfter: Date; caFile?: string | undefined } | undefined;
  /**
   * Re-reads tls_cert_file and tls_key_file (and the client CA) and serves them to new
   * handshakes; open connections keep theirs. A pair that does not pass the start-up checks is
   * refused and the old one stays. Resolves with the new not-after.
   */
  reloadTls(): Promise<Date>;
  /** Drains (in-flight requests finish, at most `graceMs`, default `shutdown_grace_s`), then closes. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Wires the server: store, seal, engines, app; listens. Dev mode keeps a key file and the root
 * token in the data directory and initializes itself on first start.
 */
export async function startServer(
  config: ServerConfig,
  options: { log?: Logger; env?: NodeJS.ProcessEnv } = {},
): Promise<RunningServer> {
  const env = options.env ?? process.env;
  const log = options.log ?? pino({ level: config.log_level, base: { service: 'coffer' } });
  if (config.dev_tls) {
    if (config.tls_cert_file || config.tls_key_file)
      throw new CofferError(
        'invalid_request',
        'configuration: --dev-tls makes its own certificate: drop tls_cert_file and tls_key_file, or --dev-tls',
      );
    config = { ...config, dev: true };
  }
  const dataDir = resolve(config.data_dir);
  // TLS first: a bad certificate or key refuses the start before anything is opened or written.
  let tlsSettings = tlsSettingsFromConfig(config);
  let tlsMaterial = tlsSettings ? await loadTls(tlsSettings) : undefined;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  let devCaFile: string | undefined;
  if (config.dev_tls) {
    const dev = await ensureDevTls(dataDir);
    devCaFile = dev.caFile;
    tlsSettings = {
      certFile: dev.certFile,
      keyFile: dev.keyFile,
      minVersion: config.tls_min_version,
      requireClientCert: false,
      allowExpired: false,
    };
    tlsMaterial = await loadTls(tlsSettings);
  }

  let source: RootKeySource;
  if (config.dev) {
    const keyFile = join(dataDir, 'kek.key');
    if (!config.kek)
      await createKeyFile(keyFile)
        .then((k) => k.fill(0))
        .catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'EEXIST') throw e;
        });
    source = config.kek ? parseKekUri(config.kek) : { kind: 'file', path: keyFile };
  } else {
    source = parseKekUri(config.kek ?? 'shamir:');
  }

  const replicationSettings = settingsFromConfig(config);
  // Nothing reads a standalone server's change log: a shipper configured at a later start
  // finds the records missing and begins with a snapshot (server/replication/shipper.ts).
  const store = await Store.open(join(dataDir, 'db'), { changeLog: isReplicated(replicationSettings) });
  try {
    // Before the vault: a fresh replica copies the vault's identity from the bucket first.
    const replication = await Replication.open(replicationSettings, store, log);
    const acceptTruncation = env[ACCEPT_TRUNCATION_ENV];
    const lifecycle = { draining: false };
    const { seal, rewrap, audit, app, initialize } = await buildVault({
      store,
      source,
      env,
      log,
      replication,
      keyring: {
        cacheTtlMs: config.keyring_cache_ttl_s * 1000,
        maxWraps: config.keyring_max_wraps,
        maxAgeMs: config.keyring_max_age_days * 86_400_000,
      },
      secrets: { maxVersions: config.max_versions },
      // A replica never sweeps expired token state: the primary's deletes reach it through replication.
      tokens: {
        maxTtlSeconds: config.token_max_ttl_s,
        maxChildren: config.token_max_children,
        writable: () => replication.role !== 'replica',
      },
      audit: {
        files: config.audit_files ?? [join(dataDir, 'audit.log')],
        // In the data directory (0700), not beside the log: see server/audit/head.ts.
        headFile: join(dataDir, 'audit.head'),
        ...(acceptTruncation ? { acceptTruncationAt: Number(acceptTruncation) } : {}),
        stdout: config.audit_stdout,
        checkpointEvery: config.audit_checkpoint_every,
        checkpointIntervalMs: config.audit_checkpoint_interval_s * 1000,
        timeoutMs: 5_000,
        now: Date.now,
      },
      http: {
        version: VERSION,
        metricsPublic: config.metrics_public,
        loginLimits: {
          failuresPerMinute: config.login_failures_per_minute,
          userFailuresPerMinute: config.login_user_failures_per_minute,
        },
        trustedProxies: config.trusted_proxies,
        lifecycle,
        vault: vaultSettings(config.vault_kv_mounts, config.vault_jwt_mounts),
      },
    });
    let rootToken: string | undefined;
    if (config.dev && !seal.initialized) {
      const initialized = await initialize({ shares: 1, threshold: 1 });
      rootToken = initialized.rootToken;
      await writeSecretFile(join(dataDir, 'root-token'), `${rootToken}\n`);
      // Dev only: after a manual seal, this share (or a restart) unseals the vault again.
      await writeSecretFile(join(dataDir, 'recovery-share'), `${initialized.shares[0]}\n`);
    }
    if (seal.initialized && seal.autoUnseal && seal.sealed) await seal.startAutoUnseal();
    await replication.waitForLease(5_000);

    const server = await listen(app, config.listen, {
      ...(tlsSettings && tlsMaterial ? { tls: { settings: tlsSettings, material: tlsMaterial } } : {}),
      maxPerAddress: config.max_connections_per_address,
      exempt: trustedProxies(config.trusted_proxies),
      log,
    });
    const drainer = drainable(server);
    const address = server.address() as AddressInfo;
    const url = `${tlsMaterial ? 'https' : 'http'}://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
    replication.setAddress(config.api_addr ?? url);
    let tlsState = tlsMaterial
      ? { notAfter: tlsMaterial.notAfter, ...(devCaFile ? { caFile: devCaFile } : {}) }
      : undefined;
    log.info(
      {
        url,
        data_dir: dataDir,
        dev: config.dev,
        provider: source.kind,
        initialized: seal.initialized,
        sealed: seal.sealed,
        ...(tlsMaterial
          ? {
              tls: {
                not_after: tlsMaterial.notAfter.toISOString(),
                min_version: tlsSettings!.minVersion,
                client_cert: tlsSettings!.clientCaFile
                  ? tlsSettings!.requireClientCert
                    ? 'required'
                    : 'requested'
                  : 'off',
              },
            }
          : {}),
      },
      'coffer listening',
    );
    let reloading: Promise<Date> | undefined;
    const reloadTls = async (): Promise<Date> => {
      if (!tlsSettings) throw new CofferError('invalid_request', 'this server does not serve TLS: nothing to reload');
      // One reload at a time: two SIGHUPs in a row must not race two reads of half-written files.
      while (reloading) await reloading.catch(() => undefined);
      reloading = (async () => {
        const fresh = await loadTls(tlsSettings);
        // setSecureContext replaces what new handshakes get; established connections keep their session.
        (server as unknown as import('node:tls').Server).setSecureContext(fresh.context);
        tlsState = { ...tlsState, notAfter: fresh.notAfter };
        return fresh.notAfter;
      })();
      try {
        return await reloading;
      } finally {
        reloading = undefined;
      }
    };
    let closing: Promise<void> | undefined;
    return {
      url,
      server,
      seal,
      store,
      rewrap,
      replication,
      ...(rootToken ? { rootToken } : {}),
      get tls() {
        return tlsState;
      },
      reloadTls,
      close: (graceMs = config.shutdown_grace_s * 1000) =>
        (closing ??= (async () => {
          // Drain before anything closes: every in-flight request finishes (its audit line
          // durable) before the final checkpoint, so a clean stop leaves a signed tail.
          lifecycle.draining = true;
          const stopping = Date.now();
          await drainer.drain(graceMs);
          await replication.close();
          // Bounded by what is left of the grace period (at least a moment for the final
          // checkpoint): a stalled sink is abandoned, never waited on (server/audit/log.ts).
          await audit.close(Math.min(5_000, Math.max(250, graceMs - (Date.now() - stopping))));
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

interface ListenOptions {
  tls?: { settings: TlsSettings; material: TlsMaterial };
  /** `max_connections_per_address`; 0: no cap. */
  maxPerAddress: number;
  /** Addresses the per-address cap does not apply to (trusted proxies). */
  exempt: ReturnType<typeof trustedProxies>;
  log: Logger;
}

/**
 * Timeouts (SECURITY-CASES J3-J6), the same over HTTP and HTTPS:
 * - headersTimeout 30 s: a client trickling its headers (slowloris) is cut; node checks every
 *   `connectionsCheckingInterval` (5 s here, not the default 30 s), so it is cut within 35 s.
 * - requestTimeout 60 s: the whole request, body included, must arrive in that time (408).
 * - keepAliveTimeout 5 s: an idle keep-alive connection is closed after it.
 * - socket timeout 120 s: a connection on which nothing moves either way (a client that stops
 *   reading a large response) is destroyed, so its buffered response is freed.
 * - TLS handshakeTimeout 10 s (tls/context.ts), and at most `maxPerAddress` connections per
 *   client address, `maxConnections` in all.
 */
export const SERVER_TIMEOUTS = {
  headersTimeout: 30_000,
  requestTimeout: 60_000,
  keepAliveTimeout: 5_000,
  socketTimeout: 120_000,
  connectionsCheckingInterval: 5_000,
};

function listen(app: RequestListener, listenOn: string, options: ListenOptions): Promise<Server> {
  const colon = listenOn.lastIndexOf(':');
  const host = listenOn.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(listenOn.slice(colon + 1));
  const { socketTimeout, ...timeouts } = SERVER_TIMEOUTS;
  const http = { maxHeaderSize: 16 * 1024, ...timeouts };
  const listener = paced(app);
  const server: Server = options.tls
    ? createHttpsServer({ ...http, ...serverTlsOptions(options.tls.settings, options.tls.material) }, listener)
    : createServer(http, listener);
  acceptListVerb(server, options.tls ? 'secureConnection' : 'connection'); // Vault clients' LIST
  server.maxHeadersCount = 100;
  server.maxConnections = 10_000;
  server.setTimeout(socketTimeout); // no 'timeout' listener: node destroys the idle socket
  if (options.tls) {
    // Plain HTTP to the TLS port, a scanner, a client that does not trust us, or (mTLS) one without
    // a valid certificate: the handshake fails and the socket is closed. Debug, not warn: on an
    // open port this is background noise, and nothing reached the application.
    server.on('tlsClientError', (e: NodeJS.ErrnoException, socket: import('node:tls').TLSSocket) => {
      options.log.debug({ client: socket.remoteAddress, reason: e.code ?? e.message }, 'TLS handshake refused');
    });
  }
  let lastRefusalLog = 0;
  capConnectionsPerAddress(server, options.maxPerAddress, options.exempt, (address) => {
    // At most one line a minute: the point of the cap is that a flood costs nothing, logs included.
    if (Date.now() - lastRefusalLog < 60_000) return;
    lastRefusalLog = Date.now();
    options.log.warn(
      { client: address, max_connections_per_address: options.maxPerAddress },
      'connection refused: too many open connections from one client (an address, or an IPv6 /64)',
    );
  });
  return new Promise((done, fail) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      fail(
        new CofferError(
          'internal',
          e.code === 'EADDRINUSE'
            ? `address ${listenOn} is already in use`
            : `cannot listen on ${listenOn}: ${e.message}`,
        ),
      ),
    );
    server.listen(port, host, () => done(server));
  });
}

async function writeSecretFile(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600 });
  await chmod(path, 0o600);
}

/** `coffer server`: loads config, starts, prints the dev token once, stops on signals. */
export async function runServer(
  flags: { config?: string | undefined } & Partial<Record<keyof ServerConfig, unknown>>,
): Promise<void> {
  const { config: file, ...rest } = flags;
  const config = await loadConfig({ file, env: process.env, flags: rest });
  const log = pino({ level: config.log_level, base: { service: 'coffer' } });
  const running = await startServer(config, { log });
  if (running.tls?.caFile) {
    process.stderr.write(
      `\nServing HTTPS with a throw-away CA (dev only). Trust it in this shell:\n\n    export COFFER_CACERT=${running.tls.caFile}\n\n`,
    );
  }
  if (config.dev || config.dev_tls) {
    const tokenFile = join(resolve(config.data_dir), 'root-token');
    if (running.rootToken) {
      process.stderr.write(
        `\nCoffer dev server at ${running.url}. This root token is shown once (also saved to ${tokenFile}, mode 0600):\n\n    ${running.rootToken}\n\n` +
          `Try:  export COFFER_ADDR=${running.url} COFFER_TOKEN=$(cat ${tokenFile})\n\n`,
      );
    } else {
      const saved = await readFile(tokenFile, 'utf8').catch(() => undefined);
      process.stderr.write(
        `\nCoffer dev server at ${running.url}. Root token: ${saved ? `in ${tokenFile}` : 'see the first start'}\n\n`,
      );
    }
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      process.stderr.write(`received ${signal} again: exiting without waiting for requests in flight\n`);
      process.exit(1);
    }
    stopping = true;
    process.stderr.write(
      `received ${signal}: draining (up to ${config.shutdown_grace_s} s for requests in flight), then stopping\n`,
    );
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal));
  // SIGHUP: a renewed certificate (certbot, cert-manager) without a restart. Always handled, so
  // a stray HUP never kills the server (node's default for it is to exit).
  process.on('SIGHUP', () => {
    if (!running.tls || stopping) return void log.info('SIGHUP: no TLS certificate to reload');
    running.reloadTls().then(
      (notAfter) => log.info({ not_after: notAfter.toISOString() }, 'TLS certificate reloaded'),
      (e: unknown) =>
        log.error(
          { reason: e instanceof Error ? e.message : String(e) },
          'TLS certificate reload refused: still serving the previous certificate',
        ),
    );
  });
}

import { CofferError } from './errors.js';
// fs.promises is reached at each call, not imported from node:fs/promises: the bundled `coffer run`
// (CommonJS) then loads it (0.7 ms) only if it touches a file. ES modules load it with node:fs either
// way (docs/performance.md, "coffer run start-up").
import { promises as fs, readFileSync, statSync } from 'node:fs';
import {
  fetchTransport,
  tlsConnectOptions,
  type HttpResponse,
  type TlsClientOptions,
  type Transport,
} from './transport.js';
import type { ErrorBody } from './wire/errors.js';
import type { OaepHash } from './wire/constants.js';
import { pathMessage, pathProblem } from './wire/paths.js';
import type {
  AdminKind,
  AdminObjects,
  AdminRequests,
  AppRoleLoginRequest,
  AuditInfo,
  AuditLines,
  AuditLinesRequest,
  BatchResult,
  BatchRequest,
  BatchWriteEntry,
  BatchWriteRequest,
  BatchWriteResult,
  CapabilitiesRequest,
  ByokExportRequest,
  ByokExportResult,
  ByokImportRequest,
  ByokImportResult,
  ByokWrappingKey,
  DatakeyRequest,
  DecryptRequest,
  EncryptRequest,
  Health,
  InitRequest,
  InitResult,
  JwtLoginRequest,
  KeyCreateRequest,
  KeyringRotateRequest,
  KeyringRotation,
  KeyringStatus,
  ListResult,
  LoginResult,
  MasterRotation,
  NameList,
  PromoteResult,
  PutSecretRequest,
  PutSecretResult,
  ReplicationStatus,
  SealStatus,
  Secret,
  SecretIdResult,
  SecretMetadata,
  TokenCreateRequest,
  TokenRevokeRequest,
  TokenCapabilities,
  TokenSelf,
  TransitKeyInfo,
  UnsealRequest,
  UserpassLoginRequest,
  VersionsRequest,
} from './wire/types.js';

export interface CofferOptions {
  /** Server address; default `COFFER_ADDR` or http://127.0.0.1:8740. */
  addr?: string | undefined;
  /** Bearer token; default `COFFER_TOKEN`, then the file named by `COFFER_TOKEN_FILE`. */
  token?: string | undefined;
  /** A file holding the token (mode 0600 or stricter, one line), read once here; `token` wins over it. */
  tokenFile?: string | undefined;
  /** Prefix joined in front of every secret path (`COFFER_NAMESPACE`). */
  namespace?: string | undefined;
  /** PEM of the CA that signed the server's certificate; default: the file named by `COFFER_CACERT`. */
  caCert?: string | undefined;
  /** mTLS: PEM client certificate and key; default: the files named by `COFFER_CLIENT_CERT` and `COFFER_CLIENT_KEY`. */
  clientCert?: string | undefined;
  clientKey?: string | undefined;
  /** Name the server certificate must carry (and SNI), when `addr` uses an IP or another name; default `COFFER_TLS_SERVER_NAME`. */
  tlsServerName?: string | undefined;
  /** Per attempt; default 10 s. */
  timeoutMs?: number | undefined;
  /** Retries of idempotent calls on connection errors, 429 and 503; default 3. */
  retries?: number | undefined;
  /** How to send requests (default: global fetch; see transport.ts). */
  transport?: Transport | undefined;
  /** For tests: a fetch implementation, and the sleep between retries. */
  fetch?: typeof fetch | undefined;
  sleep?: ((ms: number) => Promise<void>) | undefined;
  /** Renew the token from a login (or `renew`) at two thirds of its lifetime, up to its max TTL. */
  autoRenew?: boolean | undefined;
}

interface Call {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** Safe to send again after a failure (reads, and writes that are naturally idempotent). */
  idempotent?: boolean;
  auth?: boolean;
  /** A login: sent once more after a 429 with a short Retry-After (see `login`). */
  retryWhenLimited?: boolean;
  /** Overrides the client's timeout for a call the server answers late by design (promotion). */
  timeoutMs?: number;
}

/** The longest Retry-After a login waits out (docs/api.md "Auth"); longer ones fail at once. */
const MAX_LOGIN_WAIT_S = 10;

/**
 * A fetch with these TLS settings (a `ca` is trusted instead of the system store, not beside it);
 * undici is loaded only when this is used. `tls` may read files: it runs once, at the first call.
 */
function withTls(tls: () => Promise<TlsClientOptions>): typeof fetch {
  let ready: Promise<typeof fetch> | undefined;
  return async (input, init) => {
    ready ??= Promise.all([tls(), import('undici')]).then(([options, { Agent, fetch: undiciFetch }]) => {
      const dispatcher = new Agent({ connect: tlsConnectOptions(options) });
      return (url: Parameters<typeof fetch>[0], options?: RequestInit) =>
        undiciFetch(url as string, { ...(options as object), dispatcher });
    });
    // A file that cannot be read fails every call the same way, and is retried at the next one.
    ready.catch(() => (ready = undefined));
    return (await ready)(input, init);
  };
}

/** Reads the PEM file an env variable names; the error names both (never the contents). */
export async function readTlsFile(variable: string, file: string | undefined): Promise<string | undefined> {
  if (!file) return undefined;
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new CofferError(
      'invalid_request',
      `cannot read ${variable} file ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      0,
    );
  }
}

/** TLS settings from the options, else from COFFER_CACERT, COFFER_CLIENT_CERT, COFFER_CLIENT_KEY, COFFER_TLS_SERVER_NAME. */
export async function tlsFromEnv(
  options: Pick<CofferOptions, 'caCert' | 'clientCert' | 'clientKey' | 'tlsServerName'>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<TlsClientOptions> {
  const [ca, cert, key] = await Promise.all([
    options.caCert ?? readTlsFile('COFFER_CACERT', env.COFFER_CACERT),
    options.clientCert ?? readTlsFile('COFFER_CLIENT_CERT', env.COFFER_CLIENT_CERT),
    options.clientKey ?? readTlsFile('COFFER_CLIENT_KEY', env.COFFER_CLIENT_KEY),
  ]);
  if ((cert === undefined) !== (key === undefined)) {
    throw new CofferError(
      'invalid_request',
      `a client certificate needs its key: set both COFFER_CLIENT_CERT and COFFER_CLIENT_KEY (or clientCert and clientKey)`,
      0,
    );
  }
  const servername = options.tlsServerName ?? (env.COFFER_TLS_SERVER_NAME || undefined);
  return {
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
    ...(servername ? { servername } : {}),
  };
}

const wantsTls = (o: CofferOptions, env: NodeJS.ProcessEnv) =>
  Boolean(
    o.caCert ??
    o.clientCert ??
    o.clientKey ??
    o.tlsServerName ??
    (env.COFFER_CACERT || env.COFFER_CLIENT_CERT || env.COFFER_CLIENT_KEY || env.COFFER_TLS_SERVER_NAME),
  );

/** A backup being downloaded (see `Coffer.backup`). */
export interface BackupDownload {
  /** Vault (cluster) id, backup id and the change-log sequence the snapshot is at (from the headers). */
  vault: string;
  backup: string;
  seq: number;
  body: AsyncIterable<Uint8Array>;
}

export type { AdminKind };
const ADMIN_ROUTES: Record<AdminKind, string> = {
  policy: '/v1/policies',
  group: '/v1/groups',
  user: '/v1/auth/userpass/users',
  approle: '/v1/auth/approle/roles',
  jwt: '/v1/auth/jwt/roles',
};

/** One admin collection (`Coffer.admin(kind)`). */
export interface AdminApi<K extends AdminKind> {
  list(): Promise<string[]>;
  get(name: string): Promise<AdminObjects[K]>;
  /** Creates or replaces the object; answers it as stored (defaults filled in, never a password hash). */
  put(name: string, body: AdminRequests[K]): Promise<AdminObjects[K]>;
  delete(name: string): Promise<void>;
}

/**
 * Reads a token file the way containers mount them (`COFFER_TOKEN_FILE`): refused when group or
 * others may read or write it, when empty, or when it holds more than one line; the trailing
 * newline is trimmed. `source` names the setting in the error.
 */
export function readTokenFile(path: string, source = 'COFFER_TOKEN_FILE'): string {
  const refuse = (why: string) => new CofferError('invalid_request', `${source} ${path} ${why}`, 0);
  let text: string;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) throw refuse('is not a file: point it at the file holding the token');
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
      throw refuse(
        `is accessible by group or others (mode ${(stat.mode & 0o777).toString(8).padStart(4, '0')}): run chmod 600 ${path} (in Kubernetes, mount the secret with defaultMode: 0400)`,
      );
    }
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof CofferError) throw e;
    throw refuse(`cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): check the path`);
  }
  const token = text.replace(/(\r?\n)+$/, '');
  if (token.trim() === '') throw refuse('is empty: write the token into it');
  if (/[\r\n]/.test(token)) throw refuse('holds more than one line: put only the token in it');
  return token;
}

/**
 * The typed Coffer client: plain `fetch`, no server code. Every method maps to one route of
 * docs/api.md; failures are `CofferError`s carrying the server's code.
 */
export class Coffer {
  readonly addr: string;
  private token: string | undefined;
  private readonly namespace: string | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly transport: Transport;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly autoRenew: boolean;
  private renewTimer: NodeJS.Timeout | undefined;
  /** The last automatic renewal failure (renewal stops after one). */
  renewError: CofferError | undefined;

  constructor(options: CofferOptions = {}) {
    this.addr = (options.addr ?? process.env.COFFER_ADDR ?? 'http://127.0.0.1:8740').replace(/\/+$/, '');
    const url = new URL(this.addr);
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new CofferError('invalid_request', `address ${this.addr} must be http(s)://host:port`, 0);
    // options.token, options.tokenFile, COFFER_TOKEN, COFFER_TOKEN_FILE: the CLI's order (cli/context.ts).
    this.token =
      options.token ??
      (options.tokenFile !== undefined ? readTokenFile(options.tokenFile, 'tokenFile') : undefined) ??
      (process.env.COFFER_TOKEN ||
        (process.env.COFFER_TOKEN_FILE
          ? readTokenFile(process.env.COFFER_TOKEN_FILE, 'COFFER_TOKEN_FILE')
          : undefined));
    this.namespace = options.namespace ?? process.env.COFFER_NAMESPACE;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retries = options.retries ?? 3;
    this.transport =
      options.transport ??
      fetchTransport(options.fetch ?? (wantsTls(options, process.env) ? withTls(() => tlsFromEnv(options)) : fetch));
    this.sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    this.autoRenew = options.autoRenew ?? false;
  }

  /** Stops automatic renewal (call before a long-lived process exits, or let it: the timer is unref'd). */
  close(): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = undefined;
  }

  /** Uses `token` for every later call (e.g. after a login). */
  setToken(token: string | undefined): void {
    this.token = token;
  }

  // ---- secrets

  getSecret(path: string, version?: number): Promise<Secret> {
    return this.call({
      method: 'GET',
      path: `/v1/secrets/${this.secretPath(path)}`,
      query: { version },
      idempotent: true,
    });
  }

  putSecret(path: string, request: PutSecretRequest): Promise<PutSecretResult> {
    return this.call({
      method: 'PUT',
      path: `/v1/secrets/${this.secretPath(path)}`,
      body: request,
      idempotent: request.cas !== undefined,
    });
  }

  metadata(path: string): Promise<SecretMetadata> {
    return this.call({ method: 'GET', path: `/v1/metadata/${this.secretPath(path)}`, idempotent: true });
  }

  async deleteSecret(path: string, versions?: number[]): Promise<void> {
    await this.call({
      method: 'DELETE',
      path: `/v1/secrets/${this.secretPath(path)}`,
      query: { versions: versions?.join(',') },
      idempotent: true,
    });
  }

  async undelete(path: string, versions: number[]): Promise<void> {
    await this.call({
      method: 'POST',
      path: `/v1/secrets/${this.secretPath(path)}/undelete`,
      body: { versions } satisfies VersionsRequest,
      idempotent: true,
    });
  }

  async destroy(path: string, versions: number[]): Promise<void> {
    await this.call({
      method: 'POST',
      path: `/v1/secrets/${this.secretPath(path)}/destroy`,
      body: { versions } satisfies VersionsRequest,
      idempotent: true,
    });
  }

  listPage(prefix = '', options: { after?: string | undefined; limit?: number | undefined } = {}): Promise<ListResult> {
    const full = this.namespace ? (prefix ? `${this.namespace}/${prefix}` : this.namespace) : prefix;
    return this.call({
      method: 'GET',
      path: '/v1/secrets',
      query: { prefix: full || undefined, after: options.after, limit: options.limit },
      idempotent: true,
    });
  }

  /** Every path under `prefix`, page by page. */
  async *list(prefix = '', pageSize = 100): AsyncGenerator<string> {
    let after: string | undefined;
    do {
      const page = await this.listPage(prefix, { after, limit: pageSize });
      yield* page.keys;
      after = page.next ?? undefined;
    } while (after);
  }

  batchGet(paths: string[]): Promise<BatchResult> {
    return this.call({
      method: 'POST',
      path: '/v1/secrets:batch',
      body: { paths: paths.map((p) => this.secretPath(p)) } satisfies BatchRequest,
      idempotent: true,
    });
  }

  /**
   * Writes up to 1,000 secrets in one request (docs/api.md "Secrets"): one outcome per entry, in
   * order; an entry refused by the server (policy, check-and-set, size) does not stop the others.
   * Paths are checked here first, as for every call: a bad one throws before anything is sent.
   * Sent again after a lost answer only when every entry carries `cas` (then a repeat is refused
   * per entry instead of writing twice).
   */
  batchWrite(entries: BatchWriteEntry[]): Promise<BatchWriteResult> {
    return this.call({
      method: 'POST',
      path: '/v1/secrets:batch-write',
      body: { secrets: entries.map((e) => ({ ...e, path: this.secretPath(e.path) })) } satisfies BatchWriteRequest,
      idempotent: entries.every((e) => e.cas !== undefined),
    });
  }

  // ---- auth

  async loginUserpass(username: string, password: string): Promise<LoginResult> {
    return this.login('/v1/auth/userpass/login', { username, password } satisfies UserpassLoginRequest);
  }

  async loginAppRole(roleId: string, secretId: string): Promise<LoginResult> {
    return this.login('/v1/auth/approle/login', { role_id: roleId, secret_id: secretId } satisfies AppRoleLoginRequest);
  }

  async loginJwt(role: string, jwt: string): Promise<LoginResult> {
    return this.login('/v1/auth/jwt/login', { role, jwt } satisfies JwtLoginRequest);
  }

  tokenSelf(): Promise<TokenSelf> {
    return this.call({ method: 'GET', path: '/v1/auth/token/self', idempotent: true });
  }

  /** What the current token may do at a capability path (`team/app/db`, `sys/policies/ci`). */
  capabilities(path: string): Promise<TokenCapabilities> {
    return this.call({
      method: 'GET',
      path: '/v1/auth/token/capabilities',
      query: { path } satisfies CapabilitiesRequest,
      idempotent: true,
    });
  }

  /**
   * Extends the current token in place (the server answers with the same token and its new
   * `expires_at`; 403 once it already lives to its max TTL). Safe to retry: repeating it extends
   * to the same point.
   */
  async renew(): Promise<LoginResult> {
    return this.adopt(await this.call({ method: 'POST', path: '/v1/auth/token/renew', body: {}, idempotent: true }));
  }

  async revoke(token?: string): Promise<void> {
    await this.call({
      method: 'POST',
      path: '/v1/auth/token/revoke',
      body: (token ? { token } : {}) satisfies TokenRevokeRequest,
      idempotent: true,
    });
  }

  /** A child of the current token: at most its policies, groups and remaining lifetime (`orphan` needs its own capability). */
  createToken(request: TokenCreateRequest): Promise<LoginResult> {
    return this.call({ method: 'POST', path: '/v1/auth/token/create', body: request });
  }

  // ---- admin objects (policies, groups, users, roles)

  /**
   * CRUD of one admin collection; `kind` picks the route and the types: `admin('policy').get(n)`
   * is a `Policy`, `put` takes a `PolicyRequest` (sdk/wire/types.ts `AdminObjects`, `AdminRequests`).
   */
  admin<K extends AdminKind>(kind: K): AdminApi<K> {
    const base = ADMIN_ROUTES[kind];
    const item = (name: string) => `${base}/${encodeURIComponent(name)}`;
    return {
      list: async () => (await this.call<NameList>({ method: 'GET', path: base, idempotent: true })).keys,
      get: (name) => this.call({ method: 'GET', path: item(name), idempotent: true }),
      put: (name, body) => this.call({ method: 'PUT', path: item(name), body, idempotent: true }),
      delete: async (name) => void (await this.call({ method: 'DELETE', path: item(name), idempotent: true })),
    };
  }

  /** A new approle secret_id (shown once). */
  createSecretId(role: string): Promise<SecretIdResult> {
    return this.call({
      method: 'POST',
      path: `${ADMIN_ROUTES.approle}/${encodeURIComponent(role)}/secret-id`,
      body: {},
    });
  }

  // ---- data keys (transit)

  createKey(name: string, options: KeyCreateRequest = {}): Promise<TransitKeyInfo> {
    return this.call({ method: 'POST', path: `/v1/keys/${encodeURIComponent(name)}`, body: options });
  }

  keyInfo(name: string): Promise<TransitKeyInfo> {
    return this.call({ method: 'GET', path: `/v1/keys/${encodeURIComponent(name)}`, idempotent: true });
  }

  rotateKey(name: string): Promise<TransitKeyInfo> {
    return this.call({ method: 'POST', path: `/v1/keys/${encodeURIComponent(name)}/rotate`, body: {} });
  }

  async encrypt(name: string, plaintext: Uint8Array, context?: Uint8Array): Promise<string> {
    const body: EncryptRequest = {
      plaintext: Buffer.from(plaintext).toString('base64'),
      ...(context ? { context: Buffer.from(context).toString('base64') } : {}),
    };
    return (
      await this.call<{ ciphertext: string }>({
        method: 'POST',
        path: `/v1/keys/${encodeURIComponent(name)}/encrypt`,
        body,
        idempotent: true,
      })
    ).ciphertext;
  }

  async decrypt(name: string, ciphertext: string, context?: Uint8Array): Promise<Uint8Array> {
    const body: DecryptRequest = {
      ciphertext,
      ...(context ? { context: Buffer.from(context).toString('base64') } : {}),
    };
    const { plaintext } = await this.call<{ plaintext: string }>({
      method: 'POST',
      path: `/v1/keys/${encodeURIComponent(name)}/decrypt`,
      body,
      idempotent: true,
    });
    return new Uint8Array(Buffer.from(plaintext, 'base64'));
  }

  async dataKey(name: string, context?: Uint8Array): Promise<{ plaintext: Uint8Array; ciphertext: string }> {
    const body: DatakeyRequest = context ? { context: Buffer.from(context).toString('base64') } : {};
    const r = await this.call<{ plaintext: string; ciphertext: string }>({
      method: 'POST',
      path: `/v1/keys/${encodeURIComponent(name)}/datakey`,
      body,
    });
    return { plaintext: new Uint8Array(Buffer.from(r.plaintext, 'base64')), ciphertext: r.ciphertext };
  }

  // ---- BYOK

  /** A wrapping key and a single-use import token; `rights` are bound to the token (default: not exportable, no expiry). */
  byokWrappingKey(rights: { exportable?: boolean; valid_to?: string } = {}): Promise<ByokWrappingKey> {
    const query = new URLSearchParams();
    if (rights.exportable !== undefined) query.set('exportable', String(rights.exportable));
    if (rights.valid_to !== undefined) query.set('valid_to', rights.valid_to);
    const qs = query.size ? `?${query.toString()}` : '';
    return this.call({ method: 'GET', path: `/v1/sys/byok/wrapping-key${qs}`, idempotent: true });
  }

  byokImport(importToken: string, wrappedKey: string, oaepHash: OaepHash = 'sha256'): Promise<ByokImportResult> {
    return this.call({
      method: 'POST',
      path: '/v1/sys/byok/import',
      body: { import_token: importToken, wrapped_key: wrappedKey, oaep_hash: oaepHash } satisfies ByokImportRequest,
    });
  }

  byokExport(publicKeyPem: string, shares: string[], oaepHash: OaepHash = 'sha256'): Promise<ByokExportResult> {
    return this.call({
      method: 'POST',
      path: '/v1/sys/byok/export',
      body: { public_key_pem: publicKeyPem, shares, oaep_hash: oaepHash } satisfies ByokExportRequest,
    });
  }

  // ---- sys

  async health(): Promise<Health> {
    // Health answers 429/501/503 with a body by design: read it whatever the status.
    const res = await this.send({ method: 'GET', path: '/v1/sys/health', auth: false }, 0);
    return (await jsonOf(res)) as Health;
  }

  sealStatus(): Promise<SealStatus> {
    return this.call({ method: 'GET', path: '/v1/sys/seal-status', idempotent: true, auth: false });
  }

  init(shares: number, threshold: number): Promise<InitResult> {
    return this.call({
      method: 'POST',
      path: '/v1/sys/init',
      body: { shares, threshold } satisfies InitRequest,
      auth: false,
    });
  }

  unseal(share: string): Promise<SealStatus> {
    return this.call({ method: 'POST', path: '/v1/sys/unseal', body: { share } satisfies UnsealRequest, auth: false });
  }

  /** Forgets the shares submitted so far; `nonce` is the one the first share's answer carried. */
  resetUnseal(nonce?: string): Promise<SealStatus> {
    return this.call({
      method: 'POST',
      path: '/v1/sys/unseal',
      body: (nonce === undefined ? { reset: true } : { reset: true, nonce }) satisfies UnsealRequest,
      auth: false,
    });
  }

  /** The audit checkpoint public key (null until first unsealed), the checkpoint bounds and the last sequence (admin). */
  auditInfo(): Promise<AuditInfo> {
    return this.call({ method: 'GET', path: '/v1/sys/audit', idempotent: true });
  }

  /** The newest request lines of the first audit file matching `filter`, and the file's chain verification (admin). */
  auditLines(filter: AuditLinesRequest = {}): Promise<AuditLines> {
    return this.call({ method: 'GET', path: '/v1/sys/audit/lines', query: { ...filter }, idempotent: true });
  }

  /** Replication role, progress per target, lag and errors (admin). */
  replicationStatus(): Promise<ReplicationStatus> {
    return this.call({ method: 'GET', path: '/v1/sys/replication', idempotent: true });
  }

  /** Promotes this replica to primary of a new epoch; resolves once it accepts writes (admin). */
  /**
   * Answers once the promoted server accepts writes, i.e. after the old primary's lease ran out
   * (up to `replication_lease_s`, 30 s by default): hence its own timeout, 2 minutes by default
   * (the server closes a connection idle for longer). Watch `replicationStatus()` meanwhile.
   */
  promote(options: { timeoutMs?: number } = {}): Promise<PromoteResult> {
    return this.call({
      method: 'POST',
      path: '/v1/sys/replication/promote',
      body: {},
      timeoutMs: options.timeoutMs ?? 120_000,
    });
  }

  /** Asks the primary for a full snapshot in every bucket (admin). */
  replicationSnapshot(): Promise<{ requested: boolean }> {
    return this.call({ method: 'POST', path: '/v1/sys/replication/snapshot', body: {} });
  }

  /**
   * Streams a backup of the whole vault (`GET /v1/sys/backup`, admin on `sys/backup`): one
   * consistent snapshot, encrypted under a backup key wrapped by the master key. `body` yields
   * the file's bytes as they arrive; write them somewhere only the operator can read. Never
   * retried: a second request would be another snapshot.
   */
  async backup(): Promise<BackupDownload> {
    const headers: Record<string, string> = { Accept: 'application/octet-stream' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let res: HttpResponse;
    try {
      res = await this.transport(new URL(`${this.addr}/v1/sys/backup`), {
        method: 'GET',
        headers,
        timeoutMs: this.timeoutMs,
        stream: true,
      });
    } catch (e) {
      const reason =
        (e as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : 'connection failed';
      throw new CofferError('unavailable', `cannot reach the Coffer server at ${this.addr}: ${reason}`, 0);
    }
    if (!res.ok) throw await this.toError(res);
    if (!res.body) throw new CofferError('unexpected_response', 'the backup answer has no body', res.status);
    return {
      vault: res.headers.get('x-coffer-vault-id') ?? '',
      backup: res.headers.get('x-coffer-backup-id') ?? '',
      seq: Number(res.headers.get('x-coffer-backup-seq') ?? NaN),
      body: res.body as AsyncIterable<Uint8Array>, // a fetch ReadableStream is async-iterable in Node 20
    };
  }

  /** Keyring of a namespace, with its versions and any background rewrap progress. */
  keyring(namespace: string): Promise<KeyringStatus> {
    return this.call({ method: 'GET', path: `/v1/sys/keyrings/${encodeURIComponent(namespace)}`, idempotent: true });
  }

  rotateKeyring(namespace: string, rewrap = false): Promise<KeyringRotation> {
    return this.call({
      method: 'POST',
      path: `/v1/sys/keyrings/${encodeURIComponent(namespace)}/rotate`,
      body: { rewrap } satisfies KeyringRotateRequest,
    });
  }

  rotateMasterKey(): Promise<MasterRotation> {
    return this.call({ method: 'POST', path: '/v1/sys/rotate', body: {} });
  }

  async seal(): Promise<void> {
    await this.call({ method: 'POST', path: '/v1/sys/seal', body: {} });
  }

  // ---- plumbing

  /**
   * Every login (userpass, approle, jwt, and the CI helpers and CLI commands built on them)
   * goes through here. A login refused by a limit was refused before its credential was
   * checked (a one-use secret_id is not consumed), so it is safe to send once more.
   */
  private async login(path: string, body: Record<string, string>): Promise<LoginResult> {
    return this.adopt(await this.call({ method: 'POST', path, body, auth: false, retryWhenLimited: true }));
  }

  private adopt(result: LoginResult): LoginResult {
    this.token = result.token;
    if (this.autoRenew) {
      clearTimeout(this.renewTimer);
      const delay = Math.max(1_000, ((Date.parse(result.expires_at) - Date.now()) * 2) / 3);
      this.renewTimer = setTimeout(() => {
        this.renew().catch((e: unknown) => {
          // 403: the token reached its max TTL and lives on until then; that ends renewal, it is no failure.
          if (e instanceof CofferError && e.code === 'forbidden') return;
          this.renewError = e instanceof CofferError ? e : new CofferError('unavailable', 'token renewal failed', 0);
        });
      }, delay);
      this.renewTimer.unref();
    }
    return result;
  }

  /** The namespace joined in front; refused before anything is sent when the server would refuse it (the same rule, sdk/wire/paths.ts). */
  private secretPath(path: string): string {
    const full = this.namespace ? `${this.namespace}/${path}` : path;
    const problem = pathProblem(full);
    if (problem)
      throw new CofferError(
        'invalid_path',
        `"${full.length > 80 ? `${full.slice(0, 80)}…` : full}" is not a valid secret path: ${pathMessage('the path', problem)}`,
        0,
      );
    return full;
  }

  private async call<T>(call: Call): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      let res: HttpResponse;
      try {
        res = await this.send(call, attempt);
      } catch (e) {
        if (call.idempotent && attempt < this.retries) {
          await this.backoff(attempt);
          continue;
        }
        throw e;
      }
      if (res.ok) {
        if (res.status === 204) return undefined as T;
        return (await jsonOf(res)) as T;
      }
      if (call.retryWhenLimited && attempt === 0 && res.status === 429) {
        const wait = shortRetryAfter(res.headers.get('retry-after'));
        if (wait !== undefined) {
          await res.json().catch(() => undefined); // drain it: the connection can carry the retry
          // A little jitter: a CI matrix refused together should not all come back in the same millisecond.
          await this.sleep(wait * 1000 + Math.random() * 250);
          continue;
        }
      }
      if (
        call.idempotent &&
        attempt < this.retries &&
        (res.status === 429 || res.status === 503) &&
        !(await this.isSealed(res))
      ) {
        await this.backoff(attempt, res.headers.get('retry-after'));
        continue;
      }
      throw await this.toError(res);
    }
  }

  private async send(call: Call, _attempt: number): Promise<HttpResponse> {
    const url = new URL(this.addr + call.path);
    for (const [k, v] of Object.entries(call.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (call.body !== undefined) headers['Content-Type'] = 'application/json';
    if (call.auth !== false && this.token) headers.Authorization = `Bearer ${this.token}`;
    try {
      return await this.transport(url, {
        method: call.method,
        headers,
        ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
        timeoutMs: call.timeoutMs ?? this.timeoutMs,
      });
    } catch (e) {
      if (e instanceof CofferError) throw e; // a TLS file that cannot be read: say so, not "connection failed"
      const reason =
        (e as Error).name === 'TimeoutError'
          ? `no answer within ${call.timeoutMs ?? this.timeoutMs} ms`
          : 'connection failed';
      throw new CofferError('unavailable', `cannot reach the Coffer server at ${this.addr}: ${reason}`, 0);
    }
  }

  /** A sealed server answers 503 too, but retrying will not unseal it. */
  private async isSealed(res: HttpResponse): Promise<boolean> {
    if (res.status !== 503) return false;
    const body = (await res
      .clone()
      .json()
      .catch(() => undefined)) as ErrorBody | undefined;
    return body?.error?.code === 'sealed' || body?.error?.code === 'not_initialized';
  }

  private async backoff(attempt: number, retryAfter?: string | null): Promise<void> {
    const hinted = retryAfter && /^\d{1,3}$/.test(retryAfter) ? Number(retryAfter) * 1000 : 0;
    const base = Math.min(5_000, 200 * 2 ** attempt);
    await this.sleep(Math.max(hinted, base / 2 + Math.random() * (base / 2)));
  }

  private async toError(res: HttpResponse): Promise<CofferError> {
    const body = (await res.json().catch(() => undefined)) as ErrorBody | undefined;
    if (!body?.error?.code)
      return new CofferError(
        'unexpected_response',
        `unexpected answer from the server (HTTP ${res.status})`,
        res.status,
      );
    return new CofferError(body.error.code, body.error.message, res.status, body.error.request_id);
  }
}

/**
 * A response body as JSON. Not JSON (a proxy's page, a cut connection) is `unexpected_response`
 * saying so and nothing more: a parser's message quotes the text around where it stopped, and
 * the text of a secrets answer is secrets.
 */
async function jsonOf(res: HttpResponse): Promise<unknown> {
  try {
    return await res.json();
  } catch {
    throw new CofferError(
      'unexpected_response',
      `the server answered HTTP ${res.status} with a body that is not JSON (a proxy in between, or a cut connection?)`,
      res.status,
      res.headers.get('x-request-id') ?? undefined,
    );
  }
}

/** Retry-After in seconds when it is a delay of at most MAX_LOGIN_WAIT_S; otherwise undefined (an HTTP date included). */
function shortRetryAfter(header: string | null): number | undefined {
  if (header === null || !/^\d{1,2}$/.test(header.trim())) return undefined;
  const seconds = Number(header.trim());
  return seconds <= MAX_LOGIN_WAIT_S ? seconds : undefined;
}

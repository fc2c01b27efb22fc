import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CofferError } from './errors.js';

/** A Vault auth mount name for jwt logins; not one of Coffer's own auth paths. */
const VAULT_MOUNT_NAME = /^(?!(approle|userpass|token|jwks)$)[a-z0-9][a-z0-9_-]{0,63}$/;
/**
 * A KV mount: `name` or `name=prefix` (a Coffer path prefix); the native API's first path
 * segments are not available as names, and a prefix is not in the reserved sys or transit
 * namespaces (no secret lives there: every path of such a mount would be refused).
 */
const VAULT_KV_MOUNT =
  /^(?!(sys|auth|secrets|metadata|keys|policies|groups)(=|$))[a-z0-9][a-z0-9_-]{0,63}(=(?!(sys|transit)(\/|$))[A-Za-z0-9][A-Za-z0-9._-]{0,127}(\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,7})?$/;

/** Server configuration: file, then `COFFER_SERVER_*` env, then flags; validated once here. */
export const configSchema = z.strictObject({
  dev: z.boolean().default(false),
  listen: z
    .string()
    .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, 'expected HOST:PORT')
    .default('127.0.0.1:8740'),
  data_dir: z.string().min(1).default('./.coffer'),
  kek: z.string().optional(),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  metrics_public: z.boolean().default(false),
  /** Audit files (JSONL, hash-chained); default `<data_dir>/audit.log`. Set only here, never by API. */
  audit_files: z.array(z.string().min(1)).max(8).optional(),
  audit_stdout: z.boolean().default(false),
  /** A signed checkpoint after this many audit lines, or after `audit_checkpoint_interval_s`, whichever comes first. */
  audit_checkpoint_every: z.number().int().min(1).max(1_000_000).default(100),
  audit_checkpoint_interval_s: z.number().min(0.1).max(86_400).default(10),
  /** Failed signed-credential (jwt, approle) and userpass logins per minute per client address. */
  login_failures_per_minute: z.number().int().min(1).max(1_000_000).default(60),
  /** Failed userpass logins per minute per user (a locked user never affects another). */
  login_user_failures_per_minute: z.number().int().min(1).max(1_000_000).default(10),
  /** Peers (IPs or CIDRs) whose X-Forwarded-For names the client address; anyone else's is ignored. */
  trusted_proxies: z.array(z.string().min(1).max(64)).max(64).default([]),
  /** TLS (README "Operate: TLS and timeouts"): the server certificate (PEM, chain after the leaf allowed) and its key. */
  tls_cert_file: z.string().min(1).optional(),
  tls_key_file: z.string().min(1).optional(),
  tls_min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  /** mTLS: CA(s) that sign client certificates; with `tls_require_client_cert` a handshake without one is refused. */
  tls_client_ca_file: z.string().min(1).optional(),
  tls_require_client_cert: z.boolean().default(false),
  /** Start with a server certificate past its not-after (an emergency, never a habit). */
  allow_expired_cert: z.boolean().default(false),
  /** Serve plain HTTP on a non-loopback address (behind a TLS-terminating proxy on the same host only). */
  insecure_no_tls: z.boolean().default(false),
  /** Dev mode over HTTPS with a throw-away CA in `<data_dir>/tls/` (implies `dev`). */
  dev_tls: z.boolean().default(false),
  /** Open connections one client address may hold (trusted proxies exempt); 0: no cap. */
  max_connections_per_address: z.number().int().min(0).max(100_000).default(256),
  /** SIGTERM: how long in-flight requests may take to finish before their connections are cut. */
  shutdown_grace_s: z.number().min(0).max(3600).default(10),
  /** Upper bound on the lifetime of any token created through sys/auth/token/create (root's included). */
  token_max_ttl_s: z
    .number()
    .int()
    .min(60)
    .max(366 * 86_400)
    .default(32 * 86_400),
  /** Live child tokens (token/create, not revoked, before their max TTL) one token may hold, the root token's included (SECURITY-CASES J13). */
  token_max_children: z.number().int().min(1).max(1_000_000).default(1000),
  max_versions: z.number().int().min(1).max(10_000).default(100),
  keyring_cache_ttl_s: z.number().int().min(1).max(86_400).default(600),
  keyring_max_wraps: z
    .number()
    .int()
    .min(1)
    .max(2 ** 30)
    .default(2 ** 24),
  keyring_max_age_days: z.number().int().min(1).max(3650).default(90),
  /** The address other servers and clients should use for this one (published to replicas). */
  api_addr: z
    .string()
    .regex(/^https?:\/\/[^\s/]+$/, 'expected http(s)://host:port')
    .optional(),
  /** Replication (README "Replication"): buckets this primary ships to (file:///dir, s3://bucket/prefix?…). */
  replicate_to: z.array(z.string().min(1).max(2048)).max(8).default([]),
  /** Run as a read-only replica of the stream in this bucket. */
  replica_of: z.string().min(1).max(2048).optional(),
  /** Seconds between a replica's polls of the bucket. */
  poll_interval: z.number().min(0.05).max(3600).default(2),
  /** A replica refuses token-authenticated reads once its last verified head is older than this. */
  max_staleness_s: z.number().min(1).max(86_400).default(60),
  /** The primary's lease in the bucket; it stops acknowledging writes when it cannot renew. 0: off. */
  replication_lease_s: z.number().min(0).max(3600).default(30),
  /** Clock difference allowed between servers, added to the lease wait of a promotion. */
  replication_clock_skew_ms: z.number().int().min(0).max(600_000).default(1000),
  /** How long the shipper gathers records before it cuts a segment. */
  replication_batch_ms: z.number().int().min(10).max(10_000).default(200),
  /** A full snapshot after this many records (and at every new stream or epoch). */
  snapshot_every: z.number().int().min(100).max(100_000_000).default(50_000),
  /** Vault-compatible KV v2 mounts (docs/vault-compatibility.md): `name` (the Coffer paths as they are) or `name=prefix`. */
  vault_kv_mounts: z
    .array(z.string().regex(VAULT_KV_MOUNT, 'expected MOUNT or MOUNT=PREFIX'))
    .max(32)
    .default(['secret']),
  /** Vault auth mounts that log in with Coffer's jwt roles (`jwt` is always one). */
  vault_jwt_mounts: z.array(z.string().regex(VAULT_MOUNT_NAME, 'expected a mount name')).max(32).default(['jwt']),
});

export type ServerConfig = z.infer<typeof configSchema>;

const ENV_PREFIX = 'COFFER_SERVER_';

/** Converts an env string to the type the schema expects for `key`. */
function fromEnv(key: keyof ServerConfig, value: string): unknown {
  const shape = configSchema.shape[key];
  const inner = shape instanceof z.ZodDefault || shape instanceof z.ZodOptional ? shape.unwrap() : shape;
  if (inner instanceof z.ZodBoolean)
    return value === 'true' || value === '1' ? true : value === 'false' || value === '0' ? false : value;
  if (inner instanceof z.ZodNumber) return /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  if (inner instanceof z.ZodArray) return value.split(',').filter((v) => v !== '');
  return value;
}

export async function loadConfig(options: {
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  flags?: Partial<Record<keyof ServerConfig, unknown>>;
}): Promise<ServerConfig> {
  let fromFile: Record<string, unknown> = {};
  if (options.file) {
    let text: string;
    try {
      text = await readFile(options.file, 'utf8');
    } catch {
      throw new CofferError('invalid_request', `config file ${options.file} cannot be read`);
    }
    try {
      const parsed: unknown = options.file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
      fromFile = (parsed ?? {}) as Record<string, unknown>;
    } catch {
      throw new CofferError(
        'invalid_request',
        `config file ${options.file} is not valid ${options.file.endsWith('.json') ? 'JSON' : 'YAML'}`,
      );
    }
    if (typeof fromFile !== 'object' || Array.isArray(fromFile))
      throw new CofferError('invalid_request', `config file ${options.file} must hold an object`);
  }
  const fromEnvironment: Record<string, unknown> = {};
  for (const key of Object.keys(configSchema.shape) as (keyof ServerConfig)[]) {
    const value = options.env?.[ENV_PREFIX + key.toUpperCase()];
    if (value !== undefined) fromEnvironment[key] = fromEnv(key, value);
  }
  const flags = Object.fromEntries(Object.entries(options.flags ?? {}).filter(([, v]) => v !== undefined));
  const result = configSchema.safeParse({ ...fromFile, ...fromEnvironment, ...flags });
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new CofferError(
      'invalid_request',
      `configuration: ${issue.path.length ? `${issue.path.join('.')}: ` : ''}${issue.message}`,
    );
  }
  return result.data;
}

/**
 * The key schema of the LevelDB database, in one place: every key and prefix any part of the
 * server reads or writes is defined here and nowhere else. Keys are UTF-8 strings; values are
 * bytes. Secret paths only contain [A-Za-z0-9._-/], so '#' and '~' never occur inside a path
 * and can separate a path from a suffix without ambiguity.
 *
 * Key names are always stored in clear. Values are sealed by the storage barrier
 * (server/store/barrier.ts) except under the CLEAR keys (`isClearKey`): what must be readable
 * before the barrier can open (to unseal) or by a server that holds no keys (replication),
 * each of which already holds ciphertext or nothing secret. See docs/storage.md.
 *
 * Clear (bootstrap and bookkeeping; never sealed by the barrier):
 *   sys/seq                      last change-log sequence number (decimal)
 *   sys/format                   storage format marker and migration progress (JSON; migrate.ts)
 *   sys/seal                     seal configuration (JSON: provider, shares, threshold, cluster id)
 *   sys/master/<v>               software provider: master key version v, wrapped by the root key
 *   sys/master-meta/<v>          usage rights of an imported (BYOK) master version (JSON)
 *   kr/<ns>                      keyring of namespace <ns> (JSON: versions wrapped by the master key)
 *   repl/key                     the replication key, wrapped by the master key
 *   sys/repl/...                 replication's local state (never shipped; see replication/state.ts)
 *   log/<seq:16 hex>             change-log record of the batch that wrote sequence <seq>
 *
 * Sealed (engine records; the barrier's envelope around the value):
 *   rw/<ns>                      progress of a background DEK rewrap of <ns> (JSON)
 *   meta/<path>                  secret metadata (JSON; never values)
 *   ver/<path>#<version:10>      one secret version, its own DEK envelopes inside (secrets/record.ts)
 *   auth/policy/<name>           policy (JSON)
 *   auth/group/<name>            group (JSON)
 *   auth/userpass/<name>         userpass user with its password hash (JSON)
 *   auth/approle/<name>          approle role (JSON)
 *   auth/approle-id/<role_id>    role name of a role_id (UTF-8)
 *   auth/approle-secret/<role>/<sha256 hex>   a secret_id's uses and expiry (JSON)
 *   auth/jwt-role/<name>         jwt role (JSON)
 *   auth/jwt-jti/<role>/<jti b64url>          a single-use role's seen jti, until its exp (decimal)
 *   auth/signing/<kid>           token-signing key pair, private half sealed under the sys keyring (JSON)
 *   auth/revoked/<jti>           revoked token, until its hard exp (decimal seconds)
 *   auth/renewed/<jti>           renewed token's soft expiry (decimal seconds)
 *   auth/children/<parent>/<child>  token tree edge, until the child's hard exp (decimal seconds)
 *   audit/signing-key            audit checkpoint key pair (JSON)
 *   transit/key/<name>           transit key, its versions sealed under the transit keyring (JSON)
 *   byok/wrapping-key            BYOK RSA wrapping key pair (JSON)
 *   byok/token/<sha256 hex>      BYOK import token (JSON)
 */

// --- clear: bootstrap and bookkeeping ------------------------------------------------------
export const SEQ_KEY = 'sys/seq';
export const FORMAT_KEY = 'sys/format';
export const SEAL_KEY = 'sys/seal';
export const MASTER_PREFIX = 'sys/master/';
export const masterKey = (version: number) => `${MASTER_PREFIX}${pad(version, 10)}`;
export const MASTER_META_PREFIX = 'sys/master-meta/';
export const masterMetaKey = (version: number) => `${MASTER_META_PREFIX}${pad(version, 10)}`;
export const KEYRING_PREFIX = 'kr/';
export const keyringKey = (ns: string) => `${KEYRING_PREFIX}${ns}`;
export const REPLICATION_KEY = 'repl/key';
/** Replication's local state: written with `writeRaw`, never shipped, never in snapshots or backups. */
export const REPL_LOCAL_PREFIX = 'sys/repl/';
export const REPL_NODE_KEY = `${REPL_LOCAL_PREFIX}node`;
export const REPL_STREAM_KEY = `${REPL_LOCAL_PREFIX}stream`;
export const REPL_BOOTSTRAP_KEY = `${REPL_LOCAL_PREFIX}bootstrapping`;
export const REPL_IDENTITY_PENDING_KEY = `${REPL_LOCAL_PREFIX}identity-unverified`;
export const LOG_PREFIX = 'log/';
export const logKey = (seq: number) => `${LOG_PREFIX}${seq.toString(16).padStart(16, '0')}`;

// --- sealed: engine records -----------------------------------------------------------------
export const REWRAP_PREFIX = 'rw/';
export const rewrapKey = (ns: string) => `${REWRAP_PREFIX}${ns}`;
export const META_PREFIX = 'meta/';
export const metaKey = (path: string) => `${META_PREFIX}${path}`;
export const VERSION_PREFIX = 'ver/';
export const versionKey = (path: string, version: number) => `${VERSION_PREFIX}${path}#${pad(version, 10)}`;
export const POLICY_PREFIX = 'auth/policy/';
export const GROUP_PREFIX = 'auth/group/';
export const USER_PREFIX = 'auth/userpass/';
export const APPROLE_PREFIX = 'auth/approle/';
export const APPROLE_ID_PREFIX = 'auth/approle-id/';
export const APPROLE_SECRET_PREFIX = 'auth/approle-secret/';
export const JWT_ROLE_PREFIX = 'auth/jwt-role/';
export const JWT_JTI_PREFIX = 'auth/jwt-jti/';
export const SIGNING_PREFIX = 'auth/signing/';
export const REVOKED_PREFIX = 'auth/revoked/';
export const RENEWED_PREFIX = 'auth/renewed/';
export const CHILDREN_PREFIX = 'auth/children/';
export const CUTOFF_PREFIX = 'auth/cutoff/';
export const AUDIT_SIGNING_KEY = 'audit/signing-key';
export const TRANSIT_KEY_PREFIX = 'transit/key/';
export const BYOK_WRAPPING_KEY = 'byok/wrapping-key';
export const BYOK_TOKEN_PREFIX = 'byok/token/';

/** Exact keys whose values the barrier leaves in clear. */
export const CLEAR_KEYS: readonly string[] = [SEQ_KEY, FORMAT_KEY, SEAL_KEY, REPLICATION_KEY];
/** Prefixes whose values the barrier leaves in clear. */
export const CLEAR_PREFIXES: readonly string[] = [
  MASTER_PREFIX,
  MASTER_META_PREFIX,
  KEYRING_PREFIX,
  REPL_LOCAL_PREFIX,
  LOG_PREFIX,
];

/**
 * Whether the barrier stores this key's value as it is. Why each stays clear:
 * - sys/seq, log/: the change log and its sequence, written by the store itself under the
 *   barrier; a log record holds the stored bytes of its batch (sealed already).
 * - sys/format: read when the barrier opens, to know whether the store must be migrated.
 * - sys/seal: read before unseal (shares, threshold, key source, cluster id); nothing secret.
 * - sys/master/: the master versions, wrapped by the root key: what unseal opens first.
 * - sys/master-meta/: usage rights of imported master versions (exportable, valid_to); the
 *   provider checks them when it unwraps the keyrings, i.e. before the sys keyring is open.
 * - kr/: the keyrings, the `sys` one included, their versions wrapped by the master key: the
 *   barrier's own key lives here, so it cannot be sealed by the barrier.
 * - repl/key: the replication key wrapped by the master key; a replica reads it (or the copy
 *   in the manifest) to open the bucket, and it is published in the manifest anyway.
 * - sys/repl/: a server's own replication state (node id, stream high-water mark), read by
 *   a sealed standby to follow the bucket; nothing secret.
 * Everything else, known or not, is sealed.
 */
export function isClearKey(key: string): boolean {
  if (CLEAR_KEYS.includes(key)) return true;
  for (const prefix of CLEAR_PREFIXES) if (key.startsWith(prefix)) return true;
  return false;
}

/** Parses `ver/<path>#<version>` back into its parts. */
export function parseVersionKey(key: string): { path: string; version: number } | undefined {
  if (!key.startsWith(VERSION_PREFIX)) return undefined;
  const hash = key.lastIndexOf('#');
  if (hash < 0) return undefined;
  return { path: key.slice(VERSION_PREFIX.length, hash), version: Number(key.slice(hash + 1)) };
}

function pad(n: number, width: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('key component must be a non-negative integer');
  return String(n).padStart(width, '0');
}

/**
 * The vault identity a fresh replica copies from the bucket's manifest before it can verify
 * anything: the seal configuration and the wrapped master versions, nothing else.
 */
export const REPLICA_IDENTITY_KEY = /^sys\/(?:seal|master\/[0-9]{10})$/;
/** The identity a backup header carries: as for replicas, plus the rights of imported master versions. */
export const BACKUP_IDENTITY_KEY = /^sys\/(?:seal|master\/[0-9]{10}|master-meta\/[0-9]{10})$/;

/** Keys that are the server's own and never leave it (snapshots, backups): the change log, the sequence, replication state. */
export const isLocalKey = (key: string) =>
  key.startsWith(LOG_PREFIX) || key === SEQ_KEY || key.startsWith(REPL_LOCAL_PREFIX);

/** Upper bound for a prefix scan: every key starting with `prefix` sorts below it. */
export const prefixEnd = (prefix: string) => `${prefix}\uffff`;

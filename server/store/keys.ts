/**
 * The key schema of the LevelDB database, in one place. Keys are UTF-8 strings; values are
 * bytes. Secret paths only contain [A-Za-z0-9._-/], so '#' and '~' never occur inside a path
 * and can separate a path from a suffix without ambiguity.
 *
 *   sys/seq                      last change-log sequence number (decimal)
 *   sys/seal                     seal configuration (JSON: provider, shares, threshold, cluster id)
 *   sys/root-token               SHA-256 of the root token
 *   sys/master/<v>               software provider: master key version v, wrapped by the root key
 *   kr/<ns>                      keyring of namespace <ns> (JSON: versions wrapped by the master key)
 *   rw/<ns>                      progress of a background DEK rewrap of <ns> (JSON)
 *   meta/<path>                  secret metadata (JSON; never values)
 *   ver/<path>#<version:10>      one secret version: keyring version, wrapped DEK, sealed value
 *   log/<seq:16 hex>             change-log record of the batch that wrote sequence <seq>
 */
export const SEQ_KEY = 'sys/seq';
export const SEAL_KEY = 'sys/seal';
export const ROOT_TOKEN_KEY = 'sys/root-token';
export const masterKey = (version: number) => `sys/master/${pad(version, 10)}`;
export const MASTER_PREFIX = 'sys/master/';
export const keyringKey = (ns: string) => `kr/${ns}`;
export const KEYRING_PREFIX = 'kr/';
export const rewrapKey = (ns: string) => `rw/${ns}`;
export const REWRAP_PREFIX = 'rw/';
export const META_PREFIX = 'meta/';
export const metaKey = (path: string) => `${META_PREFIX}${path}`;
export const VERSION_PREFIX = 'ver/';
export const versionKey = (path: string, version: number) => `${VERSION_PREFIX}${path}#${pad(version, 10)}`;
export const LOG_PREFIX = 'log/';
export const logKey = (seq: number) => `${LOG_PREFIX}${seq.toString(16).padStart(16, '0')}`;

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

/** Upper bound for a prefix scan: every key starting with `prefix` sorts below it. */
export const prefixEnd = (prefix: string) => `${prefix}\uffff`;

/**
 * The closed lists and limits of the wire contract (docs/api.md), once: the request schemas
 * (schemas.ts), the response types (types.ts) and the server's engines all take them from here.
 * No imports: the SDK may load this without zod.
 */

/** Secret types (`PUT /v1/secrets/{path}` `type`). */
export const SECRET_TYPES = ['kv', 'password', 'token', 'certificate'] as const;
export type SecretType = (typeof SECRET_TYPES)[number];

/** Character sets of a generated password (`generate.charset`); the alphabets are the server's (server/secrets/types.ts). */
export const PASSWORD_CHARSETS = ['alphanumeric', 'symbols', 'hex', 'digits'] as const;
export type PasswordCharset = (typeof PASSWORD_CHARSETS)[number];

/** A secret's `data` at most this many bytes once encoded (`413 too_large`). */
export const MAX_DATA_BYTES = 64 * 1024;
/** Keys of a secret's metadata (Vault's `custom_metadata`), also after a merge. */
export const MAX_METADATA_KEYS = 64;
/** Paths in one `POST /v1/secrets:batch`. */
export const MAX_BATCH = 100;
/** Secrets in one `POST /v1/secrets:batch-write`. */
export const MAX_BATCH_WRITE = 1000;
/**
 * A batch write's body limits (every other route: 1 MiB and 10,000 JSON entries): room for
 * 1,000 secrets of 16 KiB, at the same 100 bytes per entry as elsewhere. Clients split by them.
 */
export const MAX_BATCH_WRITE_BYTES = 16 * 1024 * 1024;
export const MAX_BATCH_WRITE_ENTRIES = 160_000;

/** What a named (transit) key may be used for. */
export const KEY_USAGES = ['encrypt', 'decrypt', 'datakey'] as const;
export type KeyUsage = (typeof KEY_USAGES)[number];

/** Policy rule capabilities; an explicit `deny` wins. */
export const CAPABILITIES = ['read', 'list', 'create', 'update', 'delete', 'destroy', 'admin', 'deny'] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** Policy and group names. */
export const POLICY_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** The signature algorithms a jwt role may allow (asymmetric only: never `none` or HMAC). */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export type JwtAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

/** Hashes of the RSA-OAEP layer of a BYOK bundle (`oaep_hash`). */
export const OAEP_HASHES = ['sha256', 'sha1'] as const;
export type OaepHash = (typeof OAEP_HASHES)[number];

/** A listing cursor (`next`, passed back as `after`): `~` + base64url. A secret path cannot start with `~`. */
export const LIST_CURSOR = /^~[A-Za-z0-9_-]{40,1100}$/;

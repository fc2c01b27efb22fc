import type { z } from 'zod';
import type { ErrorCode } from '../../sdk/wire/errors.js';
import {
  appRoleBody,
  appRoleLoginBody,
  auditLinesQuery,
  batchBody,
  capabilitiesQuery,
  byokExportBody,
  byokImportBody,
  byokWrappingKeyQuery,
  datakeyBody,
  decryptBody,
  deleteQuery,
  emptyBody,
  emptyQuery,
  healthQuery,
  encryptBody,
  groupBody,
  initBody,
  jwtLoginBody,
  jwtRoleSchema,
  keyConfigBody,
  keyCreateBody,
  keyringRotateBody,
  listQuery,
  policyBody,
  putSecretBody,
  readQuery,
  rotateSigningBody,
  tokenCreateBody,
  tokenRevokeBody,
  unsealBody,
  userBody,
  userpassLoginBody,
  versionsBody,
  kvListQuery,
  kvMetadataBody,
  kvMetadataPatchBody,
  kvMetadataQuery,
  kvPatchBody,
  kvReadQuery,
  kvVersionsBody,
  kvWriteBody,
  vaultRenewBody,
} from '../../sdk/wire/schemas.js';

/**
 * Every HTTP route of Coffer, once: what the OpenAPI document (openapi.ts) is generated from,
 * and what docs/api.md is checked against. The request schemas are the very zod objects the
 * route handlers validate with (imported, never copied). test/server/http/route-catalogue.test.ts
 * walks the express router of `createApp` and fails when a route is missing here or an entry
 * names a route that does not exist.
 */
export type Method = 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/**
 * Where a route sits in app.ts, which decides the errors it can answer whatever its handler does:
 * - `public`: before the seal gate (answers while sealed or not initialized; no token; not audited);
 * - `unsealed`: after the seal gate, no token, not audited (the JWKS);
 * - `login`: after the seal gate and the audit and replica-staleness gates, no token;
 * - `token`: a token is required (and every request is audited).
 */
export type Stage = 'public' | 'unsealed' | 'login' | 'token';

export interface RouteEntry {
  method: Method;
  /** The path exactly as registered with express (`methods(router, path, …)`). */
  path: string;
  /** The OpenAPI path template (`{name}`); several entries may share one express route (undelete, destroy). */
  openapiPath: string;
  operationId: string;
  tag: 'sys' | 'secrets' | 'keys' | 'auth' | 'access' | 'byok' | 'replication' | 'vault';
  summary: string;
  stage: Stage;
  /** The capability checked, in words (`read on <path>`, `admin on sys/policies/<name>`), or `none`. */
  capability: string;
  /** JSON request body: the schema the handler validates with. `null`: a JSON body is read and must be `{}`-shaped but is ignored. */
  body?: z.ZodType | null;
  query?: z.ZodType;
  /** Success status and what it carries. */
  response: { status: number; description: string; content?: 'json' | 'text' | 'octet' | 'none' };
  /** Other success statuses (health). */
  otherResponses?: Record<number, string>;
  /** Errors the handler itself (or the engine under it) answers; app-level ones are added by openapi.ts. */
  errors: ErrorCode[];
  /** Writes the store: refused on a replica, on a lost lease or a full or failing disk. */
  writes?: boolean;
  /** Opens keyrings (HSM or key provider calls on a cache miss, envelope decryption). */
  keys?: boolean;
}

const secretPathParam = '{path}';

const adminCrud = (
  base: string,
  area: string,
  kind: string,
  tag: RouteEntry['tag'],
  body: z.ZodType,
  operation: string,
  putResult: string,
): RouteEntry[] => [
  { method: 'GET', path: base, openapiPath: base, operationId: `list${operation}s`, tag, summary: `List ${kind} names`, stage: 'token', capability: `admin on sys/${area}`, response: { status: 200, description: '`{keys: [name, …]}`' }, errors: [] },
  { method: 'GET', path: `${base}/:name`, openapiPath: `${base}/{name}`, operationId: `get${operation}`, tag, summary: `Read a ${kind}`, stage: 'token', capability: `admin on sys/${area}/<name>`, response: { status: 200, description: `The ${kind} as stored (never a password hash)` }, errors: ['not_found'] },
  { method: 'PUT', path: `${base}/:name`, openapiPath: `${base}/{name}`, operationId: `put${operation}`, tag, summary: `Create or replace a ${kind}`, stage: 'token', capability: `admin on sys/${area}/<name>`, body, response: { status: 200, description: putResult }, errors: [], writes: true },
  { method: 'DELETE', path: `${base}/:name`, openapiPath: `${base}/{name}`, operationId: `delete${operation}`, tag, summary: `Delete a ${kind}`, stage: 'token', capability: `admin on sys/${area}/<name>`, response: { status: 204, description: 'Deleted', content: 'none' }, errors: ['not_found'], writes: true },
];

export const OPENAPI_PATH = '/v1/sys/openapi.json';

const ROUTES_NATIVE: readonly RouteEntry[] = [
  // --- sys: answer while sealed (app.ts publicSysRoutes and the OpenAPI document)
  {
    method: 'GET', path: '/v1/sys/health', openapiPath: '/v1/sys/health', operationId: 'health', tag: 'sys', stage: 'public', capability: 'none',
    summary: 'Health for load balancers and probes (`?replicaok=true`, `sealedcode`, `uninitcode`, `replicacode`; Vault\'s `standbyok`, `activecode`, `standbycode` too)', query: healthQuery,
    response: { status: 200, description: 'Initialized, unsealed, active primary. `{initialized, sealed, role, version, storage?, draining?, fenced?, audit?, warnings?}` and Vault\'s `{standby, performance_standby, replication_performance_mode, replication_dr_mode, server_time_utc, cluster_name}`; the flags `standbyok`, `activecode`, `standbycode`, `sealedcode`, `uninitcode` choose the status as in Vault' },
    otherResponses: { 429: 'Unsealed replica (not the active node); same body', 501: 'Not initialized; same body', 503: 'Sealed, draining, the database refuses writes (`storage: {error, since}`), no audit sink (`audit: "unavailable"`), or fenced (`fenced: true`: another server was promoted); same body' },
    errors: ['invalid_request'],
  },
  {
    method: 'GET', path: '/v1/sys/seal-status', openapiPath: '/v1/sys/seal-status', operationId: 'sealStatus', tag: 'sys', stage: 'public', capability: 'none',
    summary: 'Seal state and unseal progress',
    response: { status: 200, description: '`{initialized, sealed, threshold, shares, progress, provider, …}` (never the unseal nonce)' },
    errors: [],
  },
  {
    method: 'POST', path: '/v1/sys/init', openapiPath: '/v1/sys/init', operationId: 'init', tag: 'sys', stage: 'public', capability: 'none (30 requests/min per client address)',
    summary: 'Initialize the vault once: master key, shares, root token', body: initBody,
    response: { status: 200, description: '`{shares: [base64, …], root_token}`, shown once (recovery shares for an auto-unseal key source)' },
    errors: ['already_initialized', 'conflict', 'rate_limited', 'hsm_unavailable'], writes: true,
  },
  {
    method: 'POST', path: '/v1/sys/unseal', openapiPath: '/v1/sys/unseal', operationId: 'unseal', tag: 'sys', stage: 'public', capability: 'none (30 requests/min per client address)',
    summary: 'Submit one unseal share, or reset the progress (with the nonce)', body: unsealBody,
    response: { status: 200, description: 'The seal status; the first accepted share of a round adds `nonce`' },
    errors: ['unseal_failed', 'not_initialized', 'rate_limited', 'hsm_unavailable'],
  },
  {
    method: 'GET', path: OPENAPI_PATH, openapiPath: OPENAPI_PATH, operationId: 'openapi', tag: 'sys', stage: 'public', capability: 'none',
    summary: 'This OpenAPI 3.1 document',
    response: { status: 200, description: 'The OpenAPI document of every route, generated at start from the route schemas' },
    errors: [],
  },
  // --- unsealed, no token
  {
    method: 'GET', path: '/v1/auth/jwks', openapiPath: '/v1/auth/jwks', operationId: 'jwks', tag: 'auth', stage: 'unsealed', capability: 'none',
    summary: "Public JWKS of Coffer's token signing keys",
    response: { status: 200, description: '`{keys: [JWK, …]}` (Ed25519 public keys; `Cache-Control: public, max-age=300`)' },
    errors: [],
  },
  // --- logins
  {
    method: 'POST', path: '/v1/auth/userpass/login', openapiPath: '/v1/auth/userpass/login', operationId: 'loginUserpass', tag: 'auth', stage: 'login', capability: 'none (failures limited per address and per user)',
    summary: 'Log in with a username and password', body: userpassLoginBody,
    response: { status: 200, description: '`{token, expires_at, groups, policies, identity}`' },
    errors: ['unauthenticated', 'rate_limited'], writes: true,
  },
  {
    method: 'POST', path: '/v1/auth/jwt/login', openapiPath: '/v1/auth/jwt/login', operationId: 'loginJwt', tag: 'auth', stage: 'login', capability: 'none (failures limited per address)',
    summary: 'Log in with a CI identity token (GitHub Actions, GitLab, Kubernetes, any OIDC issuer)', body: jwtLoginBody,
    response: { status: 200, description: '`{token, expires_at, groups, policies, identity}`' },
    errors: ['unauthenticated', 'rate_limited', 'idp_unavailable'], writes: true,
  },
  {
    method: 'POST', path: '/v1/auth/approle/login', openapiPath: '/v1/auth/approle/login', operationId: 'loginApprole', tag: 'auth', stage: 'login', capability: 'none (failures limited per address)',
    summary: 'Log in with a role_id and secret_id', body: appRoleLoginBody,
    response: { status: 200, description: '`{token, expires_at, groups, policies, identity}`' },
    errors: ['unauthenticated', 'rate_limited'], writes: true,
  },
  // --- replication (reachable on a stale replica)
  {
    method: 'GET', path: '/v1/sys/replication', openapiPath: '/v1/sys/replication', operationId: 'replicationStatus', tag: 'replication', stage: 'token', capability: 'admin on sys/replication',
    summary: 'Replication role, epoch, sequence, targets and lag',
    response: { status: 200, description: '`{role, epoch, last_seq, node, targets: [{url, epoch, last_shipped_seq, ok, error, last_ok_at, lease_until, snapshot_seq}], primary, lag_seq, lag_ms, stale, fenced, writes_from, replica: {epoch, applied_seq, head_seq, verified_head_at, bootstrapping, error: {code, message, at}, …}}` (times ISO 8601; `writes_from` null unless a promotion waits out the old lease)' },
    errors: [],
  },
  {
    method: 'POST', path: '/v1/sys/replication/promote', openapiPath: '/v1/sys/replication/promote', operationId: 'replicationPromote', tag: 'replication', stage: 'token', capability: 'admin on sys/replication',
    summary: 'Promote this replica to primary (a new epoch)', body: emptyBody,
    response: { status: 200, description: "`{epoch, writes_from}`, answered once writes are accepted (after the old primary's lease ran out)" },
    errors: ['not_found', 'read_only_replica', 'conflict'],
  },
  {
    method: 'POST', path: '/v1/sys/replication/snapshot', openapiPath: '/v1/sys/replication/snapshot', operationId: 'replicationSnapshot', tag: 'replication', stage: 'token', capability: 'admin on sys/replication',
    summary: 'Ask the primary to cut a snapshot into its buckets', body: emptyBody,
    response: { status: 202, description: '`{requested: true}`' },
    errors: ['not_found'],
  },
  // --- secrets
  {
    method: 'GET', path: '/v1/secrets', openapiPath: '/v1/secrets', operationId: 'listSecrets', tag: 'secrets', stage: 'token', capability: 'list somewhere under the prefix; only listable paths are shown',
    summary: 'List secret paths (paginated), or the secrets expiring soon', query: listQuery,
    response: { status: 200, description: '`{keys: [path, …], next}` (`next`: a path or an opaque `~…` cursor to pass as `after`, or null); with `expiring_within`: `{secrets: [{path, version, type, expires_at, …}]}`' },
    errors: [],
  },
  {
    method: 'POST', path: '/v1/secrets\\:batch', openapiPath: '/v1/secrets:batch', operationId: 'batchRead', tag: 'secrets', stage: 'token', capability: 'read on each path (checked one by one)',
    summary: 'Read many secrets at once', body: batchBody,
    response: { status: 200, description: '`{secrets: {path: secret}, errors: {path: {code, message}}}`; one audit line lists every path with its outcome' },
    errors: [], keys: true,
  },
  {
    method: 'GET', path: '/v1/secrets/*path', openapiPath: `/v1/secrets/${secretPathParam}`, operationId: 'readSecret', tag: 'secrets', stage: 'token', capability: 'read on <path>',
    summary: 'Read a secret (the current version, or `?version=N`)', query: readQuery,
    response: { status: 200, description: '`{path, version, type, data, metadata, created_at, expires_at}`' },
    errors: ['invalid_path', 'not_found', 'integrity_error'], keys: true,
  },
  {
    method: 'PUT', path: '/v1/secrets/*path', openapiPath: `/v1/secrets/${secretPathParam}`, operationId: 'writeSecret', tag: 'secrets', stage: 'token', capability: 'create (new path) or update (existing); one 403 either way',
    summary: 'Write a new version of a secret', body: putSecretBody, query: emptyQuery,
    response: { status: 200, description: '`{path, version, created_at, …}`' },
    errors: ['invalid_path', 'cas_mismatch'], writes: true, keys: true,
  },
  {
    method: 'DELETE', path: '/v1/secrets/*path', openapiPath: `/v1/secrets/${secretPathParam}`, operationId: 'deleteSecret', tag: 'secrets', stage: 'token', capability: 'delete on <path>',
    summary: 'Soft-delete the current version (or `?versions=1,2`)', query: deleteQuery,
    response: { status: 204, description: 'Deleted (undelete restores)', content: 'none' },
    errors: ['invalid_path', 'not_found'], writes: true,
  },
  {
    method: 'POST', path: '/v1/secrets/*path', openapiPath: `/v1/secrets/${secretPathParam}/undelete`, operationId: 'undeleteSecret', tag: 'secrets', stage: 'token', capability: 'update on <path>',
    summary: 'Undelete soft-deleted versions', body: versionsBody,
    response: { status: 204, description: 'Restored', content: 'none' },
    errors: ['invalid_path', 'not_found'], writes: true,
  },
  {
    method: 'POST', path: '/v1/secrets/*path', openapiPath: `/v1/secrets/${secretPathParam}/destroy`, operationId: 'destroySecret', tag: 'secrets', stage: 'token', capability: 'destroy on <path>',
    summary: 'Permanently erase versions (ciphertext and data key)', body: versionsBody,
    response: { status: 204, description: 'Destroyed', content: 'none' },
    errors: ['invalid_path', 'not_found'], writes: true,
  },
  {
    method: 'GET', path: '/v1/metadata/*path', openapiPath: `/v1/metadata/${secretPathParam}`, operationId: 'readMetadata', tag: 'secrets', stage: 'token', capability: 'read on <path>',
    summary: 'Versions and metadata of a secret, never its values', query: emptyQuery,
    response: { status: 200, description: '`{path, type, current_version, metadata, created_at, updated_at, versions: [{version, type, created_at, deleted_at, destroyed, expires_at}]}`' },
    errors: ['invalid_path', 'not_found'],
  },
  // --- keys (data-key API; capabilities on transit/<name>)
  {
    method: 'GET', path: '/v1/keys/:name', openapiPath: '/v1/keys/{name}', operationId: 'readKey', tag: 'keys', stage: 'token', capability: 'read on transit/<name>',
    summary: 'Describe a named key (never its material)',
    response: { status: 200, description: '`{name, latest_version, min_decryption_version, exportable, usage, versions: [{version, created_at}]}`' },
    errors: ['invalid_path', 'not_found'],
  },
  {
    method: 'POST', path: '/v1/keys/:name', openapiPath: '/v1/keys/{name}', operationId: 'createKey', tag: 'keys', stage: 'token', capability: 'create on transit/<name>',
    summary: 'Create a named key', body: keyCreateBody,
    response: { status: 200, description: 'The key description' },
    errors: ['invalid_path', 'already_exists'], writes: true, keys: true,
  },
  {
    method: 'POST', path: '/v1/keys/:name/rotate', openapiPath: '/v1/keys/{name}/rotate', operationId: 'rotateKey', tag: 'keys', stage: 'token', capability: 'update on transit/<name>',
    summary: 'Add a key version (new encryptions use it)', body: emptyBody,
    response: { status: 200, description: 'The key description' },
    errors: ['invalid_path', 'not_found'], writes: true, keys: true,
  },
  {
    method: 'POST', path: '/v1/keys/:name/config', openapiPath: '/v1/keys/{name}/config', operationId: 'configureKey', tag: 'keys', stage: 'token', capability: 'update on transit/<name>',
    summary: 'Set the oldest version that may still decrypt', body: keyConfigBody,
    response: { status: 200, description: 'The key description' },
    errors: ['invalid_path', 'not_found'], writes: true,
  },
  {
    method: 'POST', path: '/v1/keys/:name/encrypt', openapiPath: '/v1/keys/{name}/encrypt', operationId: 'encrypt', tag: 'keys', stage: 'token', capability: 'update on transit/<name>',
    summary: 'Encrypt base64 plaintext', body: encryptBody,
    response: { status: 200, description: '`{ciphertext}` (`coffer:v<version>:<base64>`)' },
    errors: ['invalid_path', 'not_found'], keys: true,
  },
  {
    method: 'POST', path: '/v1/keys/:name/decrypt', openapiPath: '/v1/keys/{name}/decrypt', operationId: 'decrypt', tag: 'keys', stage: 'token', capability: 'read on transit/<name>',
    summary: 'Decrypt a ciphertext', body: decryptBody,
    response: { status: 200, description: '`{plaintext}` (base64)' },
    errors: ['invalid_path', 'not_found'], keys: true,
  },
  {
    method: 'POST', path: '/v1/keys/:name/datakey', openapiPath: '/v1/keys/{name}/datakey', operationId: 'dataKey', tag: 'keys', stage: 'token', capability: 'update on transit/<name>',
    summary: 'Generate a data key: plaintext and wrapped', body: datakeyBody,
    response: { status: 200, description: '`{plaintext, ciphertext}` (a 256-bit key, base64, and its ciphertext under the named key)' },
    errors: ['invalid_path', 'not_found'], keys: true,
  },
  {
    method: 'POST', path: '/v1/keys/:name/rewrap', openapiPath: '/v1/keys/{name}/rewrap', operationId: 'rewrap', tag: 'keys', stage: 'token', capability: 'update on transit/<name>',
    summary: 'Re-encrypt a ciphertext under the latest key version', body: decryptBody,
    response: { status: 200, description: '`{ciphertext}`' },
    errors: ['invalid_path', 'not_found'], keys: true,
  },
  // --- tokens
  {
    method: 'GET', path: '/v1/auth/token/self', openapiPath: '/v1/auth/token/self', operationId: 'tokenSelf', tag: 'auth', stage: 'token', capability: 'any valid token',
    summary: "The caller's identity, groups, policies and expiry",
    response: { status: 200, description: '`{identity, groups, policies, expires_at, jti, meta}`' },
    errors: [],
  },
  {
    method: 'GET', path: '/v1/auth/token/capabilities', openapiPath: '/v1/auth/token/capabilities', operationId: 'tokenCapabilities', tag: 'auth', stage: 'token', capability: 'any valid token (its own grants only)',
    summary: 'What the caller\'s token may do at a capability path', query: capabilitiesQuery,
    response: { status: 200, description: '`{path, capabilities: [read, list, …]}` (an explicit deny leaves a capability out)' },
    errors: [],
  },
  {
    method: 'POST', path: '/v1/auth/token/renew', openapiPath: '/v1/auth/token/renew', operationId: 'tokenRenew', tag: 'auth', stage: 'token', capability: 'any valid token but the root token',
    summary: 'Extend the same token, up to its max TTL', body: emptyBody,
    response: { status: 200, description: '`{token, expires_at, groups, policies, identity}` (the same token string)' },
    errors: [], writes: true,
  },
  {
    method: 'POST', path: '/v1/auth/token/revoke', openapiPath: '/v1/auth/token/revoke', operationId: 'tokenRevoke', tag: 'auth', stage: 'token', capability: 'none for the own token; admin on sys/auth/token/revoke for another',
    summary: 'Revoke a token (the caller\'s own when `token` is absent) and its descendants', body: tokenRevokeBody,
    response: { status: 204, description: 'Revoked', content: 'none' },
    errors: [], writes: true,
  },
  {
    method: 'POST', path: '/v1/auth/token/create', openapiPath: '/v1/auth/token/create', operationId: 'tokenCreate', tag: 'auth', stage: 'token', capability: 'admin on sys/auth/token/create (and sys/auth/token/create-orphan for `orphan`)',
    summary: "Mint a token bounded by the caller's own grants and lifetime", body: tokenCreateBody,
    response: { status: 200, description: '`{token, expires_at, groups, policies, identity}`' },
    errors: [], writes: true,
  },
  {
    method: 'POST', path: '/v1/auth/jwks/rotate', openapiPath: '/v1/auth/jwks/rotate', operationId: 'rotateSigningKey', tag: 'auth', stage: 'token', capability: 'admin on sys/auth/jwks',
    summary: 'Rotate the token signing key', body: rotateSigningBody,
    response: { status: 200, description: '`{kid, token?}`: the new signing key id; with `retire_previous`, the caller\'s token re-signed under the new key' },
    errors: [], writes: true, keys: true,
  },
  // --- policies and groups
  ...adminCrud('/v1/policies', 'policies', 'policy', 'access', policyBody, 'Policy', 'The policy `{name, rules}`'),
  ...adminCrud('/v1/groups', 'groups', 'group', 'access', groupBody, 'Group', 'The group `{name, policies, members}`'),
  // --- login method configuration
  ...adminCrud('/v1/auth/userpass/users', 'auth/userpass', 'userpass user', 'auth', userBody, 'User', 'The user without its password hash'),
  ...adminCrud('/v1/auth/approle/roles', 'auth/approle', 'approle role', 'auth', appRoleBody, 'AppRole', 'The role, with its `role_id`'),
  {
    method: 'POST', path: '/v1/auth/approle/roles/:name/secret-id', openapiPath: '/v1/auth/approle/roles/{name}/secret-id', operationId: 'createSecretId', tag: 'auth', stage: 'token', capability: 'admin on sys/auth/approle/<name>',
    summary: 'Issue a secret_id for an approle role', body: emptyBody,
    response: { status: 200, description: '`{secret_id, expires_at, uses}` (shown once)' },
    errors: ['not_found'], writes: true,
  },
  ...adminCrud('/v1/auth/jwt/roles', 'auth/jwt', 'jwt role', 'auth', jwtRoleSchema, 'JwtRole', 'The role with its defaults filled in'),
  // --- sys admin
  {
    method: 'POST', path: '/v1/sys/seal', openapiPath: '/v1/sys/seal', operationId: 'seal', tag: 'sys', stage: 'token', capability: 'admin on sys/seal',
    summary: 'Seal the vault (keys dropped from memory)', body: emptyBody,
    response: { status: 204, description: 'Sealed', content: 'none' },
    errors: [],
  },
  {
    method: 'GET', path: '/v1/sys/audit', openapiPath: '/v1/sys/audit', operationId: 'auditStatus', tag: 'sys', stage: 'token', capability: 'admin on sys/audit',
    summary: 'Audit checkpoint key and log state',
    response: { status: 200, description: '`{public_key_pem, last_seq, sinks, failed_writes, checkpoint_every, checkpoint_interval_s}`' },
    errors: [],
  },
  {
    method: 'GET', path: '/v1/sys/audit/lines', openapiPath: '/v1/sys/audit/lines', operationId: 'auditLines', tag: 'sys', stage: 'token', capability: 'admin on sys/audit',
    summary: 'Recent request lines of the first audit file, filtered, and the file\'s chain verification', query: auditLinesQuery,
    response: { status: 200, description: '`{lines: [request line, …] newest first, file, scanned, verification: {ok, lines, checkpoints, last_seq, signatures_verified, unsigned_tail, first_bad} | null, verification_skipped?}`' },
    errors: [],
  },
  {
    method: 'POST', path: '/v1/sys/rotate', openapiPath: '/v1/sys/rotate', operationId: 'rotateMaster', tag: 'sys', stage: 'token', capability: 'admin on sys/rotate',
    summary: 'New master key version; keyrings are re-wrapped under it', body: emptyBody,
    response: { status: 200, description: '`{master_version, keyrings_rewrapped}`' },
    errors: [], writes: true, keys: true,
  },
  {
    method: 'GET', path: '/v1/sys/keyrings/:ns', openapiPath: '/v1/sys/keyrings/{ns}', operationId: 'readKeyring', tag: 'sys', stage: 'token', capability: 'admin on sys/keyrings/<ns>',
    summary: "A namespace keyring's versions and rewrap progress",
    response: { status: 200, description: '`{namespace, master_version, current, versions: [{version, created_at, wraps, master_version}], rewrap}`' },
    errors: ['invalid_path', 'not_found'],
  },
  {
    method: 'POST', path: '/v1/sys/keyrings/:ns/rotate', openapiPath: '/v1/sys/keyrings/{ns}/rotate', operationId: 'rotateKeyring', tag: 'sys', stage: 'token', capability: 'admin on sys/keyrings/<ns>',
    summary: 'New keyring version; `rewrap: true` re-wraps data keys in the background', body: keyringRotateBody,
    response: { status: 200, description: '`{namespace, version, rewrap}`' },
    errors: ['invalid_path'], writes: true, keys: true,
  },
  {
    method: 'GET', path: '/v1/sys/metrics', openapiPath: '/v1/sys/metrics', operationId: 'metrics', tag: 'sys', stage: 'token', capability: 'admin on sys/metrics (none with `metrics_public`)',
    summary: 'Prometheus metrics',
    response: { status: 200, description: 'Prometheus text exposition format', content: 'text' },
    errors: [],
  },
  {
    method: 'GET', path: '/v1/sys/backup', openapiPath: '/v1/sys/backup', operationId: 'backup', tag: 'sys', stage: 'token', capability: 'admin on sys/backup',
    summary: 'Stream one consistent, online, encrypted snapshot of the store',
    response: {
      status: 200, content: 'octet',
      description: 'The backup file (`coffer restore` reads it), under a backup key wrapped by the master key; headers `X-Coffer-Vault-Id`, `X-Coffer-Backup-Id`, `X-Coffer-Backup-Seq`. A stream that fails midway is cut (no end marker) and refused by restore.',
    },
    errors: [], keys: true,
  },
  // --- BYOK
  {
    method: 'GET', path: '/v1/sys/byok/wrapping-key', openapiPath: '/v1/sys/byok/wrapping-key', operationId: 'byokWrappingKey', tag: 'byok', stage: 'token', capability: 'admin on sys/byok',
    summary: 'RSA wrapping key and a single-use import token (24 h)', query: byokWrappingKeyQuery,
    response: { status: 200, description: '`{public_key_pem, import_token, expires_at, oaep_hashes, exportable, valid_to}`' },
    errors: [], writes: true, keys: true,
  },
  {
    method: 'POST', path: '/v1/sys/byok/import', openapiPath: '/v1/sys/byok/import', operationId: 'byokImport', tag: 'byok', stage: 'token', capability: 'admin on sys/byok',
    summary: 'Import wrapped master-key material as the new master key version', body: byokImportBody,
    response: { status: 200, description: '`{master_version, keyrings_rewrapped, …rights}`' },
    errors: ['key_expired'], writes: true, keys: true,
  },
  {
    method: 'POST', path: '/v1/sys/byok/export', openapiPath: '/v1/sys/byok/export', operationId: 'byokExport', tag: 'byok', stage: 'token', capability: 'admin on sys/byok, and a quorum of unseal (or recovery) shares',
    summary: 'Export the current master key wrapped to a customer RSA key', body: byokExportBody,
    response: { status: 200, description: '`{bundle, master_version}`' },
    errors: ['unseal_failed', 'not_exportable'], keys: true,
  },
];

/** The logins also answer PUT (Vault's clients write with it), the same operation. */
const LOGIN_PUTS: RouteEntry[] = ROUTES_NATIVE.filter((r) => r.stage === 'login' && /^\/v1\/auth\/[a-z]+\/login$/.test(r.path)).map((r) => ({ ...r, method: 'PUT', operationId: `${r.operationId}Put` }));

/** `action` is a KV route (`data`, `metadata`, …) below which the secret path follows, or `metadata:root` / `metadata/:root` for the mount root. */
const kv = (method: Method, action: string, operationId: string, summary: string, capability: string, extra: Partial<RouteEntry> & Pick<RouteEntry, 'response' | 'errors'>): RouteEntry => ({
  method, path: action.startsWith('metadata') && action !== 'metadata' ? `/v1/secret/${action.slice(0, -5)}` : `/v1/secret/${action}/*path`,
  openapiPath: action.startsWith('metadata') && action !== 'metadata' ? `/v1/secret/${action.slice(0, -5)}` : `/v1/secret/${action}/${secretPathParam}`,
  operationId, tag: 'vault', stage: 'token', summary, capability, ...extra,
});
const vaultRead = 'Vault\'s envelope `{request_id, lease_id, renewable, lease_duration, data, wrap_info, warnings, auth}`';
const written = { status: 200, description: `${vaultRead}; \`data\`: the version\'s \`{created_time, custom_metadata, deletion_time, destroyed, version}\`` };
const noContent = { status: 204, description: 'Done', content: 'none' as const };

/**
 * The Vault-compatible routes (docs/vault-compatibility.md), shown on the default KV mount
 * `secret` (each configured mount has the same). Their errors are Vault's `{errors: [...]}`.
 */
const VAULT_ROUTES: RouteEntry[] = [
  kv('GET', 'data', 'vaultKvRead', 'Read a version (`?version=`), as Vault KV v2', 'read on <path>', { query: kvReadQuery, response: { status: 200, description: `${vaultRead}; \`data: {data, metadata}\`. A deleted or destroyed version is 404 with \`data: {data: null, metadata}\`` }, errors: ['not_found'], keys: true }),
  kv('PUT', 'data', 'vaultKvWrite', 'Write a new version (`options.cas`)', 'create (new) or update (existing) on <path>', { body: kvWriteBody, response: written, errors: ['cas_mismatch'], writes: true, keys: true }),
  kv('POST', 'data', 'vaultKvWritePost', 'Write a new version (as PUT)', 'create (new) or update (existing) on <path>', { body: kvWriteBody, response: written, errors: ['cas_mismatch'], writes: true, keys: true }),
  kv('PATCH', 'data', 'vaultKvPatch', 'Merge a JSON merge patch into the current version', 'read and update on <path>', { body: kvPatchBody, response: written, errors: ['not_found', 'cas_mismatch'], writes: true, keys: true }),
  kv('DELETE', 'data', 'vaultKvDeleteLatest', 'Soft-delete the current version', 'delete on <path>', { response: noContent, errors: ['not_found'], writes: true }),
  kv('POST', 'delete', 'vaultKvDelete', 'Soft-delete versions', 'delete on <path>', { body: kvVersionsBody, response: noContent, errors: ['not_found'], writes: true }),
  kv('PUT', 'delete', 'vaultKvDeletePut', 'Soft-delete versions (as POST)', 'delete on <path>', { body: kvVersionsBody, response: noContent, errors: ['not_found'], writes: true }),
  kv('POST', 'undelete', 'vaultKvUndelete', 'Undelete versions', 'update on <path>', { body: kvVersionsBody, response: noContent, errors: ['not_found'], writes: true }),
  kv('PUT', 'undelete', 'vaultKvUndeletePut', 'Undelete versions (as POST)', 'update on <path>', { body: kvVersionsBody, response: noContent, errors: ['not_found'], writes: true }),
  kv('POST', 'destroy', 'vaultKvDestroy', 'Destroy versions', 'destroy on <path>', { body: kvVersionsBody, response: noContent, errors: ['not_found'], writes: true }),
  kv('PUT', 'destroy', 'vaultKvDestroyPut', 'Destroy versions (as POST)', 'destroy on <path>', { body: kvVersionsBody, response: noContent, errors: ['not_found'], writes: true }),
  kv('GET', 'metadata:root', 'vaultKvListRoot', 'List the mount root (`LIST`, or `?list=true`)', 'list somewhere below; only listable names are shown', { query: kvListQuery, response: { status: 200, description: `${vaultRead}; \`data: {keys}\` (folders end in \`/\`)` }, errors: ['not_found'] }),
  kv('GET', 'metadata/:root', 'vaultKvListRootSlash', 'List the mount root (trailing slash)', 'list somewhere below; only listable names are shown', { query: kvListQuery, response: { status: 200, description: `${vaultRead}; \`data: {keys}\`` }, errors: ['not_found'] }),
  kv('GET', 'metadata', 'vaultKvMetadata', 'Read metadata, or list below the path with `LIST` / `?list=true`', 'read on <path> (list: list below it)', { query: kvMetadataQuery, response: { status: 200, description: `${vaultRead}; \`data: {cas_required, created_time, current_version, custom_metadata, delete_version_after, max_versions, oldest_version, updated_time, versions: {"1": {created_time, deletion_time, destroyed}}}\`, or \`{keys}\`` }, errors: ['not_found'] }),
  kv('PUT', 'metadata', 'vaultKvMetadataWrite', 'Set custom_metadata, max_versions, cas_required (also before the first version)', 'create (new) or update (existing) on <path>', { body: kvMetadataBody, response: noContent, errors: [], writes: true }),
  kv('POST', 'metadata', 'vaultKvMetadataWritePost', 'Set metadata (as PUT)', 'create (new) or update (existing) on <path>', { body: kvMetadataBody, response: noContent, errors: [], writes: true }),
  kv('PATCH', 'metadata', 'vaultKvMetadataPatch', 'Merge into the metadata (`custom_metadata` keys set to null are removed)', 'update on <path>', { body: kvMetadataPatchBody, response: noContent, errors: ['not_found'], writes: true }),
  kv('DELETE', 'metadata', 'vaultKvMetadataDelete', 'Erase the secret: every version and its metadata', 'destroy on <path>', { response: noContent, errors: [], writes: true }),
  {
    method: 'GET', path: '/v1/auth/token/lookup-self', openapiPath: '/v1/auth/token/lookup-self', operationId: 'vaultLookupSelf', tag: 'vault', stage: 'token', capability: 'any valid token',
    summary: 'The calling token, as Vault describes it', query: emptyQuery,
    response: { status: 200, description: `${vaultRead}; \`data: {accessor, creation_time, creation_ttl, display_name, entity_id, expire_time, explicit_max_ttl, groups, issue_time, meta, num_uses, orphan, path, policies, renewable, ttl, type}\` (never the token itself)` },
    errors: [],
  },
  ...(['POST', 'PUT'] as const).map((method): RouteEntry => ({
    method, path: '/v1/auth/token/renew-self', openapiPath: '/v1/auth/token/renew-self', operationId: method === 'POST' ? 'vaultRenewSelf' : 'vaultRenewSelfPut', tag: 'vault', stage: 'token', capability: 'any valid token',
    summary: 'Extend the calling token in place (the same token)', body: vaultRenewBody,
    response: { status: 200, description: `${vaultRead}; \`auth: {client_token, accessor, policies, token_policies, metadata, lease_duration, renewable, entity_id, token_type}\`` },
    errors: ['forbidden'], writes: true,
  })),
  ...(['POST', 'PUT'] as const).map((method): RouteEntry => ({
    method, path: '/v1/auth/token/revoke-self', openapiPath: '/v1/auth/token/revoke-self', operationId: method === 'POST' ? 'vaultRevokeSelf' : 'vaultRevokeSelfPut', tag: 'vault', stage: 'token', capability: 'any valid token',
    summary: 'Revoke the calling token and its children', body: emptyBody,
    response: noContent, errors: [], writes: true,
  })),
  {
    method: 'GET', path: '/v1/sys/internal/ui/mounts/*path', openapiPath: '/v1/sys/internal/ui/mounts/{path}', operationId: 'vaultMountPreflight', tag: 'vault', stage: 'token', capability: 'any valid token',
    summary: 'The KV mount of a path (the `vault` CLI\'s preflight)', query: emptyQuery,
    response: { status: 200, description: `${vaultRead}; \`data: {path: "secret/", type: "kv", options: {version: "2"}, …}\`` },
    errors: ['not_found'],
  },
  {
    method: 'GET', path: '/v1/sys/mounts', openapiPath: '/v1/sys/mounts', operationId: 'vaultMounts', tag: 'vault', stage: 'token', capability: 'any valid token',
    summary: 'The KV mounts', query: emptyQuery,
    response: { status: 200, description: '`{"secret/": {type, options, …}, data: {…the same}}`' },
    errors: [],
  },
];

export const ROUTES: readonly RouteEntry[] = [...ROUTES_NATIVE, ...LOGIN_PUTS, ...VAULT_ROUTES];

import type { z } from 'zod';
import type { Capability, JwtAlgorithm, KeyUsage, SecretType } from './constants.js';
import type { ErrorCode, ReplicationErrorCode } from './errors.js';
import type { Timestamp } from './time.js';
import type { RequestLine } from './audit.js';
import type * as schema from './schemas.js';

/**
 * Request and response shapes of the HTTP API (docs/api.md), once for the server and its
 * clients. Requests are inferred from the zod schemas the server validates with (schemas.ts):
 * `z.input`, what a client may send (defaults optional). Responses are declared here, and the
 * server's handlers are typed against them, so an answer that drifts from this file does not
 * compile. Extra response fields may be added; a field never changes type. Every point in time
 * is a `Timestamp` (time.ts: ISO 8601 UTC), never a number.
 */
export type { Capability, JwtAlgorithm, KeyUsage, SecretType, Timestamp };

// ---- requests (inferred from schemas.ts)

export type PutSecretRequest = z.input<typeof schema.putSecretBody>;
export type BatchRequest = z.input<typeof schema.batchBody>;
export type BatchWriteEntry = z.input<typeof schema.batchWriteEntry>;
/** The route checks each entry apart (schemas.ts `batchWriteBody`); what a client sends is entries of this shape. */
export interface BatchWriteRequest {
  secrets: BatchWriteEntry[];
}
export type VersionsRequest = z.input<typeof schema.versionsBody>;
export type InitRequest = z.input<typeof schema.initBody>;
export type UnsealRequest = z.input<typeof schema.unsealBody>;
export type KeyringRotateRequest = z.input<typeof schema.keyringRotateBody>;
export type KeyCreateRequest = z.input<typeof schema.keyCreateBody>;
export type KeyConfigRequest = z.input<typeof schema.keyConfigBody>;
export type EncryptRequest = z.input<typeof schema.encryptBody>;
export type DecryptRequest = z.input<typeof schema.decryptBody>;
export type DatakeyRequest = z.input<typeof schema.datakeyBody>;
export type ByokImportRequest = z.input<typeof schema.byokImportBody>;
export type ByokExportRequest = z.input<typeof schema.byokExportBody>;
export type PolicyRequest = z.input<typeof schema.policyBody>;
export type GroupRequest = z.input<typeof schema.groupBody>;
export type TokenCreateRequest = z.input<typeof schema.tokenCreateBody>;
export type TokenRevokeRequest = z.input<typeof schema.tokenRevokeBody>;
export type UserRequest = z.input<typeof schema.userBody>;
export type AppRoleRequest = z.input<typeof schema.appRoleBody>;
export type JwtRoleRequest = z.input<typeof schema.jwtRoleSchema>;
export type UserpassLoginRequest = z.input<typeof schema.userpassLoginBody>;
export type AppRoleLoginRequest = z.input<typeof schema.appRoleLoginBody>;
export type JwtLoginRequest = z.input<typeof schema.jwtLoginBody>;
export type RotateSigningRequest = z.input<typeof schema.rotateSigningBody>;
export type AuditLinesRequest = z.input<typeof schema.auditLinesQuery>;
export type CapabilitiesRequest = z.input<typeof schema.capabilitiesQuery>;

// ---- secrets

export interface Secret {
  path: string;
  version: number;
  type: SecretType;
  data: Record<string, string>;
  metadata: Record<string, string>;
  created_at: Timestamp;
  expires_at: Timestamp | null;
}

export interface PutSecretResult {
  path: string;
  version: number;
  created_at: Timestamp;
}

export interface SecretVersionInfo {
  version: number;
  type: SecretType;
  created_at: Timestamp;
  deleted_at: Timestamp | null;
  destroyed: boolean;
  expires_at: Timestamp | null;
}

export interface SecretMetadata {
  path: string;
  type: SecretType;
  current_version: number;
  metadata: Record<string, string>;
  created_at: Timestamp;
  updated_at: Timestamp;
  versions: SecretVersionInfo[];
}

export interface ListResult {
  keys: string[];
  /** A path or an opaque `~…` cursor to pass as `after`, or null at the end. */
  next: string | null;
}

/** `GET /v1/secrets?expiring_within=…`. */
export interface ExpiringResult {
  secrets: { path: string; version: number; type: SecretType; expires_at: Timestamp; expired: boolean }[];
}

export interface BatchResult {
  secrets: Record<string, Secret>;
  errors: Record<string, { code: string; message: string }>;
}

/** One entry's outcome in a batch write: its new version, or why it was not written. */
export type BatchWriteOutcome = PutSecretResult | { path: string; error: { code: ErrorCode; message: string } };

/** `POST /v1/secrets:batch-write`: one outcome per entry, in the order sent. */
export interface BatchWriteResult {
  results: BatchWriteOutcome[];
}

// ---- keys (data-key API)

export interface TransitKeyInfo {
  name: string;
  latest_version: number;
  min_decryption_version: number;
  exportable: boolean;
  usage: KeyUsage[];
  versions: { version: number; created_at: Timestamp }[];
}

// ---- auth

export interface LoginResult {
  /** From a renewal: the same token that was renewed (renewal extends it in place). */
  token: string;
  /** The effective expiry now; renewals move it, never past the token's max TTL (the JWT `exp`). */
  expires_at: Timestamp;
  groups: string[];
  policies: string[];
  identity: string;
}

export interface TokenSelf {
  identity: string;
  groups: string[];
  policies: string[];
  /** The effective expiry, renewals applied. */
  expires_at: Timestamp;
  jti: string;
  /** Identity details from the login (jwt `claim_mappings`). */
  meta: Record<string, string>;
}

/** `GET /v1/auth/token/capabilities`: what the caller's own token may do at `path` (never `deny`: a denied capability is left out). */
export interface TokenCapabilities {
  path: string;
  capabilities: Capability[];
}

/** `GET /v1/auth/jwks`: Ed25519 public keys (JWK). */
export interface Jwks {
  keys: Record<string, unknown>[];
}

export interface SigningKeyRotation {
  kid: string;
  /** With `retire_previous`: the caller's token re-signed under the new key. */
  token?: string;
}

export interface SecretIdResult {
  secret_id: string;
  expires_at: Timestamp | null;
  uses: number | null;
}

/** `{keys}` of an admin collection (policies, groups, users, roles). */
export interface NameList {
  keys: string[];
}

export interface PolicyRule {
  path: string;
  capabilities: Capability[];
}

export interface Policy {
  name: string;
  rules: PolicyRule[];
}

export interface Group {
  name: string;
  policies: string[];
  /** Identities that belong to the group whatever their token says (e.g. `user:alice`). */
  members: string[];
}

interface TokenSettings {
  groups: string[];
  policies: string[];
  /** Seconds. */
  token_ttl: number;
  token_max_ttl: number;
}

/** A userpass user as answered (never its password hash). */
export interface UserpassUser extends TokenSettings {
  name: string;
}

export interface AppRole extends TokenSettings {
  name: string;
  role_id: string;
  /** Seconds; 0: secret ids do not expire. */
  secret_id_ttl: number;
  /** 0: unlimited. */
  secret_id_num_uses: number;
  bound_cidrs: string[];
}

/** A jwt role as stored and answered: the request with its defaults filled in. */
export type JwtRole = z.output<typeof schema.jwtRoleSchema> & { name: string };

/** The admin collections (`/v1/policies`, `/v1/groups`, `/v1/auth/userpass/users`, `/v1/auth/approle/roles`, `/v1/auth/jwt/roles`). */
export type AdminKind = 'policy' | 'group' | 'user' | 'approle' | 'jwt';

/** What an admin collection answers for one object (GET and PUT). */
export interface AdminObjects {
  policy: Policy;
  group: Group;
  user: UserpassUser;
  approle: AppRole;
  jwt: JwtRole;
}

/** What a PUT of one admin object takes. */
export interface AdminRequests {
  policy: PolicyRequest;
  group: GroupRequest;
  user: UserRequest;
  approle: AppRoleRequest;
  jwt: JwtRoleRequest;
}

// ---- system

export interface SealStatus {
  initialized: boolean;
  sealed: boolean;
  threshold: number;
  shares: number;
  progress: number;
  provider: string;
  /** Returned to whoever submits shares while an unseal is in progress; `reset` must show it. */
  nonce?: string;
  /** The current master key version while unsealed; imported material may expire (BYOK `valid_to`). */
  master_key?: {
    version: number;
    imported: boolean;
    exportable: boolean;
    valid_to: Timestamp | null;
    expired: boolean;
  };
}

export interface Health {
  initialized: boolean;
  sealed: boolean;
  role: 'primary' | 'replica';
  version: string;
  /** The database refuses writes (disk full or failing) since then. */
  storage?: { error: string; since: Timestamp };
  /** After SIGTERM: finishing in-flight requests (health answers 503). */
  draining?: true;
  /** A primary that saw another server promoted: it refuses writes (health answers 503). */
  fenced?: true;
  /** No audit sink takes lines: every audited request is refused (health answers 503). */
  audit?: 'unavailable';
  /** Conditions an operator must act on (e.g. expired master key material); absent when none. */
  warnings?: string[];
}

export interface InitResult {
  /** Unseal (or recovery) shares, base64; shown once. */
  shares: string[];
  root_token: string;
}

export interface AuditSinkStatus {
  name: string;
  kind: 'file' | 'fifo' | 'socket' | 'stdout';
  state: 'ok' | 'failing' | 'stalled';
  since: Timestamp;
  last_error: string | null;
  /** Sequence number of the last line the sink holds (null: none yet). */
  written_seq: number | null;
  /** Lines waiting for this sink. */
  behind: number;
  failed_writes: number;
}

export interface AuditInfo {
  /** The checkpoint public key (PEM); null until first unsealed. */
  public_key_pem: string | null;
  last_seq: number;
  sinks: number;
  failed_writes: number;
  sink_status: AuditSinkStatus[];
  checkpoint_every: number;
  checkpoint_interval_s: number | null;
}

/** `GET /v1/sys/audit/lines`. */
export interface AuditLines {
  /** Matching request lines, newest first. */
  lines: RequestLine[];
  /** The file they come from (the first configured audit file), or null when no file sink is configured. */
  file: string | null;
  /** Request lines looked at (the newest ones of the file, up to the scan bound). */
  scanned: number;
  /**
   * The whole file's hash chain and checkpoint signatures, checked as `coffer audit verify`
   * does (a live log's unsigned tail is allowed); null with `verification_skipped` when the
   * file is too large to check here.
   */
  verification: {
    ok: boolean;
    lines: number;
    checkpoints: number;
    last_seq: number | null;
    signatures_verified: boolean;
    unsigned_tail: number;
    first_bad: { line: number; reason: string } | null;
  } | null;
  verification_skipped?: string;
}

export interface MasterRotation {
  master_version: number;
  keyrings_rewrapped: number;
}

export interface RewrapProgress {
  namespace: string;
  state: 'running' | 'done' | 'failed';
  target_version: number;
  /** Last `ver/` key handled; the job resumes after it. */
  cursor: string | null;
  /** Version records in the namespace when the job started (for progress bars). */
  total: number;
  scanned: number;
  rewrapped: number;
  started_at: Timestamp;
  finished_at: Timestamp | null;
  error?: string | undefined;
}

export interface KeyringStatus {
  namespace: string;
  master_version: number;
  current: number;
  versions: { version: number; created_at: Timestamp; wraps: number; master_version: number }[];
  rewrap: RewrapProgress | null;
}

export interface KeyringRotation {
  namespace: string;
  version: number;
  rewrap: RewrapProgress | null;
}

// ---- BYOK

/** The usage rights bound to imported master-key material. */
export interface MaterialRights {
  /** Whether a quorum may export it again (`POST /v1/sys/byok/export`). */
  exportable: boolean;
  /** When the material stops working, or null for never. */
  valid_to: Timestamp | null;
}

export interface ByokWrappingKey extends MaterialRights {
  public_key_pem: string;
  import_token: string;
  expires_at: Timestamp;
  oaep_hashes: string[];
}

export interface ByokImportResult extends MasterRotation, MaterialRights {}

export interface ByokExportResult {
  bundle: string;
  master_version: number;
}

// ---- replication

export interface ReplicationTarget {
  url: string;
  epoch: number;
  last_shipped_seq: number;
  ok: boolean;
  error: string | null;
  last_ok_at: Timestamp | null;
  lease_until: Timestamp | null;
  snapshot_seq: number | null;
}

/** What a replica reports about the stream it follows. */
export interface ReplicaProgress {
  epoch: number;
  applied_seq: number;
  head_seq: number | null;
  primary: string;
  /** `issued_at` of the newest verified manifest this replica has fully applied. */
  verified_head_at: Timestamp | null;
  lag_seq: number;
  lag_ms: number;
  stale: boolean;
  bootstrapping: boolean;
  error: { code: ReplicationErrorCode; message: string; at: Timestamp } | null;
}

/** `GET /v1/sys/replication`. */
export interface ReplicationStatus {
  role: 'primary' | 'replica' | 'standalone';
  epoch: number;
  last_seq: number;
  /** This server's node id in the replication stream (stable across restarts; absent on a standalone server). */
  node?: string;
  targets: ReplicationTarget[];
  primary: string;
  lag_seq: number;
  lag_ms: number;
  stale: boolean;
  fenced: string | null;
  /** While a promotion waits out the old primary's lease: when writes are accepted from; null otherwise. */
  writes_from: Timestamp | null;
  replica: ReplicaProgress | null;
}

export interface PromoteResult {
  epoch: number;
  /** When writes are accepted from. */
  writes_from: Timestamp;
}

/**
 * Stable error codes shared by the server and its clients. A code never changes meaning;
 * new codes may be added.
 */
export const ERROR_STATUS = {
  invalid_request: 400,
  invalid_path: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  cas_mismatch: 409,
  read_only_replica: 409,
  already_initialized: 409,
  already_exists: 409,
  not_exportable: 409,
  key_expired: 409,
  too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
  integrity_error: 500,
  decryption_failed: 500,
  sealed: 503,
  not_initialized: 503,
  idp_unavailable: 503,
  audit_unavailable: 503,
  hsm_unavailable: 503,
  replica_stale: 503,
  lease_expired: 503,
  /** The database's disk is full (or over quota): writes refused, reads still served. */
  storage_full: 507,
  /** The database cannot write (an I/O error): writes refused until it recovers. */
  storage_unavailable: 503,
  unseal_failed: 400,
  /** A backup file failed its digest or a chunk's MAC (altered, damaged or truncated). */
  backup_corrupt: 422,
  /** A backup of another vault, or one the given master key (file, shares, HSM key) does not open. */
  backup_foreign: 409,
  /** A restore target (data directory) already holds data. */
  not_empty: 409,
  /** Another operation holds what this one needs (a promotion, an epoch claim, an init) : retry or wait. */
  conflict: 409,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/**
 * Why a replica cannot apply what the bucket holds, or a primary cannot ship: `replica.error.code`
 * in `GET /v1/sys/replication` and the `code` of replication log lines (docs/api.md "Replication").
 * They never reach a client as an HTTP error code.
 */
export const REPLICATION_ERROR = {
  truncated: 'an object is shorter than its header says (cut in transit or on disk)',
  bad_mac: 'an object or manifest does not verify under the replication key (tampered, or another vault)',
  bad_format: 'an object verifies but its content is malformed (a bug or a forgery with the key)',
  other_vault: 'the bucket or an object belongs to another vault (cluster id or master key differs)',
  other_key: 'the manifest is under another replication key',
  no_manifest: 'the bucket holds no manifest yet',
  rollback: 'the manifest is older than one already verified',
  chain_mismatch: "the applied chain differs from the manifest's",
  chain_broken: 'a segment does not chain to the last applied one (reordered, replayed or forked)',
  old_epoch_gone: 'segments of the epoch this replica stands in are gone: it bootstraps from the snapshot',
  gap: 'a segment the manifest announces is not readable yet: the replica waits',
  diverged:
    'this replica applied records of an epoch the new primary does not continue: rebuild it from a fresh data directory',
  identity_mismatch: 'the vault identity copied from the bucket differs from the authenticated manifest (discarded)',
  misnamed: 'a segment holds other records than its name says (moved or replayed)',
  replayed: 'a segment does not continue the applied sequence',
  snapshot_missing: 'the snapshot the manifest names (or one of its parts) is missing',
  snapshot_mismatch: 'a snapshot part or index is not the one the manifest commits to',
  bucket_ahead: 'the bucket has records this primary does not: it refuses to overwrite them',
  lease_held: "the previous primary's lease has not run out yet",
  manifest_changed: "the manifest was changed behind this primary's back",
  fenced: 'another server was promoted: this one refuses writes',
  unavailable: 'the bucket cannot be reached',
} as const;

export type ReplicationErrorCode = keyof typeof REPLICATION_ERROR;

/** The body of every error response. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; request_id: string };
}

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
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** The body of every error response. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; request_id: string };
}

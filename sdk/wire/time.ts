/**
 * The one time format on the wire (docs/api.md "Conventions"): every point in time a response
 * carries is an ISO 8601 / RFC 3339 string in UTC with milliseconds, `2026-01-02T03:04:05.678Z`
 * (what `Date.prototype.toISOString` writes), or null. Durations are numbers whose name says the
 * unit (`lag_ms`, `checkpoint_interval_s`, `token_ttl` in seconds). Requests take RFC 3339 with
 * any offset (`expires_at`, `valid_to`).
 */
export type Timestamp = string;

/** Exactly the form the server writes. */
export const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Milliseconds since the epoch, as the wire writes them. */
export const timestamp = (ms: number): Timestamp => new Date(ms).toISOString();

export const timestampOrNull = (ms: number | null | undefined): Timestamp | null =>
  ms === null || ms === undefined ? null : timestamp(ms);

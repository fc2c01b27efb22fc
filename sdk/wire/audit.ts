/**
 * The audit line format (docs/api.md "Audit lines"), once for the server that writes it
 * (server/audit/log.ts, server/http/audit.ts) and the verifier that reads it (sdk/audit.ts).
 *
 * One JSON object per line. Every line has `type`, `time`, `seq` and `prev`, the SHA-256 (hex) of
 * the previous line's bytes (without the newline); a file's first line continues the chain of
 * the file before it. Secret values, tokens and passwords never appear.
 */
export const AUDIT_LINE_TYPES = ['request', 'open', 'checkpoint', 'gap', 'withheld'] as const;
export type AuditLineType = (typeof AUDIT_LINE_TYPES)[number];

/** What every line carries; the log adds `seq` and `prev` when it chains the line. */
export interface AuditLineBase {
  type: AuditLineType;
  /** When the line was written (ISO 8601). */
  time: string;
  seq: number;
  /** SHA-256 (hex) of the previous line. */
  prev: string;
}

export type AuditOutcome = 'ok' | 'denied' | 'error';

export interface AuditPathOutcome {
  path: string;
  outcome: AuditOutcome;
  error_code?: string;
}

/** What one audited request contributes (a `request` line without the chain fields). */
export interface AuditRequest {
  /** As in `X-Request-Id`. */
  request_id: string;
  /** The caller (a login: the identity it logged in as); null when unknown. */
  identity: string | null;
  groups: string[];
  /** `METHOD <express route>`, e.g. `GET /v1/secrets/*path`, or `METHOD unmatched`. */
  operation: string;
  /** The capability path checked, or null. */
  path: string | null;
  status: number;
  outcome: AuditOutcome;
  /** The client address (the socket peer, or X-Forwarded-For from a trusted proxy). */
  client: string;
  error_code?: string;
  /** A request that touches several secrets (a batch read): each path with its own outcome. */
  paths?: AuditPathOutcome[];
  /** mTLS: the verified client certificate of the connection (subject DN, SHA-256 fingerprint). */
  client_cert?: { subject: string; sha256: string };
}

export interface RequestLine extends AuditLineBase, AuditRequest {
  type: 'request';
}

/** A sink's file skips from the line after `after` (sequence `from - 1`) to the line naming it. */
export interface MissedLines {
  sink: string;
  from: number;
  after: string;
}

/** A truncation (or a missing head) an operator accepted with `COFFER_AUDIT_ACCEPT_TRUNCATION`. */
export interface AcceptedGap {
  stored_seq: number;
  stored_head: string;
  file_seq: number | null;
  reason: string;
}

/** What a start records about the chain it continues (an `open` line without its base fields). */
export interface OpenFields {
  /** This server checks its log against a stored chain head at start. */
  head?: true;
  /** It started without a head file. */
  head_missing?: true;
  gap?: AcceptedGap;
  /** Lines after the head that a crash left, which the start cut off. */
  unconfirmed?: { sink: string; from: number; to: number }[];
  /** Files behind the chain at the start. */
  missed?: MissedLines[];
}

export interface OpenLine extends AuditLineBase, OpenFields {
  type: 'open';
}

/** Signs the chain: `sig` is an Ed25519 signature (base64) over `checkpointMessage(seq, head)`. */
export interface CheckpointLine extends AuditLineBase {
  type: 'checkpoint';
  /** The SHA-256 of the line before (equal to `prev`). */
  head: string;
  kid: string;
  sig: string;
}

/** Sinks that missed lines past the backlog continue from here. */
export interface GapLine extends AuditLineBase {
  type: 'gap';
  missed: MissedLines[];
}

/** Sequence numbers (as [from, to] ranges) of requests answered 503 audit_unavailable. */
export interface WithheldLine extends AuditLineBase {
  type: 'withheld';
  error_code: 'audit_unavailable';
  seqs: [number, number][];
}

export type AuditLine = RequestLine | OpenLine | CheckpointLine | GapLine | WithheldLine;

/** A line before the log chains it: everything but `seq` and `prev`. */
export type UnchainedLine<L extends AuditLine = AuditLine> = L extends AuditLine ? Omit<L, 'seq' | 'prev'> : never;

/** The bytes a checkpoint signs. */
export const checkpointMessage = (seq: number, head: string): string => `coffer-audit-checkpoint:${seq}:${head}`;

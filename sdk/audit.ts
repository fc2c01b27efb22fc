import { createPublicKey, hash, verify as verifySignature } from 'node:crypto';
import { checkpointMessage, type AuditLineBase, type MissedLines } from './wire/audit.js';

export { checkpointMessage, type MissedLines };

/**
 * The audit log verifier (no server code: the CLI runs it offline); the line types are
 * sdk/wire/audit.ts.
 *
 * One JSON object per line. Every line has `prev`, the SHA-256 (hex) of the previous line's
 * bytes (without the newline); a file's first line continues the chain of the file before it.
 * Every N lines a checkpoint line signs the chain: `{type:"checkpoint", seq, head, kid, sig}`
 * where `head` is the SHA-256 of the line before it and `sig` an Ed25519 signature (base64) over
 * `coffer-audit-checkpoint:<seq>:<head>`.
 *
 * Sinks are written independently. A sink that missed lines (it was failing or stalled past
 * the server's backlog) continues with a line (type `gap`, or the `open` line of a restart)
 * whose `missed` lists `{sink, from, after}`: that sink's file skips from the line whose
 * SHA-256 is `after` (sequence `from - 1`) to this line. The verifier accepts the skip only
 * for the file it was told it is checking (`sink`), so a gap recorded for another sink never
 * excuses lines cut out of this one, and `missed` counts on no other line type; the checkpoint after the marker signs it (and, through
 * `after`, everything before it). A `withheld` line names the sequence numbers of requests
 * that were answered 503 audit_unavailable because no sink took their line in time.
 */
/** A line as the verifier parses it: the base fields (sdk/wire/audit.ts), everything else still unchecked. */
export interface AuditEntry extends AuditLineBase {
  [field: string]: unknown;
}

export interface VerifyResult {
  ok: boolean;
  lines: number;
  checkpoints: number;
  /** 1-based number of the first line that fails, and why. */
  firstBad?: { line: number; reason: string };
  /** Lines after the last verified checkpoint (not yet covered by a signature). */
  unsignedTail: number;
  /** Whether checkpoint signatures were checked (a public key was given). */
  signaturesVerified: boolean;
  /** Gaps an operator accepted at a start (the server records them in its `open` line). */
  gaps: { line: number; stored_seq: number; file_seq: number | null; reason: string }[];
  /** Sequence number of the last line (null for an empty log). */
  lastSeq: number | null;
  /** Restarts whose log could not be checked against a stored head (first start of this version, or the head was deleted). */
  uncheckedRestarts: number[];
  /** Lines this sink missed, as recorded by the server (`missed`), accepted for `sink`. */
  sinkGaps: { line: number; sink: string; from: number; to: number }[];
  /**
   * Lines a restart found past the last confirmed line after a crash (the `open` line's
   * `unconfirmed`): written, never acknowledged. `cut`: removed from `sink` at that start (this
   * version); otherwise (older servers) kept in the log and continued from.
   */
  unconfirmed: { line: number; sink: string | null; from: number; to: number; cut: boolean }[];
}

export interface VerifyOptions {
  /** The audit checkpoint public key (PEM). With it, the tail must be signed (below) unless `requireSignedTail: false`. */
  publicKeyPem?: string;
  /**
   * Fail when the lines after the last checkpoint exceed what a live server leaves unsigned:
   * more than `maxUnsignedLines`, or the oldest of them older than `maxUnsignedSeconds` plus
   * `graceSeconds` at `now`. Default: on when a public key is given.
   */
  requireSignedTail?: boolean;
  /** The server's `audit_checkpoint_every` (default 100). */
  maxUnsignedLines?: number;
  /** The server's `audit_checkpoint_interval_s` (default 10). */
  maxUnsignedSeconds?: number;
  /** Slack for clock skew and a slow write (default 2 s). */
  graceSeconds?: number;
  /** Last sequence number the server reports; a log that ends before it was truncated. */
  expectLastSeq?: number;
  /**
   * Which configured audit sink this file is (its path as in `audit_files`, resolved): a gap
   * marker is accepted only for it. Without it no gap is accepted.
   */
  sink?: string;
  now?: () => number;
}

// One-shot `hash` (node >= 20.12): the server hashes every audit line, and a Hash object per line costs 2.5x.
export const sha256Hex = (text: string): string => hash('sha256', text, 'hex');

/**
 * Checks the chain, the sequence numbers and (given the audit public key) every checkpoint
 * signature. A deleted, edited, reordered or inserted line breaks the chain at that line; with
 * the key, an edit whose chain was recomputed fails at the next checkpoint's signature.
 *
 * Everything after the last valid checkpoint is unauthenticated: anyone who can write the
 * file can cut it there, or rewrite it with a fresh chain. So with the key the tail is held to
 * the server's own bound: the server signs within `audit_checkpoint_every` lines or
 * `audit_checkpoint_interval_s` seconds of a line (and when it stops), so a longer or older
 * unsigned tail means lines (a checkpoint among them) were dropped, or the server crashed or
 * is sealed. What this cannot see offline: a cut within the bound, or exactly at a checkpoint;
 * the server's start-up check against its stored head and `expectLastSeq` cover those.
 */
export function verifyAuditLog(text: string, options: VerifyOptions = {}): VerifyResult {
  const key = options.publicKeyPem ? createPublicKey(options.publicKeyPem) : undefined;
  const result: VerifyResult = {
    ok: true,
    lines: 0,
    checkpoints: 0,
    unsignedTail: 0,
    signaturesVerified: key !== undefined,
    gaps: [],
    uncheckedRestarts: [],
    sinkGaps: [],
    unconfirmed: [],
    lastSeq: null,
  };
  const fail = (line: number, reason: string): VerifyResult => ({ ...result, ok: false, firstBad: { line, reason } });
  if (text.length > 0 && !text.endsWith('\n')) {
    const lineCount = text.split('\n').length;
    return fail(lineCount, 'the file ends inside a line (truncated)');
  }
  const lines = text.split('\n').slice(0, -1);
  let previousHash: string | undefined;
  let previousSeq: number | undefined;
  let firstUnsigned: { line: number; time: number } | undefined;
  let headAware = false;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    let entry: AuditEntry;
    try {
      entry = JSON.parse(raw) as AuditEntry;
    } catch {
      return fail(i + 1, 'not JSON');
    }
    if (typeof entry.prev !== 'string' || typeof entry.seq !== 'number') return fail(i + 1, 'missing prev or seq');
    // Only a gap marker or a restart's open line may excuse a skip (the server writes `missed` nowhere else).
    const missed =
      (entry.type === 'gap' || entry.type === 'open') && Array.isArray(entry.missed)
        ? (entry.missed as MissedLines[]).filter(
            (m) => m && m.after === previousHash && m.from === (previousSeq ?? -2) + 1 && m.from <= entry.seq,
          )
        : [];
    const skip =
      previousHash !== undefined && entry.prev !== previousHash
        ? missed.find((m) => m.sink === options.sink)
        : undefined;
    if (skip) {
      result.sinkGaps.push({ line: i + 1, sink: skip.sink, from: skip.from, to: entry.seq - 1 });
    } else {
      if (previousHash !== undefined && entry.prev !== previousHash) {
        const other = missed[0]
          ? ` (a gap marker for sink ${missed[0].sink} is here: if this file is that sink, verify it with that sink name)`
          : '';
        return fail(i + 1, `chain broken: a line before it was deleted, edited or reordered${other}`);
      }
      if (previousSeq !== undefined && entry.seq !== previousSeq + 1)
        return fail(i + 1, `sequence jumps from ${previousSeq} to ${entry.seq}`);
    }
    if (entry.type === 'checkpoint') {
      if (entry.head !== entry.prev) return fail(i + 1, 'checkpoint head does not match the chain');
      if (key) {
        const ok =
          typeof entry.sig === 'string' &&
          verifySignature(
            null,
            Buffer.from(checkpointMessage(entry.seq, entry.prev)),
            key,
            Buffer.from(entry.sig, 'base64'),
          );
        if (!ok) return fail(i + 1, 'checkpoint signature is invalid');
      }
      result.checkpoints++;
      result.unsignedTail = 0;
      firstUnsigned = undefined;
    } else {
      result.unsignedTail++;
      firstUnsigned ??= { line: i + 1, time: Date.parse(entry.time) };
      if (entry.type === 'open') {
        const gap = entry.gap as { stored_seq?: unknown; file_seq?: unknown; reason?: unknown } | undefined;
        if (gap && typeof gap.stored_seq === 'number') {
          result.gaps.push({
            line: i + 1,
            stored_seq: gap.stored_seq,
            file_seq: typeof gap.file_seq === 'number' ? gap.file_seq : null,
            reason: typeof gap.reason === 'string' ? gap.reason : '',
          });
        }
        if (entry.head_missing === true) {
          // After a server that kept a chain head, a restart without it is a removed head file:
          // the server refuses to start then unless an operator accepted it, which records a gap.
          if (headAware && !gap)
            return fail(
              i + 1,
              'restart without the chain head after a server that kept one (the head file was removed): a truncation before this line was not checked',
            );
          result.uncheckedRestarts.push(i + 1);
        }
        if (entry.head === true) headAware = true;
        const unconfirmed = entry.unconfirmed;
        for (const u of Array.isArray(unconfirmed) ? unconfirmed : unconfirmed ? [unconfirmed] : []) {
          const range = u as { sink?: unknown; from?: unknown; to?: unknown };
          if (typeof range.from !== 'number' || typeof range.to !== 'number') continue;
          result.unconfirmed.push({
            line: i + 1,
            sink: typeof range.sink === 'string' ? range.sink : null,
            from: range.from,
            to: range.to,
            cut: Array.isArray(unconfirmed),
          });
        }
      }
    }
    previousHash = sha256Hex(raw);
    previousSeq = entry.seq;
    result.lastSeq = entry.seq;
    result.lines++;
  }
  if (options.expectLastSeq !== undefined && (previousSeq ?? -1) < options.expectLastSeq) {
    return fail(
      lines.length,
      `the log ends at sequence ${previousSeq ?? 'none'} but the server wrote up to ${options.expectLastSeq} (truncated)`,
    );
  }
  if ((options.requireSignedTail ?? key !== undefined) && firstUnsigned) {
    const maxLines = options.maxUnsignedLines ?? 100;
    const maxSeconds = (options.maxUnsignedSeconds ?? 10) + (options.graceSeconds ?? 2);
    const age = ((options.now ?? Date.now)() - firstUnsigned.time) / 1000;
    const why = 'the tail may have been truncated, or the server crashed or is sealed';
    if (result.unsignedTail > maxLines) {
      return fail(
        firstUnsigned.line,
        `${result.unsignedTail} line(s) after the last checkpoint are not signed, more than the ${maxLines} a running server leaves unsigned (${why})`,
      );
    }
    if (!(age <= maxSeconds)) {
      return fail(
        firstUnsigned.line,
        `${result.unsignedTail} line(s) after the last checkpoint are not signed, and the oldest is ${Number.isFinite(age) ? `${Math.round(age)} s` : 'of unknown'} age, beyond the ${maxSeconds} s a running server takes to sign (${why})`,
      );
    }
  }
  return result;
}

import { createHash, createPublicKey, verify as verifySignature } from 'node:crypto';

/**
 * The audit log format and its verifier (no server code: the CLI runs it offline).
 *
 * One JSON object per line. Every line has `prev`, the SHA-256 (hex) of the previous line's
 * bytes (without the newline); a file's first line continues the chain of the file before it.
 * Every N lines a checkpoint line signs the chain: `{type:"checkpoint", seq, head, kid, sig}`
 * where `head` is the SHA-256 of the line before it and `sig` an Ed25519 signature (base64) over
 * `coffer-audit-checkpoint:<seq>:<head>`.
 */
export interface AuditEntry {
  type: 'request' | 'open' | 'checkpoint';
  time: string;
  prev: string;
  seq: number;
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
}

export const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');
export const checkpointMessage = (seq: number, head: string): string => `coffer-audit-checkpoint:${seq}:${head}`;

/**
 * Checks the chain, the sequence numbers and (given the audit public key) every checkpoint
 * signature. A deleted, edited, reordered or inserted line breaks the chain at that line; a
 * truncated tail is reported when the file ends inside a line, when it ends before the
 * sequence the server reports (`expectLastSeq`), or with `requireSignedTail` when lines follow the
 * last checkpoint (the server writes a checkpoint when it stops).
 */
export function verifyAuditLog(text: string, options: { publicKeyPem?: string; requireSignedTail?: boolean; expectLastSeq?: number } = {}): VerifyResult {
  const key = options.publicKeyPem ? createPublicKey(options.publicKeyPem) : undefined;
  const result: VerifyResult = { ok: true, lines: 0, checkpoints: 0, unsignedTail: 0 };
  const fail = (line: number, reason: string): VerifyResult => ({ ...result, ok: false, firstBad: { line, reason } });
  if (text.length > 0 && !text.endsWith('\n')) {
    const lineCount = text.split('\n').length;
    return fail(lineCount, 'the file ends inside a line (truncated)');
  }
  const lines = text.split('\n').slice(0, -1);
  let previousHash: string | undefined;
  let previousSeq: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    let entry: AuditEntry;
    try {
      entry = JSON.parse(raw) as AuditEntry;
    } catch {
      return fail(i + 1, 'not JSON');
    }
    if (typeof entry.prev !== 'string' || typeof entry.seq !== 'number') return fail(i + 1, 'missing prev or seq');
    if (previousHash !== undefined && entry.prev !== previousHash) return fail(i + 1, 'chain broken: a line before it was deleted, edited or reordered');
    if (previousSeq !== undefined && entry.seq !== previousSeq + 1) return fail(i + 1, `sequence jumps from ${previousSeq} to ${entry.seq}`);
    if (entry.type === 'checkpoint') {
      if (entry.head !== entry.prev) return fail(i + 1, 'checkpoint head does not match the chain');
      if (key) {
        const ok = typeof entry.sig === 'string' && verifySignature(null, Buffer.from(checkpointMessage(entry.seq, entry.prev)), key, Buffer.from(entry.sig, 'base64'));
        if (!ok) return fail(i + 1, 'checkpoint signature is invalid');
      }
      result.checkpoints++;
      result.unsignedTail = 0;
    } else {
      result.unsignedTail++;
    }
    previousHash = sha256Hex(raw);
    previousSeq = entry.seq;
    result.lines++;
  }
  if (options.expectLastSeq !== undefined && (previousSeq ?? -1) < options.expectLastSeq) {
    return fail(lines.length, `the log ends at sequence ${previousSeq ?? 'none'} but the server wrote up to ${options.expectLastSeq} (truncated)`);
  }
  if (options.requireSignedTail && result.unsignedTail > 0) {
    return fail(lines.length, `${result.unsignedTail} line(s) after the last checkpoint are not signed (the tail may have been truncated)`);
  }
  return result;
}

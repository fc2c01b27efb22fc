import { open } from 'node:fs/promises';
import { sha256Hex } from '../../sdk/audit.js';
import type { AuditHead } from './head.js';

/** Lines written after the stored head before a crash; no more than this much is read back. */
const MAX_TAIL_BYTES = 64 * 1024 * 1024;

export interface Tail {
  exists: boolean;
  /** Complete lines (without their newline) at the end of the file, oldest first. */
  lines: string[];
  /** File size, and the bytes after its last newline (a line cut short: never a durable line). */
  size: number;
  fragment: number;
}

const seqOf = (line: string): number | undefined => {
  try {
    const seq = (JSON.parse(line) as { seq?: unknown }).seq;
    return typeof seq === 'number' ? seq : undefined;
  } catch {
    return undefined;
  }
};

/**
 * The complete lines at the end of `path`, reading backwards until the oldest one read has a
 * sequence number at or below `fromSeq` (or just the last line without it). A fragment after
 * the last newline (a write cut by a crash) is not a line and is left out.
 */
export async function readTail(path: string, fromSeq?: number): Promise<Tail> {
  const handle = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!handle) return { exists: false, lines: [], size: 0, fragment: 0 };
  try {
    const { size } = await handle.stat();
    for (let length = Math.min(size, 64 * 1024); ; length = Math.min(size, length * 4)) {
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      const lastNewline = buffer.lastIndexOf(10);
      const fragment = lastNewline < 0 && length < size ? -1 : length - lastNewline - 1;
      const parts = buffer.toString('utf8').split('\n');
      parts.pop(); // after the last newline: empty, or a cut fragment
      if (length < size) parts.shift(); // may start inside a line
      const lines = parts.filter((l) => l.length > 0);
      const oldest = lines[0] === undefined ? undefined : seqOf(lines[0]);
      const enough = fromSeq === undefined || (oldest !== undefined && oldest <= fromSeq);
      // A fragment longer than the window read so far: read further back to find where it starts.
      if (fragment < 0 && length < MAX_TAIL_BYTES) continue;
      if (length === size || enough || length >= MAX_TAIL_BYTES) return { exists: true, lines: fromSeq === undefined ? lines.slice(-1) : lines, size, fragment: Math.max(0, fragment) };
    }
  } finally {
    await handle.close();
  }
}

/** Where the chain continues after a start, and what the `open` line must say about it. */
export interface Resume {
  seq: number;
  prev: string;
  /** Lines the file holds past the stored head: written before a crash, before the head was. */
  unconfirmed?: { from: number; to: number };
  /** Set when an operator accepted a truncation: what the server had written before it. */
  gap?: { stored_seq: number; stored_head: string; file_seq: number | null; reason: string };
  /** A non-empty log without a stored head (first start with this version, or the head was deleted). */
  headMissing?: boolean;
}

export class AuditTailError extends Error {
  constructor(
    message: string,
    readonly storedSeq: number,
    /** What is wrong, without the advice (recorded in the gap when accepted). */
    readonly problem: string,
  ) {
    super(message);
    this.name = 'AuditTailError';
  }
}

const GENESIS = '0'.repeat(64);

/**
 * Checks the end of the log against the stored head: the log must reach the head, the line
 * at the head's sequence must be byte for byte the one this server wrote, and anything after
 * it must continue the chain (the crash window between the log's fdatasync and the head's).
 * Otherwise it throws an AuditTailError naming both sequence numbers and the file.
 */
export function resumeFrom(file: string, tail: Tail, stored: AuditHead | undefined, headPath: string): Resume {
  const last = tail.lines.at(-1);
  const lastSeq = last === undefined ? undefined : seqOf(last);
  const fromLast = (): Resume => (last !== undefined && lastSeq !== undefined ? { seq: lastSeq + 1, prev: sha256Hex(last) } : { seq: 0, prev: GENESIS });
  if (!stored) return { ...fromLast(), ...(last !== undefined ? { headMissing: true } : {}) };
  const refuse = (what: string): never => {
    throw new AuditTailError(
      `audit log ${file} ${what} (this server's chain head is kept in ${headPath}). Refusing to start: restore the missing lines ` +
        `from a backup or the rotated file; to continue with a new chain segment on purpose, start once with ` +
        `COFFER_AUDIT_ACCEPT_TRUNCATION=${stored.seq} (the gap is recorded in the log)`,
      stored.seq,
      what,
    );
  };
  // The path is not compared: a data directory restored or moved elsewhere keeps its chain.
  if (!tail.exists) refuse(`is missing but this server wrote up to sequence ${stored.seq}${stored.file !== file ? ` (to ${stored.file})` : ''}`);
  if (last === undefined) refuse(`is empty but this server wrote up to sequence ${stored.seq}`);
  if (lastSeq === undefined) refuse(`ends with a line that is not an audit line; this server wrote up to sequence ${stored.seq}`);
  if (lastSeq! < stored.seq) refuse(`ends at sequence ${lastSeq} but this server wrote up to sequence ${stored.seq}: lines were removed while it was stopped`);
  const at = tail.lines.findIndex((l) => seqOf(l) === stored.seq);
  if (at < 0) refuse(`has no line at sequence ${stored.seq}, the last one this server wrote, in its last ${MAX_TAIL_BYTES} bytes`);
  if (sha256Hex(tail.lines[at]!) !== stored.hash) {
    refuse(`holds another line at sequence ${stored.seq} than the one this server wrote (its SHA-256 differs from the stored chain head ${stored.hash}): it was edited or replaced while the server was stopped`);
  }
  for (let i = at + 1; i < tail.lines.length; i++) {
    const entry = JSON.parse(tail.lines[i]!) as { prev?: unknown; seq?: unknown };
    if (entry.prev !== sha256Hex(tail.lines[i - 1]!) || entry.seq !== stored.seq + (i - at)) {
      refuse(`continues after sequence ${stored.seq} (the last line this server confirmed) with lines that do not follow its chain`);
    }
  }
  return { ...fromLast(), ...(lastSeq! > stored.seq ? { unconfirmed: { from: stored.seq + 1, to: lastSeq! } } : {}) };
}

/** The operator accepted the loss of everything after what the file holds: continue from the file. */
export function acceptTruncation(tail: Tail, stored: AuditHead, reason: string): Resume {
  const last = tail.lines.at(-1);
  const lastSeq = last === undefined ? undefined : seqOf(last);
  const base: Resume = last !== undefined && lastSeq !== undefined ? { seq: lastSeq + 1, prev: sha256Hex(last) } : { seq: 0, prev: GENESIS };
  return { ...base, gap: { stored_seq: stored.seq, stored_head: stored.hash, file_seq: lastSeq ?? null, reason } };
}

import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { sha256Hex } from '../../sdk/audit.js';
import type { AuditHead, Position } from './head.js';
import type { AcceptedGap } from '../../sdk/wire/audit.js';

/**
 * The most a sink writes at once (one write, durable when it returns), and so the most a file can hold
 * past its position in the stored head after a crash: a sink writes its next group only once
 * the head covering its last one is written (log.ts).
 */
export const CHUNK_BYTES = 256 * 1024;

/** Lines written after the stored head before a crash; no more than this much is read back. */
const MAX_TAIL_BYTES = 64 * 1024 * 1024;

export interface Tail {
  exists: boolean;
  /** Complete lines (without their newline) at the end of the file, oldest first. */
  lines: string[];
  /** Byte offset in the file where each of `lines` starts. */
  starts: number[];
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
  // Non-blocking, and only a regular file is read: a FIFO put at the path (or a symlink to
  // one) would block a blocking open until a writer comes, holding a thread-pool thread.
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!handle) return { exists: false, lines: [], starts: [], size: 0, fragment: 0 };
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw Object.assign(new Error(`audit file ${path} is not a regular file`), { code: 'ENOTREG' });
    const { size } = info;
    for (let length = Math.min(size, 64 * 1024); ; length = Math.min(size, length * 4)) {
      const buffer = Buffer.alloc(length);
      const base = size - length;
      await handle.read(buffer, 0, length, base);
      const lastNewline = buffer.lastIndexOf(10);
      const fragment = lastNewline < 0 && length < size ? -1 : length - lastNewline - 1;
      // Complete lines: between newlines; the first may start before the window unless it is the file's start.
      const lines: string[] = [];
      const starts: number[] = [];
      let begin = length < size ? buffer.indexOf(10) + 1 : 0;
      if (length < size && begin === 0) begin = length; // no newline at all: nothing complete
      for (let nl = buffer.indexOf(10, begin); nl >= 0 && begin < length; nl = buffer.indexOf(10, begin)) {
        if (nl > begin) {
          lines.push(buffer.toString('utf8', begin, nl));
          starts.push(base + begin);
        }
        begin = nl + 1;
      }
      const oldest = lines[0] === undefined ? undefined : seqOf(lines[0]);
      const enough = fromSeq === undefined || (oldest !== undefined && oldest <= fromSeq);
      // A fragment longer than the window read so far: read further back to find where it starts.
      if (fragment < 0 && length < MAX_TAIL_BYTES) continue;
      if (length === size || enough || length >= MAX_TAIL_BYTES) {
        const keep = fromSeq === undefined ? Math.max(0, lines.length - 1) : 0;
        return {
          exists: true,
          lines: lines.slice(keep),
          starts: starts.slice(keep),
          size,
          fragment: Math.max(0, fragment),
        };
      }
    }
  } finally {
    await handle.close();
  }
}

/** Where the chain continues after a start, and what the `open` line must say about it. */
export interface Resume {
  seq: number;
  prev: string;
  /**
   * Lines the file held past its stored position after a crash: written, never confirmed by a
   * head write, so never acknowledged. The file is cut back to `size` (resume.ts).
   */
  cut?: { size: number; from: number; to: number };
  /** Set when an operator accepted a truncation: what the server had written before it. */
  gap?: AcceptedGap | undefined;
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
const ACCEPT_TRUNCATION_ENV = 'COFFER_AUDIT_ACCEPT_TRUNCATION';

/** What the stored head says beyond this file's own position. */
export interface HeadContext {
  /** The server stopped cleanly: no file may hold a line past its position. */
  clean: boolean;
  /** The last line durable in any sink (the head's own position). */
  confirmed?: Position;
}

/**
 * Checks the end of the log against its position in the stored head: the log must reach it,
 * and the line at its sequence must be byte for byte the one this server wrote. Otherwise it
 * throws an AuditTailError naming both sequence numbers and the file.
 *
 * Lines after it need no key to forge (the chain is only SHA-256), so they are never simply
 * continued from: after a clean stop there can be none (refused); after a crash there can be
 * at most one write's worth (CHUNK_BYTES: a sink writes its next group only once the head
 * covering the last one is on disk), and they were never acknowledged (a request is answered
 * only after the head write), so they are cut off (`cut`), except lines up to the head's own
 * position that end with exactly the line the head names (confirmed through another sink).
 */
export function resumeFrom(
  file: string,
  tail: Tail,
  stored: AuditHead | undefined,
  headPath: string,
  context: HeadContext = { clean: false },
): Resume {
  const last = tail.lines.at(-1);
  const lastSeq = last === undefined ? undefined : seqOf(last);
  const fromLast = (): Resume =>
    last !== undefined && lastSeq !== undefined
      ? { seq: lastSeq + 1, prev: sha256Hex(last) }
      : { seq: 0, prev: GENESIS };
  if (!stored) return { ...fromLast(), ...(last !== undefined ? { headMissing: true } : {}) };
  const refuse = (what: string): never => {
    throw new AuditTailError(
      `audit log ${file} ${what} (this server's chain head is kept in ${headPath}). Refusing to start: ` +
        (what.includes('added')
          ? `remove the lines after sequence ${stored.seq}`
          : 'restore the missing lines from a backup or the rotated file') +
        `; to continue with a new chain segment on purpose, start once with ` +
        `${ACCEPT_TRUNCATION_ENV}=${stored.seq} (the gap is recorded in the log)`,
      stored.seq,
      what,
    );
  };
  // The path is not compared: a data directory restored or moved elsewhere keeps its chain.
  if (!tail.exists)
    refuse(
      `is missing but this server wrote up to sequence ${stored.seq}${stored.file !== file ? ` (to ${stored.file})` : ''}`,
    );
  if (last === undefined) refuse(`is empty but this server wrote up to sequence ${stored.seq}`);
  if (lastSeq === undefined)
    refuse(`ends with a line that is not an audit line; this server wrote up to sequence ${stored.seq}`);
  if (lastSeq! < stored.seq)
    refuse(
      `ends at sequence ${lastSeq} but this server wrote up to sequence ${stored.seq}: lines were removed while it was stopped`,
    );
  const at = tail.lines.findIndex((l) => seqOf(l) === stored.seq);
  if (at < 0)
    refuse(
      `has no line at sequence ${stored.seq}, the last one this server wrote, in its last ${MAX_TAIL_BYTES} bytes`,
    );
  if (sha256Hex(tail.lines[at]!) !== stored.hash) {
    refuse(
      `holds another line at sequence ${stored.seq} than the one this server wrote (its SHA-256 differs from the stored chain head ${stored.hash}): it was edited or replaced while the server was stopped`,
    );
  }
  const extra = tail.lines.length - at - 1;
  if (extra === 0) return fromLast();
  const endOf = (i: number) => tail.starts[i]! + Buffer.byteLength(tail.lines[i]!, 'utf8') + 1;
  if (context.clean) {
    refuse(
      `continues past sequence ${stored.seq}, the last line this server wrote before it stopped cleanly, up to sequence ${lastSeq} (${extra} line(s)): lines were added while it was stopped`,
    );
  }
  const bytes = tail.size - tail.fragment - endOf(at);
  if (bytes > CHUNK_BYTES) {
    refuse(
      `continues past sequence ${stored.seq}, the last line this server confirmed, up to sequence ${lastSeq} (${extra} line(s), ${bytes} bytes): ` +
        `more than the ${CHUNK_BYTES} bytes of one write a crash can leave unconfirmed, so lines were added while it was stopped`,
    );
  }
  for (let i = at + 1; i < tail.lines.length; i++) {
    const entry = JSON.parse(tail.lines[i]!) as { prev?: unknown; seq?: unknown };
    if (entry.prev !== sha256Hex(tail.lines[i - 1]!) || entry.seq !== stored.seq + (i - at)) {
      refuse(
        `continues after sequence ${stored.seq} (the last line this server confirmed) with lines that do not follow its chain`,
      );
    }
  }
  // Kept: up to the head's own position, if this file holds exactly the line it names.
  let keep = at;
  const confirmed = context.confirmed;
  if (confirmed && confirmed.seq > stored.seq && confirmed.seq <= lastSeq!) {
    const i = at + (confirmed.seq - stored.seq);
    if (sha256Hex(tail.lines[i]!) === confirmed.hash) keep = i;
  }
  const kept = tail.lines[keep]!;
  const resume: Resume = { seq: stored.seq + (keep - at) + 1, prev: sha256Hex(kept) };
  return keep === tail.lines.length - 1
    ? resume
    : { ...resume, cut: { size: endOf(keep), from: resume.seq, to: lastSeq! } };
}

/**
 * A file the stored head says held no line (it was empty, or new): the same rules as
 * `resumeFrom` for the lines it holds now. The error names the head's sequence.
 */
export function resumeEmpty(
  file: string,
  tail: Tail,
  stored: AuditHead,
  headPath: string,
  context: HeadContext,
): Resume {
  const first = tail.lines[0];
  if (first === undefined) return { seq: 0, prev: GENESIS };
  const bytes = tail.size - tail.fragment - tail.starts[0]!;
  const what = `holds ${tail.lines.length} line(s) (sequences ${seqOf(first) ?? '?'} to ${seqOf(tail.lines.at(-1)!) ?? '?'}, ${bytes} bytes) but this server's chain head records none in it`;
  const problem = context.clean
    ? `${what}, and the server stopped cleanly: they were added while it was stopped`
    : bytes > CHUNK_BYTES || tail.starts[0] !== 0
      ? `${what}: more than the ${CHUNK_BYTES} bytes of one write a crash can leave unconfirmed, so lines were added while it was stopped`
      : undefined;
  if (problem) {
    throw new AuditTailError(
      `audit log ${file} ${problem} (this server's chain head is kept in ${headPath}). Refusing to start: remove the added lines; ` +
        `to continue with a new chain segment on purpose, start once with ${ACCEPT_TRUNCATION_ENV}=${stored.seq} (the gap is recorded in the log)`,
      stored.seq,
      problem,
    );
  }
  const to = seqOf(tail.lines.at(-1)!);
  return { seq: 0, prev: GENESIS, cut: { size: 0, from: seqOf(first) ?? 0, to: to ?? 0 } };
}

/** The operator accepted the loss of everything after what the file holds: continue from the file. */
export function acceptTruncation(tail: Tail, stored: AuditHead, reason: string): Resume {
  const last = tail.lines.at(-1);
  const lastSeq = last === undefined ? undefined : seqOf(last);
  const base: Resume =
    last !== undefined && lastSeq !== undefined
      ? { seq: lastSeq + 1, prev: sha256Hex(last) }
      : { seq: 0, prev: GENESIS };
  return { ...base, gap: { stored_seq: stored.seq, stored_head: stored.hash, file_seq: lastSeq ?? null, reason } };
}

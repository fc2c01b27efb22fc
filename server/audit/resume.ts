import { stat, truncate } from 'node:fs/promises';
import type { AuditHead, Position } from './head.js';
import { AuditTailError, acceptTruncation, readTail, resumeEmpty, resumeFrom, type Resume } from './tail.js';
import type { Sink } from './sink.js';
import type { OpenFields } from '../../sdk/wire/audit.js';

const GENESIS = '0'.repeat(64);
const ACCEPT_TRUNCATION_ENV = 'COFFER_AUDIT_ACCEPT_TRUNCATION';

/** Whether any `open` line among `lines` (the end of the log, bounded by readTail) says its server kept a chain head. */
function writtenWithHead(lines: string[]): boolean {
  return lines.some((line) => {
    if (!line.includes('"open"')) return false;
    try {
      const entry = JSON.parse(line) as { type?: unknown; head?: unknown };
      return entry.type === 'open' && entry.head === true;
    } catch {
      return false;
    }
  });
}

export interface SinkStart {
  kind: Sink['kind'];
  /** The last line the file holds (undefined: empty, or a stream). */
  held?: Position;
}

/** Where the chain continues after a start, what the `open` line says about it, and each sink's state. */
export interface Start {
  seq: number;
  prev: string;
  open: OpenFields;
  sinks: SinkStart[];
}

/**
 * A FIFO or socket at the path, or a symlink to one, is a stream (never opened for reading:
 * that blocks); anything else a file.
 */
async function kindOf(path: string): Promise<Sink['kind']> {
  const info = await stat(path).catch(() => undefined);
  if (info?.isFIFO()) return 'fifo';
  if (info?.isSocket()) return 'socket';
  return 'file';
}

/**
 * Checks every audit file against its position in the stored head (tail.ts `resumeFrom`:
 * refuses a file truncated, emptied or edited while the server was stopped), cuts off a torn
 * fragment after a file's last line (a write cut by a crash or a full disk: never durable, so
 * never acknowledged) and, after a crash, the whole lines a file holds past its stored
 * position (written, never confirmed by a head write, so never acknowledged: the `open` line
 * names them in `unconfirmed`); refuses such lines after a clean stop, or more than one
 * write's worth, since anyone can append correctly chained lines while the server is stopped
 * and its next checkpoint would sign them. The chain continues after the stored head. A file
 * that ends before that point missed lines (it was failing when the server stopped): the
 * `open` line names it in `missed`, with the hash of its last line, so its chain stays
 * verifiable (sdk/audit.ts, the line format sdk/wire/audit.ts). Files are checked before any is changed.
 */
export async function resumeSinks(
  names: string[],
  stored: AuditHead | undefined,
  headPath: string | undefined,
  acceptAt: number | undefined,
): Promise<Start> {
  const kinds = await Promise.all(names.map(kindOf));
  const storedFor = (i: number): Position | undefined => {
    if (!stored) return undefined;
    if (stored.sinks) return stored.sinks[i] ?? undefined;
    return i === 0 ? { seq: stored.seq, hash: stored.hash } : undefined;
  };
  const ends: (Position | undefined)[] = [];
  const cuts: { path: string; size: number }[] = [];
  const unconfirmed: { sink: string; from: number; to: number }[] = [];
  const context = {
    clean: stored?.clean === true,
    ...(stored ? { confirmed: { seq: stored.seq, hash: stored.hash } } : {}),
  };
  const open: OpenFields = {};
  let accepted: number | undefined;
  for (let i = 0; i < names.length; i++) {
    const file = names[i]!;
    if (kinds[i] !== 'file') {
      ends.push(undefined);
      continue;
    }
    const pos = storedFor(i);
    // A head that records every file's position, and none for this one: it held nothing then.
    const heldNothing = !pos && stored?.sinks !== undefined;
    const tail = await readTail(file, heldNothing ? -1 : pos?.seq);
    let resume: Resume;
    if ((pos || heldNothing) && stored && headPath) {
      try {
        resume = pos
          ? resumeFrom(file, tail, { file, ...pos }, headPath, context)
          : resumeEmpty(file, tail, stored, headPath, context);
      } catch (e) {
        if (!(e instanceof AuditTailError) || acceptAt !== e.storedSeq || accepted !== undefined) throw e;
        resume = acceptTruncation(tail, { file, ...(pos ?? { seq: stored.seq, hash: stored.hash }) }, e.problem);
        accepted = i;
        if (resume.gap) open.gap = resume.gap;
      }
    } else {
      resume = resumeFrom(file, tail, undefined, '');
      if (i === 0 && resume.headMissing && headPath && !stored) {
        open.head_missing = true;
        // Without a head file the start cannot check for truncation. That is expected on the first
        // start of a log written before heads existed, not after a server that kept one: then the
        // head file was removed, which is how an offline truncation would hide.
        if (writtenWithHead((await readTail(file, 0)).lines)) {
          const lastSeq = resume.seq - 1;
          if (acceptAt !== lastSeq) {
            throw new AuditTailError(
              `audit log ${file} was written by a server that keeps its chain head in ${headPath}, but that file is missing: ` +
                `a truncation of the log cannot be ruled out. Refusing to start: restore ${headPath} from a backup; to continue ` +
                `from what the log holds on purpose, start once with ${ACCEPT_TRUNCATION_ENV}=${lastSeq} (the gap is recorded in the log)`,
              lastSeq,
              'chain head file missing',
            );
          }
          open.gap = {
            stored_seq: lastSeq,
            stored_head: resume.prev,
            file_seq: lastSeq,
            reason: 'chain head file missing',
          };
          accepted = i;
        }
      }
    }
    ends.push(resume.seq > 0 ? { seq: resume.seq - 1, hash: resume.prev } : undefined);
    if (resume.cut) {
      cuts.push({ path: file, size: resume.cut.size });
      unconfirmed.push({ sink: file, from: resume.cut.from, to: resume.cut.to });
    } else if (tail.fragment > 0) cuts.push({ path: file, size: tail.size - tail.fragment });
  }
  for (const cut of cuts) await truncate(cut.path, cut.size);

  // After an accepted truncation the chain continues from that file, as a new segment.
  let resume: Position = { seq: -1, hash: GENESIS };
  const candidates =
    accepted !== undefined ? [ends[accepted]] : [stored ? { seq: stored.seq, hash: stored.hash } : undefined, ...ends];
  for (const c of candidates) if (c && c.seq > resume.seq) resume = c;
  // Cut off: written before a crash but never confirmed by a head write, so never acknowledged.
  if (unconfirmed.length) open.unconfirmed = unconfirmed;
  const missed = names.flatMap((sink, i) => {
    const end = ends[i];
    if (!end || end.seq > resume.seq || (end.seq === resume.seq && end.hash === resume.hash)) return [];
    return [{ sink, from: end.seq + 1, after: end.hash }];
  });
  if (missed.length) open.missed = missed;
  if (headPath) open.head = true; // this server checks its log against a stored head at start (see above)
  return {
    seq: resume.seq + 1,
    prev: resume.hash,
    open,
    sinks: kinds.map((kind, i) => ({ kind, ...(ends[i] ? { held: ends[i] } : {}) })),
  };
}

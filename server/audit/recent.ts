import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { verifyAuditLog } from '../../sdk/audit.js';
import type { RequestLine } from '../../sdk/wire/audit.js';
import type { AuditLines } from '../../sdk/wire/types.js';

/**
 * The newest request lines of an audit file, filtered, with the file's chain checked (docs/ui.md
 * "Audit", `GET /v1/sys/audit/lines`). The file is what the log wrote, so reading it back shows
 * exactly what an auditor will see; nothing is kept in memory for it.
 */

/** Above this the chain is not checked per request (`coffer audit verify` does it offline). */
export const MAX_VERIFY_BYTES = 16 * 1024 * 1024;
/** The newest bytes scanned for matching lines when the file is larger than that. */
const SCAN_BYTES = 4 * 1024 * 1024;

export interface LineFilter {
  limit: number;
  identity?: string | undefined;
  path?: string | undefined;
  operation?: string | undefined;
  outcome?: 'ok' | 'denied' | 'error' | undefined;
}

const matches = (line: RequestLine, f: LineFilter) =>
  (f.identity === undefined || line.identity === f.identity) &&
  (f.path === undefined || (line.path ?? '').startsWith(f.path)) &&
  (f.operation === undefined || line.operation === f.operation) &&
  (f.outcome === undefined || line.outcome === f.outcome);

function isRequestLine(value: unknown): value is RequestLine {
  if (typeof value !== 'object' || value === null) return false;
  const line: { type?: unknown; operation?: unknown; seq?: unknown } = value;
  return line.type === 'request' && typeof line.operation === 'string' && typeof line.seq === 'number';
}

export async function recentLines(
  file: string | undefined,
  filter: LineFilter,
  publicKeyPem: string | undefined,
): Promise<AuditLines> {
  if (file === undefined)
    return {
      lines: [],
      file: null,
      scanned: 0,
      verification: null,
      verification_skipped: 'no audit file is configured',
    };
  // Non-blocking and regular files only, as the tail reader (tail.ts): a FIFO must not hang a request.
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  let text: string;
  let whole: boolean;
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error(`audit file ${file} is not a regular file`);
    whole = info.size <= MAX_VERIFY_BYTES;
    const length = whole ? info.size : SCAN_BYTES;
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, info.size - length);
    text = buffer.toString('utf8');
  } finally {
    await handle.close();
  }
  // A sink may be writing as this reads: bytes after the last newline are not a line yet.
  text = text.slice(0, text.lastIndexOf('\n') + 1);
  const raw = text.split('\n').slice(whole ? 0 : 1, -1); // a window's first line may be cut
  const lines: RequestLine[] = [];
  let scanned = 0;
  for (let i = raw.length - 1; i >= 0 && lines.length < filter.limit; i--) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw[i]!);
    } catch {
      continue; // the verification below reports it
    }
    if (!isRequestLine(parsed)) continue;
    scanned++;
    if (matches(parsed, filter)) lines.push(parsed);
  }
  if (!whole)
    return {
      lines,
      file,
      scanned,
      verification: null,
      verification_skipped: `the file is over ${MAX_VERIFY_BYTES / 1024 / 1024} MiB: verify it offline with coffer audit verify`,
    };
  const result = verifyAuditLog(text, {
    ...(publicKeyPem ? { publicKeyPem } : {}),
    requireSignedTail: false,
    sink: file,
  });
  return {
    lines,
    file,
    scanned,
    verification: {
      ok: result.ok,
      lines: result.lines,
      checkpoints: result.checkpoints,
      last_seq: result.lastSeq,
      signatures_verified: result.signaturesVerified,
      unsigned_tail: result.unsignedTail,
      first_bad: result.firstBad ?? null,
    },
  };
}

import { CofferError } from '../errors.js';

/** Why the database refuses writes: a full (or over-quota) disk, or an I/O failure. */
export interface StorageFailure {
  code: 'storage_full' | 'storage_unavailable';
  /** When writes started failing (ms since the epoch). */
  since: number;
  /** LevelDB's own words (file name and errno text), for the log and health only. */
  detail: string;
}

const FULL = /No space left on device|ENOSPC|Disk quota exceeded|EDQUOT/i;
const IO = /IO error|EIO|Input\/output error|Read-only file system|EROFS/i;

/**
 * Classifies a failed LevelDB write. Disk full and I/O errors are conditions of the machine,
 * not bugs: they get their own codes so clients and health say what an operator must fix.
 * Anything else stays what it was (an internal error).
 */
export function classifyWriteError(e: unknown, now: number): StorageFailure | undefined {
  const err = e as { code?: unknown; message?: unknown; cause?: { message?: unknown } } | undefined;
  const text = [err?.code, err?.message, err?.cause?.message].filter((t) => typeof t === 'string').join(' ');
  if (FULL.test(text)) return { code: 'storage_full', since: now, detail: text };
  if (err?.code === 'LEVEL_IO_ERROR' || IO.test(text)) return { code: 'storage_unavailable', since: now, detail: text };
  return undefined;
}

export function storageError(failure: StorageFailure): CofferError {
  return failure.code === 'storage_full'
    ? new CofferError('storage_full', 'the server’s disk is full: the write was refused', failure.detail)
    : new CofferError(
        'storage_unavailable',
        'the server cannot write to its database: the write was refused',
        failure.detail,
      );
}

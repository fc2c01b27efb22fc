import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * The two steps of a durable file write, in one place: file bytes synced before the file is
 * renamed into place, and the directory synced after, so the new name survives a crash too.
 */

/** Writes `data` to a new file at `path` (`flag` 'w' or 'wx') and fsyncs it before closing. */
export async function writeSynced(
  path: string,
  data: Uint8Array | string,
  mode = 0o600,
  flag: 'w' | 'wx' = 'w',
): Promise<void> {
  const handle = await open(path, flag, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Fsyncs a directory, making the names created, renamed or removed in it durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The O_DSYNC open flag, for files whose every write is durable when it returns (the audit
 * files and their chain head). Node leaves it undefined where the platform has none, and an
 * undefined flag OR'd in would open the file without it, silently: refused instead.
 */
export function dsyncFlag(): number {
  const flag = (constants as { O_DSYNC?: number }).O_DSYNC;
  if (typeof flag !== 'number' || flag === 0)
    throw new Error('this platform has no O_DSYNC: audit files cannot be written durably here');
  return flag;
}

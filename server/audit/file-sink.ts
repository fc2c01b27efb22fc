import { constants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { dsyncFlag, syncDirectory } from '../durable-fs.js';
import type { Sink } from './sink.js';

/**
 * An append-only JSONL file on a local file system. Lines of one group are written with one
 * write to a file opened O_DSYNC: the write returns once the group is durable, as a write and
 * an fdatasync would, in one thread-pool round trip instead of two (under load every round
 * trip waits for an event-loop turn, and every audited request waits for the group). A group
 * counts only once wholly written: a write cut short (disk full: the kernel takes part of the
 * buffer, then says ENOSPC) or failed is cut back to the last whole group at once, and again
 * before the next write if that failed too, so the file never keeps a torn line or one that
 * was not acknowledged as durable.
 *
 * Before each group the path is checked: if the file was deleted or rotated away (another
 * inode), it is reopened, so logrotate-style moves never lose lines into an unlinked file.
 * It is opened O_NONBLOCK: should a FIFO appear at the path, the open returns at once (and
 * the sink refuses it) instead of blocking a thread-pool thread until a reader comes.
 */
export class FileSink implements Sink {
  readonly kind = 'file';
  private handle: FileHandle | undefined;
  private inode = -1;
  /** The file whose directory entry was last made durable. */
  private dirSyncedInode = -1;
  /** Bytes of whole, synced groups: what the file is cut back to after a failed write. */
  private committed = 0;
  private torn = false;

  constructor(readonly name: string) {}

  async write(text: string): Promise<void> {
    await this.ensureOpen();
    const handle = this.handle!;
    if (this.torn) {
      await handle.truncate(this.committed);
      this.torn = false;
    }
    const buffer = Buffer.from(text, 'utf8');
    try {
      // O_DSYNC: each write returns once its bytes are as durable as after an fdatasync.
      for (let offset = 0; offset < buffer.length;) {
        const { bytesWritten } = await handle.write(buffer, offset, buffer.length - offset);
        offset += bytesWritten;
      }
    } catch (e) {
      this.torn = true;
      // Freeing the torn bytes needs no space; if even that fails, the next write retries it.
      await handle.truncate(this.committed).then(
        () => (this.torn = false),
        () => undefined,
      );
      throw e;
    }
    this.committed += buffer.length;
  }

  async close(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }

  private async ensureOpen(): Promise<void> {
    const current = await stat(this.path).then(
      (s) => s.ino,
      () => undefined,
    );
    if (this.handle && current === this.inode) return;
    if (this.handle) await this.close();
    const handle = await open(
      this.path,
      constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK | dsyncFlag(),
      0o600,
    );
    const info = await handle.stat();
    if (!info.isFile()) {
      await handle.close();
      throw Object.assign(new Error('not a regular file'), { code: 'ENOTREG' });
    }
    // A file not opened before (this open created it, or logrotate did): its name is made
    // durable before any line in it is reported durable. Keyed by inode, not by whether the
    // path existed a moment ago, so a failed sync is retried and a file created in between counts.
    if (info.ino !== this.dirSyncedInode) {
      try {
        await syncDirectory(dirname(this.path));
      } catch (e) {
        await handle.close();
        throw e;
      }
      this.dirSyncedInode = info.ino;
    }
    this.handle = handle;
    this.inode = info.ino;
    this.committed = info.size;
    this.torn = false;
  }

  private get path(): string {
    return this.name;
  }
}

import { open, stat, type FileHandle } from 'node:fs/promises';

/**
 * An append-only JSONL file. Lines of one group are written with one write and one fdatasync.
 * Before each group the path is checked: if the file was deleted or rotated away (another
 * inode), it is reopened, so logrotate-style moves never lose lines into an unlinked file.
 */
export class FileSink {
  private handle: FileHandle | undefined;
  private inode = -1;

  constructor(readonly path: string) {}

  get name(): string {
    return this.path;
  }

  async write(text: string): Promise<void> {
    await this.ensureOpen();
    await this.handle!.write(text);
    await this.handle!.datasync();
  }

  async close(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }

  private async ensureOpen(): Promise<void> {
    const current = await stat(this.path).then((s) => s.ino, () => undefined);
    if (this.handle && current === this.inode) return;
    if (this.handle) await this.close();
    this.handle = await open(this.path, 'a', 0o600);
    this.inode = (await this.handle.stat()).ino;
  }
}

import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, readdir, rename, stat, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { syncDirectory, writeSynced } from '../durable-fs.js';
import { CofferError } from '../errors.js';
import {
  BucketUnavailable,
  MAX_LIST_PAGE,
  PreconditionFailed,
  checkKey,
  checkPrefix,
  type Bucket,
  type ListOptions,
  type ListPage,
  type PutOptions,
} from './bucket.js';

const TMP = '.tmp';
const LOCK_STALE_MS = 10_000;
const LOCK_WAIT_MS = 5_000;

const etagOf = (body: Uint8Array) => `"${createHash('sha256').update(body).digest('hex')}"`;

/**
 * A bucket in a directory (local disk or NFS). Writes go to a temp file that is fsynced, then
 * renamed (or hard-linked, for an exclusive create) into place and the directory fsynced, so a
 * reader sees a whole object or none. The ETag is the SHA-256 of the content.
 *
 * Conditions: If-None-Match `*` is `link(2)`, which fails atomically when the name exists,
 * also over NFS. If-Match takes a lock file created with O_EXCL beside the object, compares the
 * ETag, renames, and drops the lock; a lock older than 10 s (a crashed writer) is broken.
 * Internal files start with `.`, which no object key segment can.
 */
export class FileBucket implements Bucket {
  private constructor(
    private readonly root: string,
    readonly url: string,
  ) {}

  static fromUrl(url: URL): FileBucket {
    if (url.host !== '' || url.search || url.hash)
      throw new CofferError('invalid_request', 'file bucket URL must be file:///absolute/dir');
    const root = fileURLToPath(url);
    if (!isAbsolute(root)) throw new CofferError('invalid_request', 'file bucket URL must be file:///absolute/dir');
    return new FileBucket(root.replace(/\/+$/, '') || '/', url.href);
  }

  static at(dir: string): FileBucket {
    return new FileBucket(dir, `file://${dir}`);
  }

  async put(key: string, body: Uint8Array, options: PutOptions = {}): Promise<{ etag: string }> {
    const path = this.pathOf(checkKey(key));
    await mkdir(dirname(path), { recursive: true });
    const tmp = await this.writeTemp(body);
    try {
      if (options.ifNoneMatch === '*') {
        try {
          await link(tmp, path);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new PreconditionFailed(key);
          throw e;
        }
      } else if (options.ifMatch !== undefined) {
        await this.withLock(path, async () => {
          const current = await readFile(path).catch(notFound);
          if (!current || etagOf(current) !== options.ifMatch) throw new PreconditionFailed(key);
          await rename(tmp, path);
        });
      } else {
        await rename(tmp, path);
      }
      await syncDirectory(dirname(path));
      return { etag: etagOf(body) };
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  async get(key: string): Promise<{ body: Uint8Array; etag: string } | undefined> {
    const body = await readFile(this.pathOf(checkKey(key))).catch(notFound);
    return body
      ? { body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength), etag: etagOf(body) }
      : undefined;
  }

  async head(key: string): Promise<{ etag: string; size: number } | undefined> {
    const body = await readFile(this.pathOf(checkKey(key))).catch(notFound);
    return body ? { etag: etagOf(body), size: body.length } : undefined;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    checkPrefix(prefix);
    const limit = Math.min(options.limit ?? MAX_LIST_PAGE, MAX_LIST_PAGE);
    // Walk only the directory the prefix names; the rest of the prefix filters names.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash);
    const keys: { key: string; size: number }[] = [];
    await this.walk(base, async (key, size) => {
      if (key.startsWith(prefix) && (options.startAfter === undefined || key > options.startAfter))
        keys.push({ key, size });
    });
    keys.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const page = keys.slice(0, limit);
    return keys.length > limit ? { objects: page, next: page[page.length - 1]!.key } : { objects: page };
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(checkKey(key));
    await unlink(path).catch(notFound);
  }

  close(): void {}

  private pathOf(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  private async walk(rel: string, visit: (key: string, size: number) => Promise<void>): Promise<void> {
    const dir = rel ? join(this.root, ...rel.split('/')) : this.root;
    const entries = await readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return [];
      throw new BucketUnavailable(`cannot list ${dir}: ${e.code ?? e.message}`);
    });
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const key = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await this.walk(key, visit);
      else if (entry.isFile()) await visit(key, (await stat(join(dir, entry.name))).size);
    }
  }

  private async writeTemp(body: Uint8Array): Promise<string> {
    const dir = join(this.root, TMP);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, randomBytes(12).toString('hex'));
    await writeSynced(tmp, body, 0o600, 'wx');
    return tmp;
  }

  private async withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const lock = join(dirname(path), `.${path.slice(path.lastIndexOf(sep) + 1)}.lock`);
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const handle = await open(lock, 'wx', 0o600);
        await handle.close();
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const age = await stat(lock).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (age > LOCK_STALE_MS) await unlink(lock).catch(() => undefined);
        else if (Date.now() > deadline) throw new BucketUnavailable(`lock ${lock} is held`);
        else await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
      }
    }
    try {
      return await fn();
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }
}

function notFound(e: NodeJS.ErrnoException): undefined {
  if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return undefined;
  throw new BucketUnavailable(`file bucket: ${e.code ?? e.message}`);
}

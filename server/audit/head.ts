import { open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';

/** A line of the chain: its sequence number and SHA-256. */
export interface Position {
  seq: number;
  hash: string;
}

/**
 * Where the audit chain stands: the last line durable in any sink (`seq`, `hash`; `file` names
 * the first audit file, informational), and for each entry of `audit_files`, by its place in
 * the list, the last line that file holds (null: a stream, or nothing written yet). A head
 * written before per-file positions existed has no `sinks`: its position is the first file's.
 */
export interface AuditHead extends Position {
  file: string;
  sinks?: (Position | null)[];
}

const hash = z.string().regex(/^[0-9a-f]{64}$/);
const position = z.strictObject({ seq: z.number().int().min(0), hash });
const headSchema = z.strictObject({ file: z.string().min(1), seq: z.number().int().min(0), hash, sinks: z.array(position.nullable()).max(16).optional() });

/**
 * The durable chain head of this server's audit log, written after every group of lines is
 * fdatasync'd and before any request of the group is answered, so an answered request's line
 * is always at or before the head: a log that ends before it was truncated.
 *
 * Why a file of its own and not a key in the LevelDB store: every `Store.mutate` batch enters
 * the change log that replicas apply, and replication snapshots carry every key outside
 * replication's own `sys/repl/` namespace, so a store key would either be shipped to replicas
 * (whose audit logs differ, making them refuse to start after a bootstrap) or squat in another
 * module's namespace; it would also queue every audit flush behind every store mutation. A
 * file in the data directory (0700, owned by the server, apart from wherever `audit_files`
 * points, e.g. a log volume that shippers and logrotate touch) is local by construction.
 * It is replaced atomically: written to a temp file, fsynced, renamed, directory fsynced.
 */
export class FileHead {
  constructor(readonly path: string) {}

  /** The stored head; undefined if there is none yet. An unreadable head is an error, never "none". */
  async read(): Promise<AuditHead | undefined> {
    const text = await readFile(this.path, 'utf8').catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (text === undefined) return undefined;
    try {
      return headSchema.parse(JSON.parse(text));
    } catch {
      throw new Error(`the audit chain head ${this.path} is unreadable`);
    }
  }

  async write(head: AuditHead): Promise<void> {
    const temp = `${this.path}.tmp`;
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(head));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, this.path);
    const dir = await open(dirname(this.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, rename, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { dsyncFlag, syncDirectory, writeSynced } from '../durable-fs.js';
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
 *
 * `clean`: written by a server that stopped cleanly, after its final checkpoint and once no
 * file write was under way, so no file can hold a line after it; the server clears it (writes
 * the head without it) at start, before any line goes out. Past a clean head a file holding
 * more lines was written to while the server was stopped.
 */
export interface AuditHead extends Position {
  file: string;
  sinks?: (Position | null)[] | undefined;
  clean?: boolean | undefined;
}

const hash = z.string().regex(/^[0-9a-f]{64}$/);
const position = z.strictObject({ seq: z.number().int().min(0), hash });
/** The JSON file written by earlier versions (temp file + rename): read once, replaced on the first write. */
const legacySchema = z.strictObject({
  file: z.string().min(1),
  seq: z.number().int().min(0),
  hash,
  sinks: z.array(position.nullable()).max(16).optional(),
});
const slotSchema = legacySchema.extend({ clean: z.literal(true).optional() });

/**
 * Layout: two slots of SLOT_BYTES, written alternately, so a write torn by a crash (or a
 * failing disk) only ever damages the slot being written and the other still holds the head
 * before it. A slot: magic (4 bytes), counter (u64 BE), payload length (u32 BE), SHA-256 of
 * those 16 bytes and the payload (32 bytes), then the payload (the head as JSON). The reader
 * takes the valid slot with the higher counter.
 */
const MAGIC = Buffer.from('CAH1', 'latin1');
const HEADER_BYTES = 48;
export const SLOT_BYTES = 8192;
export const HEAD_FILE_BYTES = 2 * SLOT_BYTES;

function encodeSlot(counter: number, head: AuditHead): Buffer {
  let payload = Buffer.from(JSON.stringify(head), 'utf8');
  if (payload.length > SLOT_BYTES - HEADER_BYTES) {
    // `file` is informational; everything else (16 positions at most) always fits.
    payload = Buffer.from(JSON.stringify({ ...head, file: head.file.slice(0, 256) }), 'utf8');
  }
  const out = Buffer.alloc(HEADER_BYTES + payload.length);
  MAGIC.copy(out, 0);
  out.writeBigUInt64BE(BigInt(counter), 4);
  out.writeUInt32BE(payload.length, 12);
  payload.copy(out, HEADER_BYTES);
  createHash('sha256').update(out.subarray(0, 16)).update(payload).digest().copy(out, 16);
  return out;
}

function decodeSlot(slot: Buffer): { counter: number; head: AuditHead } | undefined {
  if (slot.length < HEADER_BYTES || !slot.subarray(0, 4).equals(MAGIC)) return undefined;
  const length = slot.readUInt32BE(12);
  if (length > slot.length - HEADER_BYTES) return undefined;
  const payload = slot.subarray(HEADER_BYTES, HEADER_BYTES + length);
  const sum = createHash('sha256').update(slot.subarray(0, 16)).update(payload).digest();
  if (!sum.equals(slot.subarray(16, 48))) return undefined;
  try {
    return { counter: Number(slot.readBigUInt64BE(4)), head: slotSchema.parse(JSON.parse(payload.toString('utf8'))) };
  } catch {
    return undefined;
  }
}

/** The valid slot with the higher counter; undefined if neither is valid. */
function newest(file: Buffer): { counter: number; head: AuditHead } | undefined {
  const slots = [decodeSlot(file.subarray(0, SLOT_BYTES)), decodeSlot(file.subarray(SLOT_BYTES, HEAD_FILE_BYTES))];
  return slots.reduce<{ counter: number; head: AuditHead } | undefined>(
    (best, s) => (s && (!best || s.counter > best.counter) ? s : best),
    undefined,
  );
}

/**
 * The durable chain head of this server's audit log, written after every group of lines is
 * durable and before any request of the group is answered, so an answered request's line
 * is always at or before the head: a log that ends before it was truncated.
 *
 * Why a file of its own and not a key in the LevelDB store: every `Store.mutate` batch enters
 * the change log that replicas apply, and replication snapshots carry every key outside
 * replication's own `sys/repl/` namespace, so a store key would either be shipped to replicas
 * (whose audit logs differ, making them refuse to start after a bootstrap) or squat in another
 * module's namespace; it would also queue every audit flush behind every store mutation. A
 * file in the data directory (0700, owned by the server, apart from wherever `audit_files`
 * points, e.g. a log volume that shippers and logrotate touch) is local by construction.
 *
 * It is rewritten in place, never replaced: created once with its full size (both slots,
 * fsync'd, renamed into place, directory fsync'd), then every write is one pwrite of one slot
 * to a file opened O_DSYNC. No block is allocated and no directory entry changes after
 * creation, so the head can still be written when the data disk is full (the database filled
 * it: reads must keep working, and every read is audited). The file is reopened if it was
 * replaced.
 */
export class FileHead {
  private handle: FileHandle | undefined;
  private inode = -1;
  private counter = 0;

  constructor(readonly path: string) {}

  /** The stored head; undefined if there is none yet. An unreadable head is an error, never "none". */
  async read(): Promise<AuditHead | undefined> {
    const data = await readFile(this.path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (data === undefined) return undefined;
    if (data.length === HEAD_FILE_BYTES && data[0] !== 0x7b) {
      const found = newest(data);
      if (found) return found.head;
    } else {
      try {
        return legacySchema.parse(JSON.parse(data.toString('utf8')));
      } catch {
        // unreadable: below
      }
    }
    throw new Error(`the audit chain head ${this.path} is unreadable`);
  }

  async write(head: AuditHead): Promise<void> {
    if (this.handle) {
      // The path is checked while the slot is written (one round trip, not two): a head is
      // the whole state, so when the file turns out to have been replaced, writing the same
      // head again into the new one loses nothing.
      // A write that failed on a file since replaced is not the head's failure: the new file
      // is opened and written below (a head file that failed, say with EIO, and was replaced
      // by the operator recovers at the next write instead of refusing every request).
      const inode = this.inode;
      const [current, written] = await Promise.allSettled([stat(this.path).then((s) => s.ino), this.writeSlot(head)]);
      if (current.status === 'fulfilled' && current.value === inode) {
        if (written.status === 'rejected') throw written.reason;
        return;
      }
    }
    await this.close();
    if (await this.reopen()) return this.writeSlot(head);
    await this.create(head);
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    this.inode = -1;
    await handle?.close().catch(() => undefined);
  }

  private async writeSlot(head: AuditHead): Promise<void> {
    const next = this.counter + 1;
    const slot = encodeSlot(next, head);
    // Opened O_DSYNC: the write returns once the slot is as durable as after an fdatasync.
    await this.handle!.write(slot, 0, slot.length, (next % 2) * SLOT_BYTES);
    // Only a completed write moves on: a failed one is retried in the same slot, the other
    // slot keeping the last head that was written.
    this.counter = next;
  }

  /** Opens an existing head in this format; false if there is none (or an old-format one). */
  private async reopen(): Promise<boolean> {
    const handle = await open(this.path, constants.O_RDWR | dsyncFlag()).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (!handle) return false;
    try {
      const info = await handle.stat();
      const data = Buffer.alloc(HEAD_FILE_BYTES);
      const { bytesRead } =
        info.isFile() && info.size === HEAD_FILE_BYTES
          ? await handle.read(data, 0, HEAD_FILE_BYTES, 0)
          : { bytesRead: 0 };
      const found = bytesRead === HEAD_FILE_BYTES && data[0] !== 0x7b ? newest(data) : undefined;
      if (!found) {
        await handle.close();
        return false;
      }
      this.handle = handle;
      this.inode = info.ino;
      this.counter = found.counter;
      return true;
    } catch (e) {
      await handle.close().catch(() => undefined);
      throw e;
    }
  }

  /** Creates the file with its full size and `head` in its first slot (also replaces an old-format head). */
  private async create(head: AuditHead): Promise<void> {
    const temp = `${this.path}.tmp`;
    const data = Buffer.alloc(HEAD_FILE_BYTES);
    encodeSlot(1, head).copy(data, SLOT_BYTES);
    await writeSynced(temp, data);
    await rename(temp, this.path);
    await syncDirectory(dirname(this.path));
    if (!(await this.reopen())) throw new Error(`the audit chain head ${this.path} could not be created`);
  }
}

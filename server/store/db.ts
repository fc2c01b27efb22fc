import { Level } from 'level';
import { CofferError } from '../errors.js';
import { toBase64 } from '../crypto/bytes.js';
import { LOG_PREFIX, SEQ_KEY, logKey, prefixEnd } from './keys.js';

export const DEFAULT_CHANGELOG_RETAIN = 100_000;

export type Op = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

/** What a mutation may do: read (its own writes included) and stage puts and deletes. */
export interface Tx {
  get(key: string): Uint8Array | undefined;
  put(key: string, value: Uint8Array): void;
  del(key: string): void;
}

/** Consulted by every mutation before its batch is written and before it is acknowledged. */
export interface WriteGuard {
  beforeWrite(): void;
  beforeAck(): void;
}

/** The change-log record of one committed batch; values are stored bytes (already sealed). */
export interface ChangeRecord {
  seq: number;
  time: number;
  ops: ({ type: 'put'; key: string; value: string } | { type: 'del'; key: string })[];
}

/**
 * The one LevelDB database of a server. Mutations run one at a time (a queue), so sequence
 * numbers, check-and-set and key-use counters need no further locking; each mutation is a
 * single atomic batch written with `sync: true` that also appends its change-log record.
 * Reads use `getSync`, which costs a few microseconds against tens for an awaited get.
 */
export class Store {
  private queue: Promise<unknown> = Promise.resolve();
  private seq: number;
  private closed = false;
  private guard: WriteGuard | undefined;

  private constructor(
    private readonly db: Level<string, Uint8Array>,
    seq: number,
    private readonly now: () => number,
    private readonly retain: number,
  ) {
    this.seq = seq;
  }

  /**
   * `retain`: change-log records kept; each batch drops the one that falls out of the window,
   * so the log stays bounded without a separate compaction pass.
   */
  static async open(location: string, now: () => number = Date.now, retain = DEFAULT_CHANGELOG_RETAIN): Promise<Store> {
    const db = new Level<string, Uint8Array>(location, { keyEncoding: 'utf8', valueEncoding: 'view' });
    try {
      await db.open();
    } catch (e) {
      const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
      const locked = /lock/i.test(cause);
      throw new CofferError(
        'internal',
        locked
          ? `data directory ${location} is in use by another Coffer process`
          : `cannot open data directory ${location}: ${cause}`,
      );
    }
    const raw = db.getSync(SEQ_KEY);
    const seq = raw ? Number(Buffer.from(raw).toString('utf8')) : 0;
    return new Store(db, seq, now, retain);
  }

  get lastSeq(): number {
    return this.seq;
  }

  get(key: string): Uint8Array | undefined {
    this.checkOpen();
    return this.db.getSync(key);
  }

  /** Keys and values in [gte, lt) in byte order, at most `limit`. */
  async range(gte: string, lt: string, limit = -1): Promise<[string, Uint8Array][]> {
    this.checkOpen();
    return this.db.iterator({ gte, lt, limit }).all();
  }

  /** How many keys lie in [gte, lt) (keys only, no values read). */
  async count(gte: string, lt: string): Promise<number> {
    this.checkOpen();
    let n = 0;
    for await (const _key of this.db.keys({ gte, lt })) n++;
    return n;
  }

  scanPrefix(prefix: string, after?: string, limit = -1): Promise<[string, Uint8Array][]> {
    const gt = after !== undefined && after >= prefix ? after : undefined;
    this.checkOpen();
    return gt !== undefined
      ? this.db.iterator({ gt, lt: prefixEnd(prefix), limit }).all()
      : this.db.iterator({ gte: prefix, lt: prefixEnd(prefix), limit }).all();
  }

  async changes(afterSeq: number, limit: number): Promise<ChangeRecord[]> {
    const rows = await this.db.iterator({ gt: logKey(afterSeq), lt: prefixEnd(LOG_PREFIX), limit }).all();
    return rows.map(([, v]) => JSON.parse(Buffer.from(v).toString('utf8')) as ChangeRecord);
  }

  /**
   * Runs `fn` alone, then commits what it staged as one synced batch plus a change-log record.
   * If `fn` throws nothing is written. Returns what `fn` returned once the batch is durable.
   */
  mutate<T>(fn: (tx: Tx) => T | Promise<T>): Promise<T> {
    const run = this.queue.then(() => this.runMutation(fn));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Replication's say on writes: a replica refuses every mutation, a fenced primary too, and a
   * primary whose lease lapsed mid-write reports the write as failed (see server/replication).
   */
  setWriteGuard(guard: WriteGuard | undefined): void {
    this.guard = guard;
  }

  /** Streams [gte, lt) from one LevelDB snapshot taken at the call (replication snapshots). */
  iterate(gte: string, lt: string): AsyncIterable<[string, Uint8Array]> & { close(): Promise<void> } {
    this.checkOpen();
    return this.db.iterator({ gte, lt });
  }

  /**
   * Applies change-log records shipped by a primary, as one synced batch: their operations,
   * their log records, the sequence number and `local` (the replica's own state, never logged).
   * Records must continue this store's sequence exactly.
   */
  applyReplicated(records: ChangeRecord[], local: Op[] = []): Promise<void> {
    const run = this.queue.then(async () => {
      this.checkOpen();
      let seq = this.seq;
      const batch = this.db.batch();
      for (const record of records) {
        if (record.seq !== seq + 1) throw new CofferError('internal', `replicated record ${record.seq} does not follow ${seq}`);
        seq = record.seq;
        for (const op of record.ops) {
          if (op.type === 'put') batch.put(op.key, Buffer.from(op.value, 'base64'));
          else batch.del(op.key);
        }
        batch.put(logKey(seq), Buffer.from(JSON.stringify(record)));
        if (seq > this.retain) batch.del(logKey(seq - this.retain));
      }
      for (const op of local) op.type === 'put' ? batch.put(op.key, op.value) : batch.del(op.key);
      batch.put(SEQ_KEY, Buffer.from(String(seq)));
      await batch.write({ sync: true });
      this.seq = seq;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * One synced batch of raw operations with no change-log record (replica bootstrap from a
   * snapshot, and replication's local state). With `seq`, also sets the sequence number.
   */
  writeRaw(ops: Op[], seq?: number): Promise<void> {
    const run = this.queue.then(async () => {
      this.checkOpen();
      const batch = this.db.batch();
      for (const op of ops) op.type === 'put' ? batch.put(op.key, op.value) : batch.del(op.key);
      if (seq !== undefined) batch.put(SEQ_KEY, Buffer.from(String(seq)));
      await batch.write({ sync: true });
      if (seq !== undefined) this.seq = seq;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async runMutation<T>(fn: (tx: Tx) => T | Promise<T>): Promise<T> {
    this.checkOpen();
    const staged = new Map<string, Uint8Array | null>();
    const tx: Tx = {
      get: (key) => {
        const s = staged.get(key);
        return s === null ? undefined : (s ?? this.db.getSync(key));
      },
      put: (key, value) => void staged.set(key, value),
      del: (key) => void staged.set(key, null),
    };
    const result = await fn(tx);
    if (staged.size === 0) return result;
    this.guard?.beforeWrite();
    const seq = this.seq + 1;
    const record: ChangeRecord = { seq, time: this.now(), ops: [] };
    const batch = this.db.batch();
    for (const [key, value] of staged) {
      if (value === null) {
        batch.del(key);
        record.ops.push({ type: 'del', key });
      } else {
        batch.put(key, value);
        record.ops.push({ type: 'put', key, value: toBase64(value) });
      }
    }
    batch.put(SEQ_KEY, Buffer.from(String(seq)));
    batch.put(logKey(seq), Buffer.from(JSON.stringify(record)));
    if (seq > this.retain) batch.del(logKey(seq - this.retain));
    await batch.write({ sync: true });
    this.seq = seq;
    // Durable but not yet acknowledged: a lapsed lease turns it into an error for the caller.
    this.guard?.beforeAck();
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue;
    this.closed = true;
    await this.db.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new CofferError('internal', 'store is closed');
  }
}

import { readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { CofferError } from '../errors.js';
import { decodeChange, encodeChange, type ChangeRecord, type StoredOp } from './change-log.js';
import { classifyWriteError, storageError, type StorageFailure } from './faults.js';
import { LOG_PREFIX, SEQ_KEY, logKey, prefixEnd } from './keys.js';

export const DEFAULT_CHANGELOG_RETAIN = 100_000;

export interface StoreOptions {
  now?: () => number;
  /** Change-log records kept (see `open`). */
  retain?: number;
  /**
   * Whether mutations write change-log records; default true. Only replication reads them, so
   * a standalone server (replication not configured) turns them off: they were half the bytes
   * of every write for LevelDB to write and compact (docs/storage.md "Change log"). Sequence
   * numbers still advance; the records an earlier run left are dropped at open.
   */
  changeLog?: boolean;
  /** How often a store whose writes fail checks whether it can write again. */
  recoveryIntervalMs?: number;
  /**
   * Free bytes the disk needs before a failed store is reopened, beyond the size of LevelDB's
   * write-ahead log: reopening writes the log out as a table, then a manifest and a new log.
   */
  reopenMinFreeBytes?: number;
  /** Mutations committed together at most (group commit); 1 gives every mutation its own sync. */
  maxGroup?: number;
}

/** One write of a batch. */
export type Op = StoredOp;

/** One queued mutation (see `Store.mutate`). */
interface Job {
  run(tx: Tx): Promise<void>;
  done(): void;
  fail(e: unknown): void;
}

/** Mutations committed together at most, by default: bounds a group's batch and its latency. */
export const DEFAULT_MAX_GROUP = 1024;

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

export type { ChangeRecord } from './change-log.js';

/**
 * Stored bytes as they are: what the storage barrier (server/store/barrier.ts) and the key
 * hierarchy below it (the seal configuration, master versions, keyrings: records that must be
 * readable before the barrier can open) read and write. Engines never get this: they get the
 * barrier, which seals every value (see `isClearKey` in keys.ts for the exceptions).
 */
export interface KeyValueStore {
  get(key: string): Uint8Array | undefined;
  /** Keys and values in [gte, lt) in byte order, at most `limit`. */
  range(gte: string, lt: string, limit?: number): Promise<[string, Uint8Array][]>;
  scanPrefix(prefix: string, after?: string, limit?: number): Promise<[string, Uint8Array][]>;
  /** How many keys lie in [gte, lt) (keys only, no values read). */
  count(gte: string, lt: string): Promise<number>;
  /** One serialised, synced batch, change-logged when the store keeps a log (see `Store.mutate`). */
  mutate<T>(fn: (tx: Tx) => T | Promise<T>): Promise<T>;
}

/**
 * What only replication (and backup and restore, which move a whole store) uses: the change
 * log, whole-store iteration and writes of bytes as shipped. Every value it moves is as stored,
 * sealed by the barrier: replication never sees plaintext.
 */
export interface ReplicationStore extends KeyValueStore {
  readonly lastSeq: number;
  changes(afterSeq: number, limit: number): Promise<ChangeRecord[]>;
  iterate(gte: string, lt: string): AsyncIterable<[string, Uint8Array]> & { close(): Promise<void> };
  applyReplicated(records: ChangeRecord[], local?: Op[]): Promise<void>;
  writeRaw(ops: Op[], seq?: number): Promise<void>;
  setWriteGuard(guard: WriteGuard | undefined): void;
}

/**
 * The one LevelDB database of a server. Mutations run one at a time (a queue), so sequence
 * numbers, check-and-set and key-use counters need no further locking; each mutation stages
 * its writes and (with a change log) its own record, and the mutations that queue up while a batch is
 * syncing are written together as the next atomic batch with one `sync: true` (group commit).
 * Reads use `getSync`, which costs a few microseconds against tens for an awaited get.
 */
export class Store implements ReplicationStore {
  private queue: Promise<unknown> = Promise.resolve();
  /** The group commit mutations join until its last mutation has run. */
  private forming: { jobs: Job[] } | undefined;
  private seq: number;
  private closed = false;
  private guard: WriteGuard | undefined;
  private failure: StorageFailure | undefined;
  private reopening = false;
  private recoveryTimer: NodeJS.Timeout | undefined;
  private failedWriteCount = 0;
  private syncedBatchCount = 0;
  private readonly now: () => number;
  private readonly retain: number;

  private constructor(
    private db: ClassicLevel<string, Uint8Array>,
    private readonly location: string,
    seq: number,
    private readonly options: StoreOptions,
  ) {
    this.seq = seq;
    this.now = options.now ?? Date.now;
    this.retain = options.retain ?? DEFAULT_CHANGELOG_RETAIN;
  }

  /**
   * `retain`: change-log records kept; each mutation drops the one that falls out of the window,
   * so the log stays bounded without a separate compaction pass.
   */
  static async open(location: string, options: StoreOptions = {}): Promise<Store> {
    const db = await openLevel(location);
    const raw = db.getSync(SEQ_KEY);
    const seq = raw ? Number(Buffer.from(raw).toString('utf8')) : 0;
    const store = new Store(db, location, seq, options);
    try {
      if (await store.logIsBroken()) await store.dropChanges();
    } catch (e) {
      await db.close().catch(() => undefined);
      throw e;
    }
    return store;
  }

  /**
   * Whether the change log fails to be one run of records ending at the sequence number (or
   * empty), which is what a shipper relies on when it checks only the first record it reads. A
   * run without the log (standalone) leaves the records before it unable to continue to the
   * numbers it took, and records written after them would sit on both sides of a gap: so for a
   * store opened without the log every record is broken, and for one opened with it the log is
   * when its newest record is behind the sequence number (a standalone run of an earlier
   * version). Only the newest record is looked at: a hole further back is the shipper's to find
   * (it never ships across one). Dropped at open, the shipper then finds the next record
   * missing and ships a snapshot (docs/storage.md "Change log").
   */
  private async logIsBroken(): Promise<boolean> {
    const [newest] = await this.db.keys({ gte: LOG_PREFIX, lt: prefixEnd(LOG_PREFIX), reverse: true, limit: 1 }).all();
    return newest !== undefined && (this.options.changeLog === false || newest !== logKey(this.seq));
  }

  /**
   * Deletes the change-log records up to `untilSeq` (every one without it), a synced page at a
   * time, oldest first, so a crash leaves a suffix that is dropped again, and compacts their
   * range (else every later seek into the log steps over the tombstones: 38 ms for 100,000).
   * Returns how many it deleted. Runs in the write queue; writes no record of its own.
   */
  async dropChanges(untilSeq?: number): Promise<number> {
    const end = untilSeq === undefined ? prefixEnd(LOG_PREFIX) : logKey(untilSeq + 1);
    let dropped = 0;
    for (let from = LOG_PREFIX; ;) {
      const keys = await this.keys(from, end, 1000);
      const last = keys.at(-1);
      if (last === undefined) break;
      await this.writeRaw(keys.map((key) => ({ type: 'del', key })));
      dropped += keys.length;
      from = `${last}\u0000`;
    }
    if (dropped > 0) await this.db.compactRange(LOG_PREFIX, end);
    return dropped;
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** Set while writes fail (disk full, I/O error); cleared by the first write that succeeds again. */
  get storageFailure(): StorageFailure | undefined {
    return this.failure;
  }

  /** Batches that failed on a full disk or an I/O error since start (metrics). */
  get failedWrites(): number {
    return this.failedWriteCount;
  }

  /** Synced batches written since start: fewer than the mutations when group commit works. */
  get syncedBatches(): number {
    return this.syncedBatchCount;
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

  /** Keys in [gte, lt), at most `limit` (no values read). */
  async keys(gte: string, lt: string, limit = -1): Promise<string[]> {
    this.checkOpen();
    return this.db.keys({ gte, lt, limit }).all();
  }

  /** Compacts the whole database: overwritten and deleted values leave its files (after a migration). */
  async compact(): Promise<void> {
    this.checkOpen();
    await this.db.compactRange('', '\uffff\uffff');
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
    return rows.map(([, v]) => decodeChange(v));
  }

  /**
   * Runs `fn` alone (after every mutation queued before it), then commits what it staged with
   * its own sequence number (and change-log record). If `fn` throws nothing of it is written.
   * Returns what `fn` returned once its writes are durable. Mutations that arrive while a batch
   * is being synced are committed together in the next one (group commit, docs/storage.md).
   */
  mutate<T>(fn: (tx: Tx) => T | Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let result: T;
      this.enqueue({
        run: async (tx) => {
          result = await fn(tx);
        },
        done: () => resolve(result),
        fail: reject,
      });
    });
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
      this.checkWritable();
      let seq = this.seq;
      const ops: Op[] = [];
      for (const record of records) {
        if (record.seq !== seq + 1)
          throw new CofferError('internal', `replicated record ${record.seq} does not follow ${seq}`);
        seq = record.seq;
        const applied: Op[] = record.ops.map((op) =>
          op.type === 'put' ? { type: 'put', key: op.key, value: Buffer.from(op.value, 'base64') } : op,
        );
        ops.push(...applied, { type: 'put', key: logKey(seq), value: encodeChange(seq, record.time, applied) });
        if (seq > this.retain) ops.push({ type: 'del', key: logKey(seq - this.retain) });
      }
      ops.push(...local, { type: 'put', key: SEQ_KEY, value: Buffer.from(String(seq)) });
      await this.commit(ops);
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
      this.checkWritable();
      await this.commit(
        seq === undefined ? ops : [...ops, { type: 'put', key: SEQ_KEY, value: Buffer.from(String(seq)) }],
      );
      if (seq !== undefined) this.seq = seq;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private enqueue(job: Job): void {
    let group = this.forming;
    if (!group || group.jobs.length >= (this.options.maxGroup ?? DEFAULT_MAX_GROUP)) {
      const fresh: Job[] = [];
      group = { jobs: fresh };
      this.forming = group;
      const run = this.queue.then(() => this.runGroup(fresh));
      this.queue = run.catch(() => undefined);
    }
    group.jobs.push(job);
  }

  /**
   * One group commit. The mutations run one at a time, in arrival order, each reading the
   * writes of those before it in the group (so check-and-set and counters behave as if each
   * had its own batch); one that throws, or that the write guard refuses, is dropped alone. The
   * others are written as one batch with one sync, and none is acknowledged before it is
   * durable. Mutations may join the group until its last one has run.
   */
  private async runGroup(jobs: Job[]): Promise<void> {
    const settled: { job: Job; wrote: boolean }[] = [];
    let seq = this.seq;
    const ops: Op[] = [];
    try {
      this.checkOpen();
      this.checkWritable();
      const overlay = new Map<string, Uint8Array | null>();
      for (let i = 0; i < jobs.length; i++) {
        const job = jobs[i]!;
        const staged = new Map<string, Uint8Array | null>();
        const tx: Tx = {
          get: (key) => {
            const s = staged.has(key) ? staged.get(key) : overlay.get(key);
            return s === null ? undefined : (s ?? this.db.getSync(key));
          },
          put: (key, value) => void staged.set(key, value),
          del: (key) => void staged.set(key, null),
        };
        let recorded: Op[] = [];
        try {
          await job.run(tx);
          if (staged.size > 0) {
            this.guard?.beforeWrite();
            // Encoded here: a record that cannot be encoded (an oversize key) fails its mutation alone.
            recorded = this.record(seq + 1, staged);
          }
        } catch (e) {
          job.fail(e);
          continue;
        }
        if (staged.size > 0) {
          seq++;
          ops.push(...recorded);
          for (const [key, value] of staged) overlay.set(key, value);
        }
        settled.push({ job, wrote: staged.size > 0 });
      }
    } catch (e) {
      this.closeGroup(jobs);
      for (const job of jobs) job.fail(e); // a settled promise ignores a second outcome
      return;
    }
    // No await since the last job ran: nothing can join after this.
    this.closeGroup(jobs);
    if (seq !== this.seq) {
      ops.push({ type: 'put', key: SEQ_KEY, value: Buffer.from(String(seq)) });
      try {
        await this.commit(ops);
      } catch (e) {
        for (const { job } of settled) job.fail(e);
        return;
      }
      this.seq = seq;
    }
    for (const { job, wrote } of settled) {
      try {
        // Durable but not yet acknowledged: a lapsed lease turns it into an error for the caller.
        if (wrote) this.guard?.beforeAck();
      } catch (e) {
        job.fail(e);
        continue;
      }
      job.done();
    }
  }

  private closeGroup(jobs: Job[]): void {
    if (this.forming?.jobs === jobs) this.forming = undefined;
  }

  /** The operations of one mutation: its staged writes and, with a change log, its record. */
  private record(seq: number, staged: Map<string, Uint8Array | null>): Op[] {
    const ops: Op[] = [];
    for (const [key, value] of staged) ops.push(value === null ? { type: 'del', key } : { type: 'put', key, value });
    if (this.options.changeLog === false) return ops;
    ops.push({ type: 'put', key: logKey(seq), value: encodeChange(seq, this.now(), ops) });
    if (seq > this.retain) ops.push({ type: 'del', key: logKey(seq - this.retain) });
    return ops;
  }

  /**
   * Waits for the writes queued, then closes. A clean close first writes the memtable out as a
   * table (a compaction of a key range nothing lies in does only that), so the next open has no
   * log to replay: start-up after a clean stop does not depend on what was last written (up to
   * 16 MiB of log otherwise). A store whose writes fail skips it; so does a failed flush.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.recoveryTimer);
    await this.queue;
    this.closed = true;
    if (!this.failure && !this.reopening && this.db.status === 'open')
      await this.db.compactRange(NOTHING, NOTHING).catch(() => undefined);
    await this.db.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new CofferError('internal', 'store is closed');
    if (this.reopening)
      throw new CofferError('storage_unavailable', 'the database is reopening after a write failure: retry shortly');
  }

  /**
   * Writes refused until the recovery loop has reopened the database. A failed write must never
   * be followed by writes on the same handle: a full disk can leave a torn record at the end of
   * LevelDB's log without putting LevelDB into its error state, later writes then succeed in
   * memory and in the torn log, and the next open drops them all (acknowledged writes lost).
   */
  private checkWritable(): void {
    if (this.failure) throw storageError(this.failure);
  }

  /**
   * Writes one synced batch. A full disk or an I/O error becomes `storage_full` or
   * `storage_unavailable` (never a bare 500), marks the store failed for health, and starts
   * the recovery loop; reads keep being served from the same handle meanwhile.
   */
  private async commit(ops: Op[]): Promise<void> {
    try {
      // A chained batch: each operation crosses into classic-level as it is added, where the
      // array form clones every operation and has the binding read it back property by
      // property (1.5 us against 8-16 us an operation here; a write is six or seven).
      const batch = this.db.batch();
      try {
        for (const op of ops) {
          if (op.type === 'put') batch.put(op.key, op.value);
          else batch.del(op.key);
        }
      } catch (e) {
        await batch.close();
        throw e;
      }
      await batch.write({ sync: true });
      this.syncedBatchCount++;
    } catch (e) {
      const failure = classifyWriteError(e, this.now());
      if (!failure) throw e;
      this.failedWriteCount++;
      this.failure = this.failure ? { ...failure, since: this.failure.since } : failure;
      this.scheduleRecovery();
      throw storageError(failure);
    }
  }

  private scheduleRecovery(): void {
    if (this.recoveryTimer || this.closed) return;
    this.recoveryTimer = setTimeout(() => {
      this.recoveryTimer = undefined;
      const run = this.queue.then(() => this.recover());
      this.queue = run.catch(() => undefined);
      void run.finally(() => this.failure && this.scheduleRecovery());
    }, this.options.recoveryIntervalMs ?? 1000);
    this.recoveryTimer.unref();
  }

  /**
   * Runs in the write queue, so no batch is in flight. Once the disk has room again (the
   * write-ahead log's size, which the reopen writes out as a table, and a margin), the
   * database is closed and reopened, always: the reopen replays the log (dropping a torn tail
   * record, and clearing LevelDB's sticky error after a failed compaction), and the sequence
   * number is read back from disk, since a batch reported as failed may still have reached it
   * (then it is wholly there, and its change-log record with it). A synced probe write then
   * shows the disk takes writes. Without room a reopen could fail half-way and leave no handle
   * to serve reads from, so it waits.
   */
  private async recover(): Promise<void> {
    if (!this.failure || this.closed) return;
    const free = await statfs(this.location).then(
      (s) => s.bavail * s.bsize,
      () => 0,
    );
    if (free < (await logBytes(this.location)) + (this.options.reopenMinFreeBytes ?? 1024 * 1024)) return;
    this.reopening = true;
    try {
      await this.db.close().catch(() => undefined);
      this.db = await openLevel(this.location);
    } catch (e) {
      this.failure = { code: 'storage_unavailable', since: this.failure.since, detail: (e as Error).message };
      return; // reads stay refused until a later round opens it
    } finally {
      this.reopening = this.db.status !== 'open';
    }
    const raw = this.db.getSync(SEQ_KEY);
    this.seq = raw ? Number(Buffer.from(raw).toString('utf8')) : 0;
    try {
      await this.db
        .batch()
        .put(SEQ_KEY, Buffer.from(String(this.seq)))
        .write({ sync: true });
    } catch {
      return; // still failing: the next round reopens again
    }
    this.failure = undefined;
  }
}

/**
 * LevelDB's memtable size (its default is 4 MiB). Each time a memtable fills, LevelDB 1.20
 * (bundled by classic-level) writes it out and then deletes obsolete files with its mutex held,
 * and a synchronous read on the main thread waits for that mutex: 20-30 ms of a stalled event
 * loop. A write stages about 6 KB (records, keyring counters, its change-log record), so at
 * 3,000 writes/s a 4 MiB memtable fills four times a second; 16 MiB makes that once a second
 * (in-process writers: 2,570 against 2,690-2,920 writes/s; docs/performance.md). The cost is a
 * longer log replay when the database opens, at most 16 MiB whatever the number of secrets
 * (25 ms at 4 MiB, 84 ms at 16 MiB here), and up to 24 MiB more memory under writes.
 */
const WRITE_BUFFER_BYTES = 16 * 1024 * 1024;

/** A key below every key the store holds (they all start with a letter): the empty compaction range of `close`. */
const NOTHING = '\u0000';

/**
 * The size of LevelDB's write-ahead log files (`NNNNNN.log`; its info log is `LOG`): what an
 * open replays and writes out as a table, a memtable's worth or two. A log that cannot be
 * measured counts as a whole memtable; one LevelDB deleted meanwhile as nothing.
 */
async function logBytes(location: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(location);
  } catch {
    return 2 * WRITE_BUFFER_BYTES; // a live log and the one of a memtable being written out
  }
  let total = 0;
  for (const name of names) {
    if (!/^[0-9]+\.log$/.test(name)) continue;
    total += await stat(join(location, name)).then(
      (s) => s.size,
      (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? 0 : WRITE_BUFFER_BYTES), // deleted by LevelDB meanwhile
    );
  }
  return total;
}

async function openLevel(location: string): Promise<ClassicLevel<string, Uint8Array>> {
  const db = new ClassicLevel<string, Uint8Array>(location, {
    keyEncoding: 'utf8',
    valueEncoding: 'view',
    writeBufferSize: WRITE_BUFFER_BYTES,
  });
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
  return db;
}

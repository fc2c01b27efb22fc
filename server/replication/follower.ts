import type { Logger } from 'pino';
import type { Op, Store } from '../store/db.js';
import type { Bucket } from './bucket.js';
import {
  KIND,
  ReplicationError,
  openObject,
  parseJson,
  parseSegmentName,
  segmentHeader,
  segmentName,
  segmentPayload,
  segmentPrefix,
  type ManifestBody,
  type ReplicationKeys,
} from './format.js';
import { fetchVerifiedManifest } from './manifest.js';
import { readSnapshot } from './snapshot.js';
import { isBootstrapping, readStream, streamOp, type StreamState } from './state.js';
import {
  REPL_BOOTSTRAP_KEY as BOOTSTRAP_KEY,
  REPL_LOCAL_PREFIX as LOCAL_PREFIX,
  SEQ_KEY,
  isLocalKey,
} from '../store/keys.js';
import type { ReplicaProgress } from '../../sdk/wire/types.js';
import { timestamp, timestampOrNull } from '../../sdk/wire/time.js';

export interface FollowerOptions {
  store: Store;
  bucket: Bucket;
  keys: ReplicationKeys;
  cluster: string;
  log: Logger;
  now: () => number;
  pollMs: number;
  maxStalenessMs: number;
  /** After each applied segment or snapshot, with the store keys it changed. */
  onApplied: (keys: string[]) => Promise<void>;
}

/** What `GET /v1/sys/replication` shows of the stream a replica follows (sdk/wire/types.ts). */
export type FollowerStatus = ReplicaProgress;

const CANDIDATES = 16;

/**
 * The replica side: polls the manifest, verifies it, fetches the segments it announces in order
 * and applies each in one batch together with the new high-water mark. It never applies
 * anything it has not verified (MAC, chain, epoch, sequence continuity, name = content), never
 * moves backwards, and on any refusal keeps serving what it has and says why in its status.
 */
export class Follower {
  private state: StreamState;
  private stopped = false;
  /** Set while `catchUp` runs after `stop` (promotion): segments are applied even though stopped. */
  private catchingUp = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private highest: { epoch: number; issued_at: number } = { epoch: 0, issued_at: 0 };
  private headSeq: number | null = null;
  private behindSince: number | null = null;
  private verifiedHeadAt: number | null = null;
  private lastError: FollowerStatus['error'] = null;
  primary = '';

  constructor(private readonly o: FollowerOptions) {
    this.state = readStream(o.store) ?? { epoch: 1, seq: 0, chain: '0'.repeat(64) };
  }

  /**
   * True while the store holds a partial snapshot load (the persisted BOOTSTRAP_KEY: a load
   * in progress, or one that failed or crashed after the store was cleared). Reads are refused
   * until a load completes, and every poll redoes it before anything else.
   */
  private get partial(): boolean {
    return isBootstrapping(this.o.store);
  }

  /** True until a snapshot has been applied completely. */
  get needsBootstrap(): boolean {
    return readStream(this.o.store) === undefined || this.o.store.get(BOOTSTRAP_KEY) !== undefined;
  }

  /** Loads the manifest's snapshot (first start, or a crash mid-bootstrap). */
  async bootstrap(): Promise<void> {
    const manifest = await this.fetchManifest();
    if (!manifest.snapshot) throw new ReplicationError('snapshot_missing', 'the manifest names no snapshot yet');
    await this.applySnapshot(manifest);
  }

  start(): void {
    if (this.loop && !this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  /** Polls now (tests, and right after promotion checks). */
  poke(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  /**
   * After `stop`: applies everything the bucket's current manifest announces (promotion must
   * not drop writes the primary already shipped) and returns that verified manifest. Throws
   * when something cannot be applied.
   */
  async catchUp(): Promise<ManifestBody> {
    this.catchingUp = true;
    try {
      return await this.poll();
    } finally {
      this.catchingUp = false;
    }
  }

  get applied(): StreamState {
    return this.state;
  }

  /** True while token-authenticated reads must be refused (stale head, or a partial load). */
  refusesReads(): boolean {
    return this.partial || this.isStale();
  }

  status(): FollowerStatus {
    const now = this.o.now();
    const lagSeq = this.headSeq === null ? 0 : Math.max(0, this.headSeq - this.state.seq);
    return {
      epoch: this.state.epoch,
      applied_seq: this.state.seq,
      head_seq: this.headSeq,
      primary: this.primary,
      verified_head_at: timestampOrNull(this.verifiedHeadAt),
      lag_seq: lagSeq,
      lag_ms: lagSeq > 0 && this.behindSince !== null ? Math.max(0, now - this.behindSince) : 0,
      stale: this.isStale(),
      bootstrapping: this.partial,
      error: this.lastError,
    };
  }

  private isStale(): boolean {
    return this.verifiedHeadAt === null || this.o.now() - this.verifiedHeadAt > this.o.maxStalenessMs;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      await this.step();
      if (this.stopped) break;
      await new Promise<void>((resume) => {
        const timer = setTimeout(resume, this.o.pollMs);
        this.wake = () => {
          clearTimeout(timer);
          resume();
        };
      });
      this.wake = undefined;
    }
  }

  /** One poll; a refusal or failure is recorded in the status and logged once, never thrown. */
  async step(): Promise<void> {
    try {
      await this.poll();
      if (this.lastError) this.o.log.info({ applied_seq: this.state.seq }, 'replication recovered');
      this.lastError = null;
    } catch (e) {
      if (this.stopped) return;
      const code = e instanceof ReplicationError ? e.code : 'unavailable';
      const message = e instanceof Error ? e.message : String(e);
      if (this.lastError?.message !== message)
        this.o.log.warn(
          { code, err: message, applied_seq: this.state.seq, bucket: this.o.bucket.url },
          'replication refused or failed; keeping what is applied',
        );
      this.lastError = { code, message, at: timestamp(this.o.now()) };
    }
  }

  private async fetchManifest(): Promise<ManifestBody> {
    return fetchVerifiedManifest(this.o.bucket, this.o.keys, this.o.cluster);
  }

  /** One poll: verify the manifest, refuse rollbacks, follow it as far as the segments allow. */
  async poll(): Promise<ManifestBody> {
    const m = await this.fetchManifest();
    const s = this.state;
    if (m.epoch < s.epoch || m.epoch < this.highest.epoch)
      throw new ReplicationError(
        'rollback',
        `manifest epoch ${m.epoch} is older than epoch ${Math.max(s.epoch, this.highest.epoch)} already seen`,
      );
    if (m.epoch === this.highest.epoch && m.issued_at < this.highest.issued_at)
      throw new ReplicationError('rollback', 'manifest is older than one already verified (rolled back)');
    if (m.epoch === s.epoch && m.head.seq < s.seq)
      throw new ReplicationError(
        'rollback',
        `manifest head ${m.head.seq} is behind the applied sequence ${s.seq} (rolled back)`,
      );
    this.highest = { epoch: m.epoch, issued_at: m.issued_at };
    this.primary = m.primary;
    this.headSeq = m.head.seq;
    if (m.head.seq > s.seq) this.behindSince ??= m.issued_at;

    if (this.partial) {
      // An earlier load cleared the store and did not finish: nothing else may be applied on
      // top of what is left; load the snapshot again (never one older than what was applied).
      if (!m.snapshot || m.snapshot.seq < this.state.seq || m.snapshot.epoch < this.state.epoch) {
        throw new ReplicationError(
          'snapshot_missing',
          'an interrupted snapshot load must be redone, but the manifest names no usable snapshot',
        );
      }
      await this.applySnapshot(m);
    }
    try {
      if (m.epoch > this.state.epoch) await this.enterEpoch(m);
      await this.follow(m.epoch, m.head.seq, m.recent);
    } catch (e) {
      // A gap the segments cannot bridge, but an authenticated snapshot can.
      const recoverable = e instanceof ReplicationError && (e.code === 'gap' || e.code === 'old_epoch_gone');
      if (!recoverable || !m.snapshot || m.snapshot.seq <= this.state.seq || m.snapshot.epoch < this.state.epoch)
        throw e;
      this.o.log.warn(
        { applied_seq: this.state.seq, snapshot_seq: m.snapshot.seq, reason: e.message },
        'replication gap; resuming from the newer snapshot',
      );
      await this.applySnapshot(m);
      if (m.epoch > this.state.epoch) await this.enterEpoch(m);
      await this.follow(m.epoch, m.head.seq, m.recent);
    }
    if (this.state.epoch === m.epoch && this.state.seq === m.head.seq) {
      if (this.state.chain !== m.head.chain)
        throw new ReplicationError('chain_mismatch', `applied chain at ${m.head.seq} differs from the manifest's`);
      this.verifiedHeadAt = Math.max(this.verifiedHeadAt ?? 0, m.issued_at);
      this.behindSince = null;
    }
    return m;
  }

  /** Moves to a newer epoch at its base: finish the old epoch up to the base, then switch. */
  private async enterEpoch(m: ManifestBody): Promise<void> {
    if (this.state.seq < m.base.seq) {
      try {
        await this.follow(this.state.epoch, m.base.seq, []);
      } catch (e) {
        if (e instanceof ReplicationError && e.code === 'gap')
          throw new ReplicationError(
            'old_epoch_gone',
            `segments of epoch ${this.state.epoch} up to ${m.base.seq} are gone`,
          );
        throw e;
      }
    }
    if (this.state.seq !== m.base.seq || this.state.chain !== m.base.chain) {
      throw new ReplicationError(
        'diverged',
        `epoch ${m.epoch} starts at ${m.base.seq} but this replica applied ${this.state.seq} records of epoch ${this.state.epoch} on another chain: rebuild this replica from a fresh data directory`,
      );
    }
    const next = { ...this.state, epoch: m.epoch };
    await this.o.store.writeRaw([streamOp(next)]);
    this.state = next;
    this.o.log.info({ epoch: m.epoch, seq: next.seq }, 'replication entered a new epoch');
  }

  /** Applies segments of `epoch` until `upTo` (never beyond what a verified manifest announced). */
  private async follow(epoch: number, upTo: number, recent: [number, number][]): Promise<void> {
    while (this.state.seq < upTo && (!this.stopped || this.catchingUp)) {
      const from = this.state.seq + 1;
      const names = recent.filter(([f, t]) => f === from && t <= upTo).map(([f, t]) => segmentName(epoch, f, t));
      if (names.length === 0) names.push(...(await this.listCandidates(epoch, from, upTo)));
      if (names.length === 0)
        throw new ReplicationError('gap', `segment starting at ${from} (epoch ${epoch}) is missing; waiting`);
      let lastError: unknown = new ReplicationError('gap', `segment starting at ${from} is not readable yet`);
      let applied = false;
      for (const name of names) {
        try {
          await this.applySegment(epoch, name);
          applied = true;
          break;
        } catch (e) {
          lastError = e;
        }
      }
      if (!applied) throw lastError;
    }
  }

  /** Segment names starting at `from`, by listing (names outside the strict pattern are skipped). */
  private async listCandidates(epoch: number, from: number, upTo: number): Promise<string[]> {
    const prefix = segmentPrefix(epoch);
    const page = await this.o.bucket.list(prefix, {
      startAfter: `${prefix}${(from - 1).toString(16).padStart(16, '0')}-g`,
      limit: 100,
    });
    return page.objects
      .map((o) => ({ key: o.key, name: parseSegmentName(o.key) }))
      .filter((c) => c.name && c.name.epoch === epoch && c.name.from === from && c.name.to <= upTo)
      .slice(0, CANDIDATES)
      .map((c) => c.key);
  }

  private async applySegment(epoch: number, name: string): Promise<void> {
    const expected = parseSegmentName(name)!;
    const object = await this.o.bucket.get(name);
    if (!object) throw new ReplicationError('gap', `segment ${name} is listed but not readable yet`);
    const { header, payload, mac } = openObject(this.o.keys, KIND.segment, object.body, segmentHeader);
    const s = this.state;
    if (header.cluster !== this.o.cluster || header.key !== this.o.keys.id)
      throw new ReplicationError('other_vault', `segment ${name} belongs to another vault or key`);
    if (header.epoch !== epoch || header.from !== expected.from || header.to !== expected.to)
      throw new ReplicationError(
        'misnamed',
        `segment ${name} holds records ${header.from}-${header.to} of epoch ${header.epoch} (moved or replayed)`,
      );
    if (header.from !== s.seq + 1)
      throw new ReplicationError('replayed', `segment ${name} does not continue sequence ${s.seq}`);
    if (header.prev !== s.chain)
      throw new ReplicationError(
        'chain_broken',
        `segment ${name} does not chain to the last applied segment (reordered, replayed or forked)`,
      );
    const records = parseJson(segmentPayload, Buffer.from(payload).toString('utf8'), `segment ${name}`);
    if (records.length !== header.count)
      throw new ReplicationError('bad_format', `segment ${name} record count differs from its header`);
    const touched: string[] = [];
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (r.seq !== header.from + i) throw new ReplicationError('bad_format', `segment ${name} skips sequence numbers`);
      for (const op of r.ops) {
        if (isLocalKey(op.key)) throw new ReplicationError('bad_format', `segment ${name} writes a server-local key`);
        touched.push(op.key);
      }
    }
    if (records[records.length - 1]!.seq !== header.to)
      throw new ReplicationError('bad_format', `segment ${name} ends before its header says`);
    const next: StreamState = { ...s, epoch, seq: header.to, chain: mac };
    await this.o.store.applyReplicated(records, [streamOp(next)]);
    this.state = next;
    await this.o.onApplied(touched);
  }

  /**
   * Replaces the whole store with the manifest's snapshot. When the store holds a complete
   * state (gap recovery), the whole snapshot (index and every part: MACs, headers, contents) is
   * verified first, so a missing or bad part leaves the store untouched and serving. The load
   * itself runs in several batches under a persisted marker: reads are refused until it
   * completes, a failure or crash midway keeps them refused, and the next poll (or start)
   * loads it again.
   */
  private async applySnapshot(m: ManifestBody): Promise<void> {
    const snapshot = m.snapshot!;
    const { store, log } = this.o;
    const started = this.o.now();
    if (!this.partial && readStream(store) !== undefined) {
      await readSnapshot(this.o.bucket, this.o.keys, this.o.cluster, snapshot, async () => undefined);
    }
    await store.writeRaw([{ type: 'put', key: BOOTSTRAP_KEY, value: Buffer.from(String(snapshot.seq)) }]);
    // Drop everything but this server's own state (the old change log included) before loading.
    let dels: Op[] = [];
    const iterator = store.iterate('', '\uffff');
    try {
      for await (const [key] of iterator) {
        if (key === SEQ_KEY || key.startsWith(LOCAL_PREFIX)) continue;
        dels.push({ type: 'del', key });
        if (dels.length >= 5000) {
          await store.writeRaw(dels);
          dels = [];
        }
      }
    } finally {
      await iterator.close();
    }
    if (dels.length > 0) await store.writeRaw(dels);
    let lastLog = 0;
    await readSnapshot(this.o.bucket, this.o.keys, this.o.cluster, snapshot, async (ops, progress) => {
      await store.writeRaw(ops);
      const now = this.o.now();
      if (now - lastLog > 2000 || progress.part === progress.parts) {
        lastLog = now;
        log.info(
          { part: progress.part, parts: progress.parts, entries: progress.entries },
          'replica bootstrap: loading snapshot',
        );
      }
    });
    const next: StreamState = { epoch: snapshot.epoch, seq: snapshot.seq, chain: snapshot.chain };
    await store.writeRaw([streamOp(next), { type: 'del', key: BOOTSTRAP_KEY }], snapshot.seq);
    this.state = next;
    log.info({ seq: snapshot.seq, epoch: snapshot.epoch, ms: this.o.now() - started }, 'replica loaded snapshot');
    await this.o.onApplied(['*']);
  }
}

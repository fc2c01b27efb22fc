import type { Logger } from 'pino';
import type { ChangeRecord, Store } from '../store/db.js';
import { buildManifest } from './manifest.js';
import { PreconditionFailed, type Bucket } from './bucket.js';
import {
  KIND,
  MANIFEST,
  ReplicationError,
  encodeManifest,
  genesisChain,
  openManifest,
  openObject,
  parseSegmentName,
  sealObject,
  segmentHeader,
  segmentName,
  segmentPrefix,
  snapshotIndexName,
  type ManifestBody,
  type ReplicationKeys,
} from './format.js';
import { openSnapshotIndex, pruneSnapshots, sealSnapshotIndex, writeSnapshotParts } from './snapshot.js';
import type { ReplicationTarget } from '../../sdk/wire/types.js';
import { timestamp } from '../../sdk/wire/time.js';

export interface ShipperOptions {
  store: Store;
  bucket: Bucket;
  keys: ReplicationKeys;
  cluster: string;
  node: string;
  epoch: number;
  log: Logger;
  now: () => number;
  /** The primary's address, published for replicas' 409 answers. */
  primaryAddr: () => string;
  /** Store entries a fresh replica needs before unsealing (manifest `identity`). */
  identity: () => Promise<Record<string, string>>;
  /** Called once when the bucket shows that another server holds this stream. */
  onFenced: (reason: string) => void;
  batchMs: number;
  leaseMs: number;
  snapshotEvery: number;
  segmentMaxRecords: number;
  segmentMaxBytes: number;
  /** A manifest this server just wrote (promotion): continue from it instead of reading one. */
  adopt?: { etag: string; body: ManifestBody };
}

/** What `GET /v1/sys/replication` shows per target (sdk/wire/types.ts). */
export type TargetStatus = ReplicationTarget;

interface Stream {
  epoch: number;
  seq: number;
  chain: string;
  base: { seq: number; chain: string };
  recent: [number, number][];
  snapshot: ManifestBody['snapshot'];
  snapshotId: string | undefined;
  etag: string | undefined;
}

class NeedSnapshot extends Error {}

const RECENT = 256;
const MAX_BACKOFF_MS = 30_000;

/**
 * Ships this primary's change log to one bucket. One loop per target, so a slow or dead target
 * never holds up writes or the other targets: records wait in the change log (bounded by its
 * retention; a target that falls further behind gets a fresh snapshot when it returns).
 *
 * Each segment is encrypted, MACed and chained to the previous one's MAC, uploaded with an
 * exclusive create, and only then announced by a conditional (If-Match) manifest write. The
 * manifest write is also the lease renewal; a lost condition means another server wrote the
 * manifest, and this one is fenced.
 */
export class Shipper {
  private stream: Stream | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private snapshotWanted = false;
  private lastManifestAt = 0;
  private sinceSnapshot = 0;
  private failures = 0;
  private manifestDirty = false;
  /** Writes may be acknowledged until then (lease held on this target). */
  leaseValidUntil = 0;
  readonly status: TargetStatus;

  constructor(private readonly o: ShipperOptions) {
    this.status = {
      url: o.bucket.url,
      epoch: o.epoch,
      last_shipped_seq: 0,
      ok: false,
      error: null,
      last_ok_at: null,
      lease_until: null,
      snapshot_seq: null,
    };
    if (o.adopt) {
      const b = o.adopt.body;
      this.stream = {
        epoch: b.epoch,
        seq: b.head.seq,
        chain: b.head.chain,
        base: b.base,
        recent: b.recent,
        snapshot: b.snapshot,
        snapshotId: undefined,
        etag: o.adopt.etag,
      };
      this.snapshotWanted = true; // a new epoch starts with its own snapshot
      this.leaseValidUntil = b.lease_until || Infinity;
      this.lastManifestAt = b.issued_at;
    }
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Takes a full snapshot on the next turn (admin request, or a new epoch). */
  requestSnapshot(): void {
    this.snapshotWanted = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private get refreshMs(): number {
    return this.o.leaseMs > 0 ? Math.min(10_000, Math.floor(this.o.leaseMs / 3)) : 10_000;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let delay = this.o.batchMs;
      try {
        await this.turn();
        this.failures = 0;
        this.status.ok = true;
        this.status.error = null;
        this.status.last_ok_at = timestamp(this.o.now());
      } catch (e) {
        if (this.stopped) break;
        this.failures++;
        delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(this.failures, 8));
        const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        if (this.status.error !== message)
          this.o.log.warn(
            { target: this.o.bucket.url, err: message, retry_ms: delay },
            'replication target failed; retrying',
          );
        this.status.ok = false;
        this.status.error = message;
      }
      if (this.stopped) break;
      await new Promise<void>((resume) => {
        const timer = setTimeout(resume, delay);
        this.wake = () => {
          clearTimeout(timer);
          resume();
        };
      });
      this.wake = undefined;
    }
  }

  private async turn(): Promise<void> {
    if (!this.stream) await this.attach();
    const stream = this.stream!;
    let dirty = false;
    try {
      dirty = await this.shipPending(stream, this.o.store.lastSeq);
    } catch (e) {
      if (!(e instanceof NeedSnapshot)) throw e;
      this.snapshotWanted = true;
    }
    if (this.snapshotWanted || this.sinceSnapshot >= this.o.snapshotEvery) {
      await this.snapshot(stream);
      dirty = true;
    }
    if (dirty || this.manifestDirty || this.o.now() - this.lastManifestAt >= this.refreshMs)
      await this.writeManifest(stream);
    this.status.last_shipped_seq = stream.seq;
    this.status.epoch = stream.epoch;
    this.status.snapshot_seq = stream.snapshot?.seq ?? null;
  }

  /** Reads the target's manifest: resume our own stream, start a new one, or find we are fenced. */
  private async attach(): Promise<void> {
    const { bucket, keys, cluster, node, epoch } = this.o;
    const object = await bucket.get(MANIFEST);
    if (object) {
      const body = openManifest(keys, cluster, object.body);
      if (body.epoch > epoch || (body.epoch === epoch && body.holder !== node)) {
        return this.fence(
          `the bucket ${bucket.url} names epoch ${body.epoch} held by another server (${body.primary || body.holder})`,
        );
      }
      if (body.epoch === epoch) {
        if (body.head.seq > this.o.store.lastSeq) {
          throw new ReplicationError(
            'bucket_ahead',
            `the bucket has records up to ${body.head.seq} but this server only ${this.o.store.lastSeq}: refusing to write`,
          );
        }
        const resumed: Stream = {
          epoch,
          seq: body.head.seq,
          chain: body.head.chain,
          base: body.base,
          recent: body.recent,
          snapshot: body.snapshot,
          snapshotId: undefined,
          etag: object.etag,
        };
        await this.dropOrphans(resumed);
        this.sinceSnapshot = body.head.seq - (body.snapshot?.seq ?? 0);
        this.stream = resumed;
        return;
      }
      // An older epoch (this server was promoted elsewhere): wait out its holder's lease.
      const wait = body.lease_until - this.o.now();
      if (wait > 0)
        throw new ReplicationError(
          'lease_held',
          `the previous primary's lease on ${bucket.url} runs for ${Math.ceil(wait / 1000)} s more`,
        );
    }
    // A new stream: it starts with a snapshot, and is this shipper's only once that is in the
    // bucket. Taken before, a failed snapshot would leave a stream with no chain, and the next
    // turn would ship records from 0 and announce them in a manifest no replica accepts.
    const fresh: Stream = {
      epoch,
      seq: 0,
      chain: '',
      base: { seq: 0, chain: '' },
      recent: [],
      snapshot: null,
      snapshotId: undefined,
      etag: object?.etag,
    };
    await this.snapshot(fresh);
    this.stream = fresh;
  }

  /** Segments uploaded but never announced (a crash between upload and manifest) would be a fork. */
  private async dropOrphans(stream: Stream): Promise<void> {
    const prefix = segmentPrefix(stream.epoch);
    const page = await this.o.bucket.list(prefix, {
      startAfter: `${prefix}${stream.seq.toString(16).padStart(16, '0')}-g`,
    });
    for (const { key } of page.objects) {
      const name = parseSegmentName(key);
      if (name && name.from > stream.seq) await this.o.bucket.delete(key);
    }
  }

  private async shipPending(stream: Stream, upTo: number): Promise<boolean> {
    let shipped = false;
    while (stream.seq < upTo && !this.stopped) {
      const records = (await this.o.store.changes(stream.seq, this.o.segmentMaxRecords)).filter((r) => r.seq <= upTo);
      if (records.length === 0 || records[0]!.seq !== stream.seq + 1)
        throw new NeedSnapshot('the change log no longer holds the next record');
      const batch: ChangeRecord[] = [];
      let bytes = 0;
      for (const r of records) {
        // A segment holds consecutive records only: past a gap, the next pass finds its first record missing.
        if (r.seq !== stream.seq + batch.length + 1) break;
        const size = JSON.stringify(r).length;
        if (batch.length > 0 && bytes + size > this.o.segmentMaxBytes) break;
        batch.push(r);
        bytes += size;
      }
      await this.upload(stream, batch);
      shipped = true;
    }
    return shipped;
  }

  private async upload(stream: Stream, records: ChangeRecord[]): Promise<void> {
    const { keys, cluster, bucket } = this.o;
    const from = records[0]!.seq;
    const to = records[records.length - 1]!.seq;
    const payload = Buffer.from(JSON.stringify(records));
    const header = { cluster, key: keys.id, epoch: stream.epoch, from, to, prev: stream.chain, count: records.length };
    const sealed = sealObject(keys, KIND.segment, header, payload);
    const name = segmentName(stream.epoch, from, to);
    let mac = sealed.mac;
    try {
      await bucket.put(name, sealed.bytes, { ifNoneMatch: '*' });
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
      // Our own earlier upload whose answer was lost, or another primary writing this epoch.
      const existing = await bucket.get(name);
      const opened = existing ? tryOpen(keys, existing.body) : undefined;
      if (
        !opened ||
        opened.header.prev !== stream.chain ||
        Buffer.compare(Buffer.from(opened.payload), payload) !== 0
      ) {
        return this.fence(`segment ${name} was written by another server (split brain)`);
      }
      mac = opened.mac;
    }
    stream.seq = to;
    stream.chain = mac;
    stream.recent.push([from, to]);
    if (stream.recent.length > RECENT) stream.recent.splice(0, stream.recent.length - RECENT);
    this.sinceSnapshot += records.length;
  }

  /**
   * A full snapshot at the sequence the store is at: parts first, then segments up to exactly
   * that sequence (so the snapshot carries the chain value there), then the index.
   */
  private async snapshot(stream: Stream): Promise<void> {
    const { store, bucket, keys, cluster } = this.o;
    const started = this.o.now();
    const parts = await writeSnapshotParts(store, bucket, keys, cluster);
    if (stream.chain === '') {
      stream.seq = parts.seq;
      stream.chain = genesisChain(keys, cluster, stream.epoch, parts.seq);
      stream.base = { seq: stream.seq, chain: stream.chain };
    } else {
      try {
        await this.shipPending(stream, parts.seq);
      } catch (e) {
        if (!(e instanceof NeedSnapshot)) throw e;
      }
      if (stream.seq !== parts.seq) {
        // The log no longer covers the gap: the chain restarts here and replicas that are
        // behind resume from this snapshot.
        stream.seq = parts.seq;
        stream.chain = genesisChain(keys, cluster, stream.epoch, parts.seq);
        stream.recent = [];
      }
    }
    const header = {
      cluster,
      key: keys.id,
      epoch: stream.epoch,
      seq: parts.seq,
      chain: stream.chain,
      parts: parts.parts.length,
      entries: parts.entries,
      id: parts.id,
    };
    const index = sealSnapshotIndex(keys, header, parts.parts);
    const written = await this.putSnapshotIndex(snapshotIndexName(parts.seq, stream.epoch), index, {
      ...header,
      id: parts.id,
    });
    const previous = stream.snapshot;
    stream.snapshot = { seq: parts.seq, epoch: stream.epoch, chain: stream.chain, mac: written.mac };
    stream.snapshotId = written.id;
    this.snapshotWanted = false;
    this.sinceSnapshot = 0;
    this.o.log.info(
      {
        target: bucket.url,
        seq: parts.seq,
        entries: parts.entries,
        parts: parts.parts.length,
        ms: this.o.now() - started,
      },
      'replication snapshot written',
    );
    // Announce it before deleting what it replaces, so a reader always finds one or the other.
    await this.writeManifest(stream);
    if (previous) await this.prune(stream);
  }

  /**
   * Creates the index only if absent (If-None-Match). Only this epoch's holder writes names of
   * this epoch, so one already there is this server's own earlier snapshot at the same sequence
   * (a retried turn, a restart): it is kept and used if it is a valid index of the same point
   * of the stream, and replaced (If-Match on what was read) if it is not.
   */
  private async putSnapshotIndex(
    name: string,
    index: { bytes: Uint8Array; mac: string },
    header: { epoch: number; seq: number; chain: string; id: string },
  ): Promise<{ mac: string; id: string }> {
    const { bucket, keys, cluster } = this.o;
    try {
      await bucket.put(name, index.bytes, { ifNoneMatch: '*' });
      return { mac: index.mac, id: header.id };
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
    }
    const existing = await bucket.get(name);
    if (existing) {
      let opened: ReturnType<typeof openSnapshotIndex> | undefined;
      try {
        opened = openSnapshotIndex(keys, existing.body);
      } catch {
        opened = undefined;
      }
      const h = opened?.header;
      if (
        opened &&
        h &&
        h.cluster === cluster &&
        h.epoch === header.epoch &&
        h.seq === header.seq &&
        h.chain === header.chain
      )
        return { mac: opened.mac, id: h.id };
    }
    await bucket.put(name, index.bytes, existing ? { ifMatch: existing.etag } : { ifNoneMatch: '*' });
    return { mac: index.mac, id: header.id };
  }

  /** Deletes segments the retained snapshot covers, and older snapshots. */
  private async prune(stream: Stream): Promise<void> {
    const { bucket } = this.o;
    const snapshot = stream.snapshot!;
    for (let epoch = 1; epoch <= stream.epoch; epoch++) {
      let startAfter: string | undefined;
      for (;;) {
        const page = await bucket.list(segmentPrefix(epoch), startAfter ? { startAfter } : {});
        for (const { key } of page.objects) {
          const name = parseSegmentName(key);
          if (name && (epoch < stream.epoch || name.to <= snapshot.seq)) await bucket.delete(key);
        }
        if (!page.next) break;
        startAfter = page.next;
      }
    }
    stream.recent = stream.recent.filter(([, to]) => to > snapshot.seq);
    await pruneSnapshots(bucket, { seq: snapshot.seq, epoch: snapshot.epoch }, stream.snapshotId);
  }

  private async writeManifest(stream: Stream): Promise<void> {
    const { bucket, keys, cluster, node, leaseMs } = this.o;
    const start = this.o.now();
    const body = buildManifest({
      epoch: stream.epoch,
      holder: node,
      primary: this.o.primaryAddr(),
      issuedAt: start,
      leaseMs,
      base: stream.base,
      head: { seq: stream.seq, chain: stream.chain },
      recent: stream.recent,
      snapshot: stream.snapshot,
      identity: await this.o.identity(),
    });
    try {
      const { etag } = await bucket.put(
        MANIFEST,
        encodeManifest(keys, cluster, body),
        stream.etag ? { ifMatch: stream.etag } : { ifNoneMatch: '*' },
      );
      stream.etag = etag;
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
      const current = await bucket.get(MANIFEST);
      const seen = current ? openManifest(keys, cluster, current.body) : undefined;
      if (seen && seen.epoch === stream.epoch && seen.holder === node) {
        // Still ours: our own write whose answer was lost, or an older copy of ours put back
        // (a bucket-side rollback). Take its ETag and write again on the next turn.
        stream.etag = current!.etag;
        this.manifestDirty = true;
        throw new ReplicationError(
          'manifest_changed',
          `the manifest on ${bucket.url} was changed behind this server's back; rewriting it`,
        );
      } else {
        return this.fence(
          seen
            ? `the manifest on ${bucket.url} now names epoch ${seen.epoch} held by ${seen.primary || seen.holder}`
            : `the manifest on ${bucket.url} disappeared`,
        );
      }
    }
    this.lastManifestAt = start;
    this.manifestDirty = false;
    // Counted from before the request: the replica side waits until lease_until (+ skew).
    this.leaseValidUntil = leaseMs > 0 ? start + leaseMs : Infinity;
    this.status.lease_until = leaseMs > 0 ? timestamp(start + leaseMs) : null;
  }

  private fence(reason: string): never {
    this.stopped = true;
    this.leaseValidUntil = 0;
    this.o.onFenced(reason);
    throw new ReplicationError('fenced', reason);
  }
}

function tryOpen(keys: ReplicationKeys, bytes: Uint8Array) {
  try {
    return openObject(keys, KIND.segment, bytes, segmentHeader);
  } catch {
    return undefined;
  }
}

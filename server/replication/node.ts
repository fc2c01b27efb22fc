import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ServerConfig } from '../config.js';
import { CofferError } from '../errors.js';
import type { SealManager, UnsealedKeys } from '../keys/seal.js';
import type { Store, WriteGuard } from '../store/db.js';
import { AUDIT_SIGNING_KEY, MASTER_PREFIX, REPLICATION_KEY, SEAL_KEY } from '../store/keys.js';
import type { Bucket } from './bucket.js';
import { Follower } from './follower.js';
import {
  ReplicationError,
  fromB64,
  openManifest,
  readManifestUnverified,
  type ManifestBody,
  type ReplicationKeys,
} from './format.js';
import { VaultIdentity } from './identity.js';
import { ensureReplicationKeys, forgetKeys, unwrapReplicationKeys } from './keys.js';
import { fetchManifestObject, fetchVerifiedManifest } from './manifest.js';
import { registerReplicationMetrics } from './metrics.js';
import { openBucket } from './open.js';
import { takeOver, type TakenOver } from './promotion.js';
import { Shipper } from './shipper.js';
import { nodeId, readStream } from './state.js';
import type { ReplicationStatus as WireReplicationStatus } from '../../sdk/wire/types.js';
import { timestamp } from '../../sdk/wire/time.js';

export interface ReplicationSettings {
  replicateTo: string[];
  replicaOf?: string;
  pollMs: number;
  maxStalenessMs: number;
  /** 0 disables the lease (writes are then never blocked by an unreachable bucket; see README). */
  leaseMs: number;
  maxClockSkewMs: number;
  batchMs: number;
  snapshotEvery: number;
  segmentMaxRecords: number;
  segmentMaxBytes: number;
}

export type Role = 'primary' | 'replica' | 'standalone';

/** `GET /v1/sys/replication` (sdk/wire/types.ts); a replicating server always names its node. */
export type ReplicationStatus = WireReplicationStatus & { node: string };

/**
 * Where this server stands, as one value: no combination of flags can contradict another. A
 * replica follows (no follower while sealed); a primary ships (no shippers while sealed), holds a
 * lease once its shippers run, and is fenced for good once another server was promoted.
 */
type NodeState =
  | { role: 'standalone' }
  | { role: 'replica'; follower: Follower | undefined; promoting: boolean }
  | {
      role: 'primary';
      shippers: Shipper[];
      leaseRequired: boolean;
      /** A promoted primary acknowledges writes only after the old primary's lease ran out. */
      notBefore: number;
      fenced: string | undefined;
    };

/**
 * This server's part in replication, a facade over the follower or the shippers, the vault's
 * identity (identity.ts), promotion (promotion.ts) and metrics (metrics.ts): the write guard that
 * makes a replica read-only and fences a primary. Engines never see it; server/vault.ts wires
 * reloads of in-memory state through `onApplied`.
 */
export class Replication implements WriteGuard {
  private state: NodeState;
  private keys: ReplicationKeys | undefined;
  private cluster = '';
  private seal: SealManager | undefined;
  /** A seal and unseal of our own after key material changed on the primary: the hooks stand aside. */
  private reloading = false;
  /** The unseal in progress loads what the snapshot brings: no reload of keys meanwhile. */
  private inUnseal = false;
  private closed = false;
  private readonly applyListeners: ((keys: string[]) => Promise<void>)[] = [];
  private address = '';
  private readonly identity: VaultIdentity;

  private constructor(
    /** The role this server started in (`standalone`: replication not configured). */
    readonly configured: Role,
    private readonly settings: ReplicationSettings,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly node: string,
    private readonly targets: Bucket[],
    private readonly source: Bucket | undefined,
    private readonly now: () => number,
  ) {
    this.state =
      configured === 'replica'
        ? { role: 'replica', follower: undefined, promoting: false }
        : configured === 'primary'
          ? primaryState()
          : { role: 'standalone' };
    this.identity = new VaultIdentity(store, log, now);
  }

  get role(): Role {
    return this.state.role;
  }

  /**
   * Opens the buckets and decides the role. A replica with an empty data directory first copies
   * the vault's identity (seal configuration, wrapped master keys) from the manifest, so that
   * it can be unsealed with the primary's key file, shares or HSM key; nothing else is loaded
   * before the replication key has been unwrapped and verified.
   */
  static async open(
    settings: ReplicationSettings,
    store: Store,
    log: Logger,
    now: () => number = Date.now,
  ): Promise<Replication> {
    if (!isReplicated(settings)) return new Replication('standalone', settings, store, log, '', [], undefined, now);
    const node = await nodeId(store);
    const promoted = readStream(store)?.promoted === true;
    const role: Role = settings.replicaOf !== undefined && !promoted ? 'replica' : 'primary';
    const source = settings.replicaOf !== undefined ? await openBucket(settings.replicaOf) : undefined;
    const targets = await Promise.all(settings.replicateTo.map((u) => openBucket(u)));
    if (promoted && source && !targets.some((t) => t.url === source.url)) targets.unshift(source);
    const replication = new Replication(role, settings, store, log, node, targets, source, now);
    // A copy that was never confirmed by the authenticated manifest is discarded and redone.
    if (role === 'replica' && source && replication.identity.missing)
      await replication.identity.copyFrom(source, settings.pollMs, () => replication.closed);
    store.setWriteGuard(replication);
    return replication;
  }

  /**
   * Hooks into the seal: first of all at unseal (a replica loads its snapshot before engines read
   * the store), and once every engine is ready, the lease requirement and the shippers, so that
   * writes engines make while unsealing (first signing key, audit key) are not refused before the
   * first lease could be taken, and the first snapshot already holds them.
   */
  attach(seal: SealManager): void {
    this.seal = seal;
    seal.onUnseal((keys) => this.unsealedReplica(keys), 'storage');
    seal.onSeal(() => this.sealed());
    seal.onUnseal((keys) => this.unsealedPrimary(keys), 'serving');
  }

  /** Runs after a replica applied changes (the keys changed, or `*` after a snapshot). */
  onApplied(listener: (keys: string[]) => Promise<void>): void {
    this.applyListeners.push(listener);
  }

  setAddress(url: string): void {
    this.address = url;
  }

  // --- WriteGuard -------------------------------------------------------------------------

  beforeWrite(): void {
    this.checkWritable('');
  }

  /** The batch is durable already: the caller must learn that its write may have been applied. */
  beforeAck(): void {
    this.checkWritable(
      '; this write is durable on this server and may have been applied (and may still replicate): read before retrying',
    );
  }

  private checkWritable(applied: string): void {
    const state = this.state;
    if (state.role === 'replica') {
      const primary = state.follower?.primary || '';
      throw new CofferError(
        'read_only_replica',
        `this server is a read-only replica${primary ? `: write to the primary at ${primary}` : ''}`,
      );
    }
    if (state.role !== 'primary') return;
    if (state.fenced)
      throw new CofferError(
        'read_only_replica',
        `this server no longer is the primary (${state.fenced})${applied ? '; this write is durable on this server only and is not replicated' : ''}`,
      );
    if (!state.leaseRequired) return;
    const now = this.now();
    if (now < state.notBefore)
      throw new CofferError(
        'lease_expired',
        `promotion in progress: writes are accepted from ${new Date(state.notBefore).toISOString()}${applied}`,
      );
    const validUntil = Math.min(...state.shippers.map((s) => s.leaseValidUntil));
    if (!(now < validUntil))
      throw new CofferError(
        'lease_expired',
        `the replication lease could not be renewed (bucket unreachable?): writes are refused until it is${applied}`,
      );
  }

  /** True while a replica must refuse token-authenticated reads (stale, or loading). */
  refusesReads(): boolean {
    return this.state.role === 'replica' && (this.state.follower === undefined || this.state.follower.refusesReads());
  }

  /** Another server was promoted: this one refuses writes until it is rebuilt as a replica. */
  get fenced(): boolean {
    return this.state.role === 'primary' && this.state.fenced !== undefined;
  }

  // --- unseal / seal ----------------------------------------------------------------------

  private async unsealedReplica(keys: UnsealedKeys): Promise<void> {
    const state = this.state;
    if (this.reloading || this.closed || state.role !== 'replica') return;
    const source = this.requireSource();
    this.cluster = keys.clusterId;
    if (this.identity.unconfirmed) {
      try {
        const { keys: replicationKeys, manifest } = await this.replicaKeys(keys, source);
        this.keys = replicationKeys;
        await this.identity.confirm(manifest ?? (await fetchVerifiedManifest(source, replicationKeys, this.cluster)));
      } catch (e) {
        // Not confirmed by an authenticated manifest: nothing copied from the bucket stays.
        if (e instanceof ReplicationError) await this.identity.discard();
        throw e;
      }
    } else {
      this.keys = (await this.replicaKeys(keys, source)).keys;
    }
    const follower = this.newFollower(source, this.keys);
    this.inUnseal = true;
    try {
      if (follower.needsBootstrap) {
        this.log.info({ bucket: source.url }, 'replica bootstrap: loading the latest snapshot');
        try {
          await follower.bootstrap();
        } catch (e) {
          // A first bootstrap that fails refuses to start; a load interrupted later (the store
          // already holds a replicated state) is retried by polling, reads refused meanwhile.
          if (readStream(this.store) === undefined) throw e;
          this.log.warn(
            { err: (e as Error).message },
            'replica: reloading the snapshot failed; reads stay refused, retrying',
          );
        }
      }
      await follower
        .poll()
        .catch((e: Error) => this.log.warn({ err: e.message }, 'replica: first catch-up failed; polling on'));
    } finally {
      this.inUnseal = false;
    }
    state.follower = follower;
    follower.start();
  }

  private async unsealedPrimary(keys: UnsealedKeys): Promise<void> {
    const state = this.state;
    if (this.reloading || this.closed || state.role !== 'primary') return;
    this.cluster = keys.clusterId;
    this.keys = await ensureReplicationKeys(this.store, keys.provider, keys.clusterId);
    if (this.settings.leaseMs > 0) state.leaseRequired = true;
    if (!state.fenced) state.shippers = this.startShippers(this.keys);
  }

  private async sealed(): Promise<void> {
    if (this.reloading) return;
    const state = this.state;
    if (state.role === 'primary') {
      state.leaseRequired = false;
      const shippers = state.shippers;
      state.shippers = [];
      await Promise.all(shippers.map((s) => s.stop()));
    } else if (state.role === 'replica') {
      const follower = state.follower;
      state.follower = undefined;
      await follower?.stop();
    }
    forgetKeys(this.keys);
    this.keys = undefined;
  }

  /**
   * The replication key: from the local store once replicated, else from the manifest (which
   * must then verify under it; its verified body is returned too).
   */
  private async replicaKeys(
    keys: UnsealedKeys,
    source: Bucket,
  ): Promise<{ keys: ReplicationKeys; manifest?: ManifestBody }> {
    const local = this.store.get(REPLICATION_KEY);
    if (local) return { keys: await unwrapReplicationKeys(keys.provider, keys.clusterId, local) };
    const object = await fetchManifestObject(source);
    const { doc } = readManifestUnverified(object.body);
    if (doc.cluster !== keys.clusterId)
      throw new ReplicationError('other_vault', 'the bucket belongs to another vault (cluster id differs)');
    const replicationKeys = await unwrapReplicationKeys(keys.provider, keys.clusterId, fromB64(doc.key.wrapped));
    try {
      return { keys: replicationKeys, manifest: openManifest(replicationKeys, keys.clusterId, object.body) };
    } catch (e) {
      forgetKeys(replicationKeys);
      throw e;
    }
  }

  private newFollower(source: Bucket, keys: ReplicationKeys): Follower {
    return new Follower({
      store: this.store,
      bucket: source,
      keys,
      cluster: this.cluster,
      log: this.log,
      now: this.now,
      pollMs: this.settings.pollMs,
      maxStalenessMs: this.settings.maxStalenessMs,
      onApplied: (changed) => this.applied(changed),
    });
  }

  private startShippers(
    keys: ReplicationKeys,
    adopt?: { bucket: Bucket; etag: string; body: ManifestBody },
  ): Shipper[] {
    const epoch = adopt?.body.epoch ?? readStream(this.store)?.epoch ?? 1;
    const shippers = this.targets.map(
      (bucket) =>
        new Shipper({
          store: this.store,
          bucket,
          keys,
          cluster: this.cluster,
          node: this.node,
          epoch,
          log: this.log,
          now: this.now,
          primaryAddr: () => this.address,
          identity: () => this.identity.forManifest(),
          onFenced: (reason) => this.fence(reason),
          batchMs: this.settings.batchMs,
          leaseMs: this.settings.leaseMs,
          snapshotEvery: this.settings.snapshotEvery,
          segmentMaxRecords: this.settings.segmentMaxRecords,
          segmentMaxBytes: this.settings.segmentMaxBytes,
          ...(adopt && adopt.bucket === bucket ? { adopt: { etag: adopt.etag, body: adopt.body } } : {}),
        }),
    );
    for (const s of shippers) s.start();
    return shippers;
  }

  /** Reloads what other components keep in memory; re-opens keys when the master key changed. */
  private async applied(keys: string[]): Promise<void> {
    for (const listener of this.applyListeners) await listener(keys);
    const keyMaterial = keys.some(
      (k) => k === '*' || k === SEAL_KEY || k.startsWith(MASTER_PREFIX) || k === AUDIT_SIGNING_KEY,
    );
    if (!keyMaterial || !this.seal || this.seal.sealed || this.inUnseal) return;
    if (!this.seal.autoUnseal) {
      this.log.warn('replica: key material changed on the primary; seal and unseal this replica to load it');
      return;
    }
    this.reloading = true;
    try {
      await this.seal.seal();
      await this.seal.autoUnsealNow();
    } finally {
      this.reloading = false;
    }
  }

  private fence(reason: string): void {
    const state = this.state;
    if (state.role !== 'primary' || state.fenced) return;
    state.fenced = reason;
    this.log.error({ reason }, 'replication: this server was fenced and refuses writes from now on');
    for (const s of state.shippers) void s.stop();
  }

  // --- promotion --------------------------------------------------------------------------

  /**
   * Makes this replica the primary of a new epoch (promotion.ts). Writes start only once the old
   * primary's lease has run out (plus the allowed clock skew): it stops acknowledging by then. A
   * failed promotion leaves a working replica, and the same server may try again (it reuses its
   * claim).
   */
  async promote(): Promise<{ epoch: number; writes_from: number }> {
    const state = this.state;
    if (state.role !== 'replica') throw new CofferError('invalid_request', 'only a replica can be promoted');
    const { follower } = state;
    if (!follower || !this.keys) throw new CofferError('sealed', 'unseal the replica before promoting it');
    if (state.promoting)
      throw new CofferError('conflict', 'a promotion is already in progress: watch it with coffer replica status');
    const source = this.requireSource();
    const keys = this.keys;
    state.promoting = true;
    let taken: TakenOver;
    try {
      await follower.stop();
      taken = await takeOver(
        {
          store: this.store,
          source,
          keys,
          cluster: this.cluster,
          node: this.node,
          address: this.address,
          leaseMs: this.settings.leaseMs,
          identity: this.identity,
          log: this.log,
          now: this.now,
        },
        follower,
      );
    } catch (e) {
      state.promoting = false;
      this.log.warn(
        { err: (e as Error).message },
        'replication: promotion failed; still a replica, following the primary',
      );
      if (!this.closed) follower.start();
      throw e;
    }
    if (!this.targets.includes(source)) this.targets.unshift(source);
    const notBefore = taken.oldLeaseUntil > 0 ? taken.oldLeaseUntil + this.settings.maxClockSkewMs : 0;
    const primary = primaryState(notBefore, this.settings.leaseMs > 0);
    this.state = primary;
    primary.shippers = this.startShippers(keys, { bucket: source, etag: taken.etag, body: taken.body });
    this.log.warn(
      { epoch: taken.epoch, seq: taken.body.head.seq, writes_from: new Date(notBefore).toISOString() },
      'replication: promoted to primary',
    );
    const wait = notBefore - this.now();
    if (wait > 0) await sleep(wait);
    return { epoch: taken.epoch, writes_from: notBefore };
  }

  /**
   * Waits (bounded) until a primary holds its lease on every target, so a server that starts
   * listening can take writes at once; a target that stays unreachable only delays the start.
   */
  async waitForLease(ms: number): Promise<void> {
    const state = this.state;
    if (state.role !== 'primary' || !state.leaseRequired) return;
    const deadline = this.now() + ms;
    while (this.now() < deadline && !state.fenced && !state.shippers.every((s) => s.leaseValidUntil > this.now()))
      await sleep(20);
  }

  /** Polls the bucket now (tests, and `coffer replica status --refresh`); never throws. */
  async pollNow(): Promise<void> {
    if (this.state.role === 'replica') await this.state.follower?.step();
  }

  /** Asks every target for a fresh snapshot (admin). */
  requestSnapshot(): void {
    if (this.state.role !== 'primary') throw new CofferError('invalid_request', 'only the primary takes snapshots');
    for (const s of this.state.shippers) s.requestSnapshot();
  }

  status(): ReplicationStatus {
    const state = this.state;
    const replica = state.role === 'replica' ? (state.follower?.status() ?? null) : null;
    const shippers = state.role === 'primary' ? state.shippers : [];
    const notBefore = state.role === 'primary' ? state.notBefore : 0;
    return {
      role: state.role,
      epoch: replica?.epoch ?? shippers[0]?.status.epoch ?? readStream(this.store)?.epoch ?? 1,
      last_seq: this.store.lastSeq,
      node: this.node,
      targets: shippers.map((s) => ({ ...s.status })),
      primary: state.role === 'replica' ? (replica?.primary ?? '') : this.address,
      lag_seq: replica?.lag_seq ?? 0,
      lag_ms: replica?.lag_ms ?? 0,
      stale: this.refusesReads(),
      fenced: state.role === 'primary' ? (state.fenced ?? null) : null,
      writes_from: notBefore > this.now() ? timestamp(notBefore) : null,
      replica,
    };
  }

  registerMetrics(registry: Registry): void {
    if (this.configured === 'standalone') return;
    registerReplicationMetrics(registry, {
      lag: () => {
        const { lag_seq, lag_ms } = this.status();
        return { seq: lag_seq, ms: lag_ms };
      },
      refusesReads: () => this.refusesReads(),
      targets: () => (this.state.role === 'primary' ? this.state.shippers.map((s) => s.status) : []),
      fenced: () => this.fenced,
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const state = this.state;
    if (state.role === 'primary') await Promise.all(state.shippers.map((s) => s.stop()));
    if (state.role === 'replica') await state.follower?.stop();
    forgetKeys(this.keys);
    for (const b of new Set([...this.targets, ...(this.source ? [this.source] : [])])) b.close();
  }

  private requireSource(): Bucket {
    if (!this.source) throw new CofferError('internal', 'a replica without a source bucket');
    return this.source;
  }
}

function primaryState(notBefore = 0, leaseRequired = false): Extract<NodeState, { role: 'primary' }> {
  return { role: 'primary', shippers: [], leaseRequired, notBefore, fenced: undefined };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether this server ships or follows; without either it is standalone for its whole run. */
export function isReplicated(settings: ReplicationSettings): boolean {
  return settings.replicateTo.length > 0 || settings.replicaOf !== undefined;
}

/** Replication settings from the server configuration (seconds become milliseconds). */
export function settingsFromConfig(config: ServerConfig): ReplicationSettings {
  return {
    replicateTo: config.replicate_to,
    ...(config.replica_of !== undefined ? { replicaOf: config.replica_of } : {}),
    pollMs: Math.round(config.poll_interval * 1000),
    maxStalenessMs: Math.round(config.max_staleness_s * 1000),
    leaseMs: Math.round(config.replication_lease_s * 1000),
    maxClockSkewMs: config.replication_clock_skew_ms,
    batchMs: config.replication_batch_ms,
    snapshotEvery: config.snapshot_every,
    segmentMaxRecords: 2000,
    segmentMaxBytes: 4 << 20,
  };
}

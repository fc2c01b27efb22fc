import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { Gauge } from 'prom-client';
import { z } from 'zod';
import type { ServerConfig } from '../config.js';
import { CofferError } from '../errors.js';
import type { SealManager, UnsealedKeys } from '../keys/seal.js';
import type { Store, WriteGuard } from '../store/db.js';
import { AUDIT_SIGNING_KEY, MASTER_PREFIX, REPLICATION_KEY, REPL_IDENTITY_PENDING_KEY as IDENTITY_PENDING_KEY, SEAL_KEY } from '../store/keys.js';
import { PreconditionFailed, type Bucket } from './bucket.js';
import { openBucket } from './open.js';
import { Follower, type FollowerStatus } from './follower.js';
import { MANIFEST, ReplicationError, encodeManifest, epochClaim, fromB64, isIdentityKey, openManifest, readManifestUnverified, type ManifestBody, type ReplicationKeys } from './format.js';
import { ensureReplicationKeys, forgetKeys, unwrapReplicationKeys } from './keys.js';
import { Shipper, type TargetStatus } from './shipper.js';
import { nodeId, readStream, streamOp } from './state.js';
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
 * This server's part in replication: its role (primary, replica, or neither), the write guard
 * that makes a replica read-only and fences a primary, the shippers or the follower, and
 * promotion. Engines never see it; main.ts wires reloads of in-memory state through `onApplied`.
 */
export class Replication implements WriteGuard {
  private fencedReason: string | undefined;
  private shippers: Shipper[] = [];
  private follower: Follower | undefined;
  private keys: ReplicationKeys | undefined;
  private cluster = '';
  private seal: SealManager | undefined;
  private leaseRequired = false;
  /** A promoted primary acknowledges writes only after the old primary's lease ran out. */
  private notBefore = 0;
  private reloading = false;
  private inUnseal = false;
  private closed = false;
  private promoting = false;
  private readonly applyListeners: ((keys: string[]) => Promise<void>)[] = [];
  private address = '';

  private constructor(
    readonly role0: Role,
    private readonly settings: ReplicationSettings,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly node: string,
    private readonly targets: Bucket[],
    private readonly source: Bucket | undefined,
    private readonly now: () => number,
  ) {
    this.role = role0;
  }

  role: Role;

  /**
   * Opens the buckets and decides the role. A replica with an empty data directory first copies
   * the vault's identity (seal configuration, wrapped master keys) from the manifest, so that
   * it can be unsealed with the primary's key file, shares or HSM key; nothing else is loaded
   * before the replication key has been unwrapped and verified.
   */
  static async open(settings: ReplicationSettings, store: Store, log: Logger, now: () => number = Date.now): Promise<Replication> {
    const configured = settings.replicateTo.length > 0 || settings.replicaOf !== undefined;
    if (!configured) return new Replication('standalone', settings, store, log, '', [], undefined, now);
    const node = await nodeId(store);
    const promoted = readStream(store)?.promoted === true;
    const role: Role = settings.replicaOf !== undefined && !promoted ? 'replica' : 'primary';
    const source = settings.replicaOf !== undefined ? await openBucket(settings.replicaOf) : undefined;
    const targets = await Promise.all(settings.replicateTo.map((u) => openBucket(u)));
    if (promoted && source && !targets.some((t) => t.url === source.url)) targets.unshift(source);
    const replication = new Replication(role, settings, store, log, node, targets, source, now);
    // A copy that was never confirmed by the authenticated manifest is discarded and redone.
    if (role === 'replica' && (!store.get(SEAL_KEY) || store.get(IDENTITY_PENDING_KEY))) await replication.copyIdentity();
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
    seal.onUnseal((keys) => this.unsealed(keys), 'storage');
    seal.onSeal(() => this.sealed());
    seal.onUnseal(async (keys) => {
      if (this.reloading || this.closed || this.role !== 'primary') return;
      this.cluster = keys.clusterId;
      this.keys = await ensureReplicationKeys(this.store, keys.provider, keys.clusterId);
      if (this.settings.leaseMs > 0) this.leaseRequired = true;
      if (!this.fencedReason) this.startShippers();
    }, 'serving');
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
    this.checkWritable('; this write is durable on this server and may have been applied (and may still replicate): read before retrying');
  }

  private checkWritable(applied: string): void {
    if (this.role === 'replica') {
      const primary = this.follower?.primary || '';
      throw new CofferError('read_only_replica', `this server is a read-only replica${primary ? `: write to the primary at ${primary}` : ''}`);
    }
    if (this.fencedReason) throw new CofferError('read_only_replica', `this server no longer is the primary (${this.fencedReason})${applied ? '; this write is durable on this server only and is not replicated' : ''}`);
    if (this.role !== 'primary' || !this.leaseRequired) return;
    const now = this.now();
    if (now < this.notBefore) throw new CofferError('lease_expired', `promotion in progress: writes are accepted from ${new Date(this.notBefore).toISOString()}${applied}`);
    const validUntil = Math.min(...this.shippers.map((s) => s.leaseValidUntil));
    if (!(now < validUntil)) throw new CofferError('lease_expired', `the replication lease could not be renewed (bucket unreachable?): writes are refused until it is${applied}`);
  }

  /** True while a replica must refuse token-authenticated reads (stale, or loading). */
  refusesReads(): boolean {
    return this.role === 'replica' && (this.follower === undefined || this.follower.refusesReads());
  }

  // --- unseal / seal ----------------------------------------------------------------------

  private async unsealed(keys: UnsealedKeys): Promise<void> {
    if (this.reloading || this.closed || this.role !== 'replica') return;
    this.cluster = keys.clusterId;
    if (this.store.get(IDENTITY_PENDING_KEY)) {
      try {
        const { keys: replicationKeys, manifest } = await this.replicaKeys(keys);
        this.keys = replicationKeys;
        await this.confirmIdentity(manifest ?? (await this.verifiedManifest()));
      } catch (e) {
        // Not confirmed by an authenticated manifest: nothing copied from the bucket stays.
        if (e instanceof ReplicationError) await this.discardIdentity();
        throw e;
      }
    } else {
      this.keys = (await this.replicaKeys(keys)).keys;
    }
    const follower = this.newFollower();
    this.inUnseal = true; // the unseal in progress loads what the snapshot brings
    try {
      if (follower.needsBootstrap) {
        this.log.info({ bucket: this.source!.url }, 'replica bootstrap: loading the latest snapshot');
        try {
          await follower.bootstrap();
        } catch (e) {
          // A first bootstrap that fails refuses to start; a load interrupted later (the store
          // already holds a replicated state) is retried by polling, reads refused meanwhile.
          if (readStream(this.store) === undefined) throw e;
          this.log.warn({ err: (e as Error).message }, 'replica: reloading the snapshot failed; reads stay refused, retrying');
        }
      }
      await follower.poll().catch((e: Error) => this.log.warn({ err: e.message }, 'replica: first catch-up failed; polling on'));
    } finally {
      this.inUnseal = false;
    }
    this.follower = follower;
    follower.start();
  }

  private async sealed(): Promise<void> {
    if (this.reloading) return;
    this.leaseRequired = false;
    await Promise.all(this.shippers.map((s) => s.stop()));
    this.shippers = [];
    await this.follower?.stop();
    this.follower = undefined;
    forgetKeys(this.keys);
    this.keys = undefined;
  }

  /**
   * The replication key: from the local store once replicated, else from the manifest (which
   * must then verify under it; its verified body is returned too).
   */
  private async replicaKeys(keys: UnsealedKeys): Promise<{ keys: ReplicationKeys; manifest?: ManifestBody }> {
    const local = this.store.get(REPLICATION_KEY);
    if (local) return { keys: await unwrapReplicationKeys(keys.provider, keys.clusterId, local) };
    const object = await this.source!.get(MANIFEST);
    if (!object) throw new ReplicationError('no_manifest', `the bucket ${this.source!.url} holds no manifest`);
    const { doc } = readManifestUnverified(object.body);
    if (doc.cluster !== keys.clusterId) throw new ReplicationError('other_vault', 'the bucket belongs to another vault (cluster id differs)');
    const replicationKeys = await unwrapReplicationKeys(keys.provider, keys.clusterId, fromB64(doc.key.wrapped));
    try {
      return { keys: replicationKeys, manifest: openManifest(replicationKeys, keys.clusterId, object.body) };
    } catch (e) {
      forgetKeys(replicationKeys);
      throw e;
    }
  }

  private async verifiedManifest(): Promise<ManifestBody> {
    const object = await this.source!.get(MANIFEST);
    if (!object) throw new ReplicationError('no_manifest', `the bucket ${this.source!.url} holds no manifest`);
    return openManifest(this.keys!, this.cluster, object.body);
  }

  /**
   * The identity a fresh replica copied from the unverified manifest must be exactly the one the
   * authenticated manifest carries, byte for byte; otherwise the replica refuses to go on and
   * the caller wipes the copy (a bucket attacker must not get anything into this store).
   */
  private async confirmIdentity(manifest: ManifestBody): Promise<void> {
    const copied = await this.storedIdentity();
    const verified = Object.entries(manifest.identity);
    const same =
      verified.length === copied.size &&
      verified.every(([key, value]) => {
        const mine = copied.get(key);
        return isIdentityKey(key) && mine !== undefined && Buffer.compare(Buffer.from(mine), Buffer.from(fromB64(value))) === 0;
      });
    if (!same) {
      throw new ReplicationError(
        'identity_mismatch',
        'the vault identity (seal configuration, wrapped master keys) copied from the bucket differs from the authenticated manifest: the bucket was tampered with, or the primary changed its keys meanwhile. The copy was discarded; restart this replica to copy it again',
      );
    }
    await this.store.writeRaw([{ type: 'del', key: IDENTITY_PENDING_KEY }]);
    this.log.info('replica: the copied vault identity matches the authenticated manifest');
  }

  /** The seal configuration and wrapped master keys in the local store. */
  private async storedIdentity(): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    const seal = this.store.get(SEAL_KEY);
    if (seal) out.set(SEAL_KEY, seal);
    for (const [key, value] of await this.store.scanPrefix(MASTER_PREFIX)) out.set(key, value);
    return out;
  }

  private async discardIdentity(): Promise<void> {
    const keys = [...(await this.storedIdentity()).keys()];
    await this.store.writeRaw([...keys.map((key) => ({ type: 'del' as const, key })), { type: 'del', key: IDENTITY_PENDING_KEY }]);
  }

  private newFollower(): Follower {
    return new Follower({
      store: this.store,
      bucket: this.source!,
      keys: this.keys!,
      cluster: this.cluster,
      log: this.log,
      now: this.now,
      pollMs: this.settings.pollMs,
      maxStalenessMs: this.settings.maxStalenessMs,
      onApplied: (keys) => this.applied(keys),
    });
  }

  private startShippers(adopt?: { bucket: Bucket; etag: string; body: ManifestBody }): void {
    const epoch = adopt?.body.epoch ?? readStream(this.store)?.epoch ?? 1;
    this.shippers = this.targets.map(
      (bucket) =>
        new Shipper({
          store: this.store,
          bucket,
          keys: this.keys!,
          cluster: this.cluster,
          node: this.node,
          epoch,
          log: this.log,
          now: this.now,
          primaryAddr: () => this.address,
          identity: () => this.identity(),
          onFenced: (reason) => this.fence(reason),
          batchMs: this.settings.batchMs,
          leaseMs: this.settings.leaseMs,
          snapshotEvery: this.settings.snapshotEvery,
          segmentMaxRecords: this.settings.segmentMaxRecords,
          segmentMaxBytes: this.settings.segmentMaxBytes,
          ...(adopt && adopt.bucket === bucket ? { adopt: { etag: adopt.etag, body: adopt.body } } : {}),
        }),
    );
    for (const s of this.shippers) s.start();
  }

  /** Seal configuration and wrapped master keys: what a fresh replica needs to unseal. */
  private async identity(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [key, value] of await this.storedIdentity()) if (isIdentityKey(key)) out[key] = Buffer.from(value).toString('base64');
    return out;
  }

  private async copyIdentity(): Promise<void> {
    const bucket = this.source!;
    let waitingLogged = 0;
    for (;;) {
      let object: { body: Uint8Array } | undefined;
      try {
        object = await bucket.get(MANIFEST);
      } catch (e) {
        this.log.warn({ bucket: bucket.url, err: (e as Error).message }, 'replica: bucket unreachable; retrying');
      }
      if (object) {
        // Unverified (this replica cannot unseal yet): only the seal configuration and the
        // wrapped master keys are accepted (the schema refuses any other key), and they stay
        // marked as unverified until the authenticated manifest confirms them after unseal.
        let body: ManifestBody;
        try {
          ({ body } = readManifestUnverified(object.body));
        } catch (e) {
          throw new ReplicationError((e as ReplicationError).code ?? 'bad_format', `refusing to copy the vault identity from ${bucket.url}: ${(e as Error).message}`);
        }
        const entries = Object.entries(body.identity);
        const foreign = entries.find(([key]) => !isIdentityKey(key));
        if (foreign) throw new ReplicationError('bad_format', `the manifest's identity holds ${JSON.stringify(foreign[0])}, which is not identity`);
        if (!body.identity[SEAL_KEY]) throw new ReplicationError('bad_format', 'the manifest carries no seal configuration');
        await this.discardIdentity(); // a copy from an earlier start that was never confirmed
        await this.store.writeRaw([
          ...entries.map(([key, value]) => ({ type: 'put' as const, key, value: fromB64(value) })),
          { type: 'put', key: IDENTITY_PENDING_KEY, value: Buffer.from(String(this.now())) },
        ]);
        this.log.info({ bucket: bucket.url }, 'replica: copied the vault identity from the bucket; unseal with the primary’s key to load the snapshot');
        return;
      }
      if (this.now() - waitingLogged > 10_000) {
        waitingLogged = this.now();
        this.log.info({ bucket: bucket.url }, 'replica: waiting for the primary’s first manifest');
      }
      await sleep(this.settings.pollMs);
      if (this.closed) throw new CofferError('internal', 'replication closed');
    }
  }

  /** Reloads what other components keep in memory; re-opens keys when the master key changed. */
  private async applied(keys: string[]): Promise<void> {
    for (const listener of this.applyListeners) await listener(keys);
    const keyMaterial = keys.some((k) => k === '*' || k === SEAL_KEY || k.startsWith(MASTER_PREFIX) || k === AUDIT_SIGNING_KEY);
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
    if (this.fencedReason) return;
    this.fencedReason = reason;
    this.log.error({ reason }, 'replication: this server was fenced and refuses writes from now on');
    for (const s of this.shippers) void s.stop();
  }

  /** Another server was promoted: this one refuses writes until it is rebuilt as a replica. */
  get fenced(): boolean {
    return this.fencedReason !== undefined;
  }

  // --- promotion --------------------------------------------------------------------------

  /**
   * Makes this replica the primary of a new epoch: applies everything the bucket's manifest
   * announces (writes the old primary already shipped are never dropped, and promotion is
   * refused unless this replica stands exactly at the head), claims the epoch with an exclusive
   * create, then swaps the manifest with If-Match on the ETag it verified, so two promotions (or
   * a renewal by the old primary) cannot both win. Writes start only once the old primary's
   * lease has run out (plus the allowed clock skew): it stops acknowledging by then. A failed
   * promotion leaves a working replica, and the same server may try again (it reuses its claim).
   */
  async promote(): Promise<{ epoch: number; writes_from: number }> {
    if (this.role !== 'replica') throw new CofferError('invalid_request', 'only a replica can be promoted');
    if (!this.follower || !this.keys) throw new CofferError('sealed', 'unseal the replica before promoting it');
    if (this.promoting) throw new CofferError('conflict', 'a promotion is already in progress: watch it with coffer replica status');
    this.promoting = true;
    const follower = this.follower;
    let promoted = false;
    try {
      await follower.stop();
      const source = this.source!;
      let { object, current } = await this.caughtUp(follower);
      const epoch = current.epoch + 1;
      await this.claimEpoch(epoch);
      let body: ManifestBody;
      let etag: string;
      for (let attempt = 0; ; attempt++) {
        const applied = follower.applied;
        const now = this.now();
        body = {
          epoch,
          holder: this.node,
          primary: this.address,
          issued_at: now,
          lease_until: this.settings.leaseMs > 0 ? now + this.settings.leaseMs : 0,
          base: { seq: applied.seq, chain: applied.chain },
          head: { seq: applied.seq, chain: applied.chain },
          recent: [],
          snapshot: current.snapshot,
          identity: await this.identity(),
        };
        try {
          ({ etag } = await source.put(MANIFEST, encodeManifest(this.keys, this.cluster, body), { ifMatch: object.etag }));
          break;
        } catch (e) {
          if (!(e instanceof PreconditionFailed) || attempt >= 5) throw e;
          // The old primary renewed its lease (and may have shipped more) between our read and
          // write: we hold the epoch claim, so catch up again, check again, and retry.
          ({ object, current } = await this.caughtUp(follower));
          if (current.epoch + 1 !== epoch) throw new CofferError('conflict', `promotion refused: the bucket moved to epoch ${current.epoch} during promotion`);
        }
      }
      const applied = follower.applied;
      await this.store.writeRaw([streamOp({ epoch, seq: applied.seq, chain: applied.chain, promoted: true })]);
      promoted = true;
      this.follower = undefined;
      this.role = 'primary';
      this.notBefore = current.lease_until > 0 ? current.lease_until + this.settings.maxClockSkewMs : 0;
      if (!this.targets.includes(source)) this.targets.unshift(source);
      this.leaseRequired = this.settings.leaseMs > 0;
      this.startShippers({ bucket: source, etag, body });
      this.log.warn({ epoch, seq: applied.seq, writes_from: new Date(this.notBefore).toISOString() }, 'replication: promoted to primary');
      const wait = this.notBefore - this.now();
      if (wait > 0) await sleep(wait);
      return { epoch, writes_from: this.notBefore };
    } catch (e) {
      if (!promoted) {
        this.log.warn({ err: (e as Error).message }, 'replication: promotion failed; still a replica, following the primary');
        if (!this.closed) follower.start();
      }
      throw e;
    } finally {
      this.promoting = false;
    }
  }

  /**
   * Applies everything the current manifest announces (the follower is stopped), then reads the
   * manifest promotion will replace and requires this replica to stand exactly at its head:
   * same epoch, sequence and chain value. Tries a few times when the primary keeps shipping.
   */
  private async caughtUp(follower: Follower): Promise<{ object: { body: Uint8Array; etag: string }; current: ManifestBody }> {
    const source = this.source!;
    let reason = '';
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await follower.catchUp();
      } catch (e) {
        throw new CofferError('read_only_replica', `promotion refused: this replica cannot apply everything the primary shipped (${(e as Error).message}); it would drop acknowledged writes`);
      }
      const object = await source.get(MANIFEST);
      if (!object) throw new CofferError('read_only_replica', 'promotion refused: the bucket holds no manifest');
      const current = openManifest(this.keys!, this.cluster, object.body);
      const applied = follower.applied;
      if (current.epoch === applied.epoch && current.head.seq === applied.seq && current.head.chain === applied.chain) return { object, current };
      reason = `this replica applied ${applied.seq} (epoch ${applied.epoch}) but the bucket's head is ${current.head.seq} (epoch ${current.epoch})`;
    }
    throw new CofferError('read_only_replica', `promotion refused: ${reason}; the primary is still shipping: stop it or retry`);
  }

  /** Claims `epoch` with an exclusive create; a claim this server made before (a failed attempt) is its own. */
  private async claimEpoch(epoch: number): Promise<void> {
    const source = this.source!;
    try {
      await source.put(epochClaim(epoch), Buffer.from(JSON.stringify({ node: this.node, at: this.now() })), { ifNoneMatch: '*' });
    } catch (e) {
      if (!(e instanceof PreconditionFailed)) throw e;
      const existing = await source.get(epochClaim(epoch));
      let holder: string | undefined;
      try {
        holder = existing ? epochClaimBody.parse(JSON.parse(Buffer.from(existing.body).toString('utf8'))).node : undefined;
      } catch {
        holder = undefined; // unreadable: not ours
      }
      if (holder !== this.node) throw new CofferError('conflict', `another server claimed epoch ${epoch} first`);
      this.log.info({ epoch }, 'promotion: reusing this server\'s own claim of the epoch from an earlier attempt');
    }
  }

  /**
   * Waits (bounded) until a primary holds its lease on every target, so a server that starts
   * listening can take writes at once; a target that stays unreachable only delays the start.
   */
  async waitForLease(ms: number): Promise<void> {
    if (this.role !== 'primary' || !this.leaseRequired) return;
    const deadline = this.now() + ms;
    while (this.now() < deadline && !this.fencedReason && !this.shippers.every((s) => s.leaseValidUntil > this.now())) await sleep(20);
  }

  /** Polls the bucket now (tests, and `coffer replica status --refresh`); never throws. */
  async pollNow(): Promise<void> {
    await this.follower?.step();
  }

  /** Asks every target for a fresh snapshot (admin). */
  requestSnapshot(): void {
    if (this.role !== 'primary') throw new CofferError('invalid_request', 'only the primary takes snapshots');
    for (const s of this.shippers) s.requestSnapshot();
  }

  status(): ReplicationStatus {
    const replica = this.follower?.status() ?? null;
    const stream = readStream(this.store);
    return {
      role: this.role,
      epoch: replica?.epoch ?? this.shippers[0]?.status.epoch ?? stream?.epoch ?? 1,
      last_seq: this.store.lastSeq,
      node: this.node,
      targets: this.shippers.map((s) => ({ ...s.status })),
      primary: this.role === 'replica' ? (replica?.primary ?? '') : this.address,
      lag_seq: replica?.lag_seq ?? 0,
      lag_ms: replica?.lag_ms ?? 0,
      stale: this.role === 'replica' ? this.refusesReads() : false,
      fenced: this.fencedReason ?? null,
      writes_from: this.notBefore > this.now() ? timestamp(this.notBefore) : null,
      replica,
    };
  }

  registerMetrics(registry: Registry): void {
    if (this.role0 === 'standalone') return;
    const self = this;
    new Gauge({ name: 'coffer_replication_lag_records', help: 'Records the replica has not applied yet', registers: [registry], collect() { this.set(self.status().lag_seq); } });
    new Gauge({ name: 'coffer_replication_lag_ms', help: 'How long the replica has been behind the head (ms)', registers: [registry], collect() { this.set(self.status().lag_ms); } });
    new Gauge({ name: 'coffer_replication_stale', help: '1 while the replica refuses reads as stale', registers: [registry], collect() { this.set(self.refusesReads() ? 1 : 0); } });
    new Gauge({
      name: 'coffer_replication_shipped_seq',
      help: 'Last sequence shipped, per target',
      labelNames: ['target'],
      registers: [registry],
      collect() {
        for (const t of self.shippers) this.set({ target: t.status.url }, t.status.last_shipped_seq);
      },
    });
    new Gauge({ name: 'coffer_replication_fenced', help: '1 once this server was fenced', registers: [registry], collect() { this.set(self.fencedReason ? 1 : 0); } });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.shippers.map((s) => s.stop()));
    await this.follower?.stop();
    forgetKeys(this.keys);
    for (const b of new Set([...this.targets, ...(this.source ? [this.source] : [])])) b.close();
  }
}

/** An epoch claim object in the bucket (unauthenticated: only compared with this server's node id). */
const epochClaimBody = z.object({ node: z.string() });

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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

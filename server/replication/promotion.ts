import type { Logger } from 'pino';
import { z } from 'zod';
import { CofferError } from '../errors.js';
import type { Store } from '../store/db.js';
import { PreconditionFailed, type Bucket } from './bucket.js';
import type { Follower } from './follower.js';
import {
  MANIFEST,
  encodeManifest,
  epochClaim,
  openManifest,
  type ManifestBody,
  type ReplicationKeys,
} from './format.js';
import type { VaultIdentity } from './identity.js';
import { buildManifest } from './manifest.js';
import { streamOp } from './state.js';

export interface PromotionContext {
  store: Store;
  /** The bucket this replica follows, whose manifest promotion swaps. */
  source: Bucket;
  keys: ReplicationKeys;
  cluster: string;
  node: string;
  address: string;
  leaseMs: number;
  identity: VaultIdentity;
  log: Logger;
  now: () => number;
}

export interface TakenOver {
  epoch: number;
  /** The manifest this server wrote, and its ETag: the shipper on `source` adopts it. */
  etag: string;
  body: ManifestBody;
  /** The old primary's lease (0: none): writes wait until it ran out plus the allowed skew. */
  oldLeaseUntil: number;
}

/**
 * Makes this replica the primary of a new epoch in the bucket (the follower is stopped): applies
 * everything the manifest announces (writes the old primary already shipped are never dropped,
 * and promotion is refused unless this replica stands exactly at the head), claims the epoch with
 * an exclusive create, then swaps the manifest with If-Match on the ETag it verified, so two
 * promotions (or a renewal by the old primary) cannot both win. Ends by recording the new epoch
 * as promoted in the local store, so the server stays primary across restarts.
 */
export async function takeOver(ctx: PromotionContext, follower: Follower): Promise<TakenOver> {
  let { object, current } = await caughtUp(ctx, follower);
  const epoch = current.epoch + 1;
  await claimEpoch(ctx, epoch);
  let body: ManifestBody;
  let etag: string;
  for (let attempt = 0; ; attempt++) {
    const applied = follower.applied;
    body = buildManifest({
      epoch,
      holder: ctx.node,
      primary: ctx.address,
      issuedAt: ctx.now(),
      leaseMs: ctx.leaseMs,
      base: { seq: applied.seq, chain: applied.chain },
      head: { seq: applied.seq, chain: applied.chain },
      recent: [],
      snapshot: current.snapshot,
      identity: await ctx.identity.forManifest(),
    });
    try {
      ({ etag } = await ctx.source.put(MANIFEST, encodeManifest(ctx.keys, ctx.cluster, body), {
        ifMatch: object.etag,
      }));
      break;
    } catch (e) {
      if (!(e instanceof PreconditionFailed) || attempt >= 5) throw e;
      // The old primary renewed its lease (and may have shipped more) between our read and
      // write: we hold the epoch claim, so catch up again, check again, and retry.
      ({ object, current } = await caughtUp(ctx, follower));
      if (current.epoch + 1 !== epoch)
        throw new CofferError(
          'conflict',
          `promotion refused: the bucket moved to epoch ${current.epoch} during promotion`,
        );
    }
  }
  const applied = follower.applied;
  await ctx.store.writeRaw([streamOp({ epoch, seq: applied.seq, chain: applied.chain, promoted: true })]);
  return { epoch, etag, body, oldLeaseUntil: current.lease_until };
}

/**
 * Applies everything the current manifest announces, then reads the manifest promotion will
 * replace and requires this replica to stand exactly at its head: same epoch, sequence and chain
 * value. Tries a few times when the primary keeps shipping.
 */
async function caughtUp(
  ctx: PromotionContext,
  follower: Follower,
): Promise<{ object: { body: Uint8Array; etag: string }; current: ManifestBody }> {
  let reason = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await follower.catchUp();
    } catch (e) {
      throw new CofferError(
        'read_only_replica',
        `promotion refused: this replica cannot apply everything the primary shipped (${(e as Error).message}); it would drop acknowledged writes`,
      );
    }
    const object = await ctx.source.get(MANIFEST);
    if (!object) throw new CofferError('read_only_replica', 'promotion refused: the bucket holds no manifest');
    const current = openManifest(ctx.keys, ctx.cluster, object.body);
    const applied = follower.applied;
    if (current.epoch === applied.epoch && current.head.seq === applied.seq && current.head.chain === applied.chain)
      return { object, current };
    reason = `this replica applied ${applied.seq} (epoch ${applied.epoch}) but the bucket's head is ${current.head.seq} (epoch ${current.epoch})`;
  }
  throw new CofferError(
    'read_only_replica',
    `promotion refused: ${reason}; the primary is still shipping: stop it or retry`,
  );
}

/** An epoch claim object in the bucket (unauthenticated: only compared with this server's node id). */
const epochClaimBody = z.object({ node: z.string() });

/** Claims `epoch` with an exclusive create; a claim this server made before (a failed attempt) is its own. */
async function claimEpoch(ctx: PromotionContext, epoch: number): Promise<void> {
  try {
    await ctx.source.put(epochClaim(epoch), Buffer.from(JSON.stringify({ node: ctx.node, at: ctx.now() })), {
      ifNoneMatch: '*',
    });
  } catch (e) {
    if (!(e instanceof PreconditionFailed)) throw e;
    const existing = await ctx.source.get(epochClaim(epoch));
    let holder: string | undefined;
    try {
      holder = existing
        ? epochClaimBody.parse(JSON.parse(Buffer.from(existing.body).toString('utf8'))).node
        : undefined;
    } catch {
      holder = undefined; // unreadable: not ours
    }
    if (holder !== ctx.node) throw new CofferError('conflict', `another server claimed epoch ${epoch} first`);
    ctx.log.info({ epoch }, "promotion: reusing this server's own claim of the epoch from an earlier attempt");
  }
}

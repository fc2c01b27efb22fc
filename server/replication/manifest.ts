import type { Bucket } from './bucket.js';
import { MANIFEST, ReplicationError, openManifest, type ManifestBody, type ReplicationKeys } from './format.js';

export interface ManifestFields {
  epoch: number;
  /** This server's node id. */
  holder: string;
  /** This server's API address, for the replicas' 409 answers. */
  primary: string;
  /** When the request that writes it starts: the lease is counted from here. */
  issuedAt: number;
  /** 0: no lease. */
  leaseMs: number;
  base: ManifestBody['base'];
  head: ManifestBody['head'];
  recent: ManifestBody['recent'];
  snapshot: ManifestBody['snapshot'];
  identity: ManifestBody['identity'];
}

/** The manifest a primary writes, the same for a renewal by the shipper and the swap of a promotion. */
export function buildManifest(f: ManifestFields): ManifestBody {
  return {
    epoch: f.epoch,
    holder: f.holder,
    primary: f.primary,
    issued_at: f.issuedAt,
    lease_until: f.leaseMs > 0 ? f.issuedAt + f.leaseMs : 0,
    base: f.base,
    head: f.head,
    recent: f.recent,
    snapshot: f.snapshot,
    identity: f.identity,
  };
}

/** The bucket's manifest object, or `no_manifest`. */
export async function fetchManifestObject(bucket: Bucket): Promise<{ body: Uint8Array; etag: string }> {
  const object = await bucket.get(MANIFEST);
  if (!object) throw new ReplicationError('no_manifest', `the bucket ${bucket.url} holds no manifest`);
  return object;
}

/** The bucket's manifest, its MAC verified under `keys` (what followers and a confirming replica read). */
export async function fetchVerifiedManifest(
  bucket: Bucket,
  keys: ReplicationKeys,
  cluster: string,
): Promise<ManifestBody> {
  return openManifest(keys, cluster, (await fetchManifestObject(bucket)).body);
}

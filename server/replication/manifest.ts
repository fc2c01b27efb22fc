import type { ManifestBody } from './format.js';

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

import { randomBytes } from 'node:crypto';
import { encodeContext, zeroize } from '../crypto/bytes.js';
import type { MasterKeyProvider } from '../keys/provider.js';
import type { Store } from '../store/db.js';
import { REPLICATION_KEY } from '../store/keys.js';
import { deriveKeys, ReplicationError, type ReplicationKeys } from './format.js';

/**
 * The replication key: 32 random bytes, wrapped by the master key through the provider (so it
 * works when the master key is an HSM key that never leaves the token), stored in the vault so
 * it replicates like any other entry, and published wrapped in the manifest. A replica opened
 * with the same master key (key file, shares or HSM key) unwraps it with its own provider.
 * The working keys are derived from it per purpose with HKDF (format.ts).
 */
const context = (clusterId: string) => encodeContext('coffer/replication/v1', clusterId);

/** The primary's keys: creates the replication key on first use. */
export async function ensureReplicationKeys(
  store: Store,
  provider: MasterKeyProvider,
  clusterId: string,
): Promise<ReplicationKeys> {
  let wrapped = store.get(REPLICATION_KEY);
  if (!wrapped) {
    const raw = new Uint8Array(randomBytes(32));
    const fresh = await provider.wrap(raw, context(clusterId));
    zeroize(raw);
    wrapped = await store.mutate((tx) => {
      const existing = tx.get(REPLICATION_KEY);
      if (existing) return existing;
      tx.put(REPLICATION_KEY, fresh);
      return fresh;
    });
  }
  return unwrapReplicationKeys(provider, clusterId, wrapped);
}

/** Unwraps a published replication key; a key of another vault or master key is refused. */
export async function unwrapReplicationKeys(
  provider: MasterKeyProvider,
  clusterId: string,
  wrapped: Uint8Array,
): Promise<ReplicationKeys> {
  let raw: Uint8Array;
  try {
    raw = await provider.unwrap(wrapped, context(clusterId));
  } catch {
    throw new ReplicationError(
      'other_vault',
      'the replication key in the bucket does not open with this vault’s master key (another vault or master key)',
    );
  }
  try {
    return deriveKeys(raw, clusterId, Uint8Array.from(wrapped));
  } finally {
    zeroize(raw);
  }
}

export function forgetKeys(keys: ReplicationKeys | undefined): void {
  if (keys) zeroize(keys.enc, keys.mac);
}

import { constantTimeEqual, encodeContext, fromBase64, toBase64, zeroize } from '../crypto/bytes.js';
import { KEY_LENGTH } from '../crypto/aead.js';
import { envelopeKeyVersion, openEnvelope, sealEnvelope } from '../crypto/envelope.js';
import type { RandomSource } from '../crypto/random.js';
import { combine, decodeShare, sameSet, type Share } from '../crypto/shamir.js';
import { CofferError } from '../errors.js';
import type { Store } from '../store/db.js';
import { MASTER_PREFIX } from '../store/keys.js';
import type { SealConfig } from './seal-config.js';

const RECOVERY_CHECK = new TextEncoder().encode('coffer recovery key check');
const recoveryContext = (clusterId: string) => encodeContext('coffer/recovery', clusterId);

/** The shares' set id, as stored in the seal configuration (`share_set`). */
export function shareSetOf(encodedShare: string): string {
  return toBase64(decodeShare(encodedShare, KEY_LENGTH).setId);
}

/** Whether `share` belongs to the vault's current split (its set id and threshold). */
function ofCurrentSplit(config: SealConfig, share: Share): boolean {
  return toBase64(share.setId) === config.share_set && share.threshold === config.threshold;
}

/** An envelope only the recovery key opens: how an auto-unseal vault recognises its recovery shares. */
export function recoveryCheck(recoveryKey: Uint8Array, clusterId: string, random: RandomSource): string {
  return toBase64(sealEnvelope(recoveryKey, 1, RECOVERY_CHECK, recoveryContext(clusterId), random));
}

/** Throws `unseal_failed` unless `key` is this auto-unseal vault's recovery key. */
export function checkRecoveryKey(config: SealConfig, key: Uint8Array): void {
  const check = fromBase64(config.recovery_check ?? '');
  if (!check) throw new CofferError('internal', 'recovery key check missing from the seal configuration');
  try {
    openEnvelope(key, check, recoveryContext(config.cluster_id));
  } catch {
    throw new CofferError('unseal_failed', 'the key does not open this vault');
  }
}

/**
 * The shares submitted towards one unseal. A malformed share, a share of another split or a
 * repeated share is refused and changes nothing. The endpoint needs no token, so whoever submits
 * the first share gets a nonce, and a reset must show it: otherwise anyone who can reach the vault
 * could wipe the administrators' progress over and over.
 */
export class UnsealProgress {
  private shares: Share[] = [];
  private currentNonce: string | undefined;

  constructor(private readonly random: RandomSource) {}

  get count(): number {
    return this.shares.length;
  }

  get nonce(): string | undefined {
    return this.currentNonce;
  }

  /** Adds one share; at the threshold, returns the combined key (the caller zeroizes it) and starts over. */
  add(config: SealConfig, encoded: string): Uint8Array | undefined {
    const share = decodeShare(encoded, KEY_LENGTH);
    if (!ofCurrentSplit(config, share)) {
      throw new CofferError('invalid_request', 'share does not belong to this vault’s current key split');
    }
    if (this.shares.some((s) => s.x === share.x))
      throw new CofferError('invalid_request', 'this share was already submitted');
    if (this.shares[0] && !sameSet(this.shares[0], share))
      throw new CofferError('invalid_request', 'share does not match the shares already submitted');
    this.shares.push(share);
    this.currentNonce ??= Buffer.from(this.random(16)).toString('base64url');
    if (this.shares.length < config.threshold) return undefined;
    const key = combine(this.shares);
    this.clear();
    return key;
  }

  /** Forgets the shares so far; with shares pending, only for the holder of the nonce. */
  reset(nonce: string | undefined): void {
    if (
      this.shares.length > 0 &&
      (nonce === undefined ||
        !this.currentNonce ||
        !constantTimeEqual(Buffer.from(nonce), Buffer.from(this.currentNonce)))
    ) {
      throw new CofferError(
        'invalid_request',
        'reset needs the nonce returned with the first share of this unseal (coffer unseal --reset --nonce N)',
      );
    }
    this.clear();
  }

  private clear(): void {
    for (const s of this.shares) zeroize(s.y);
    this.shares = [];
    this.currentNonce = undefined;
  }
}

/**
 * Checks that `encoded` holds a quorum of this vault's current shares (for dangerous operations
 * such as key export). Throws `forbidden` otherwise; keeps nothing.
 */
export async function verifyQuorum(store: Store, config: SealConfig, encoded: string[]): Promise<void> {
  const shares = encoded.map((e) => decodeShare(e, KEY_LENGTH));
  const refused = () =>
    new CofferError('forbidden', `a quorum of ${config.threshold} distinct shares of this vault is required`);
  try {
    if (new Set(shares.map((s) => s.x)).size !== shares.length || shares.length < config.threshold) throw refused();
    if (!shares.every((s) => ofCurrentSplit(config, s))) throw refused();
    const key = combine(shares);
    try {
      if (config.source === 'shamir') {
        const first = (await store.scanPrefix(MASTER_PREFIX, undefined, 1))[0];
        if (!first) throw refused();
        zeroize(
          openEnvelope(key, first[1], encodeContext('coffer/master', config.cluster_id, envelopeKeyVersion(first[1]))),
        );
      } else {
        checkRecoveryKey(config, key);
      }
    } catch {
      throw refused();
    } finally {
      zeroize(key);
    }
  } finally {
    for (const s of shares) zeroize(s.y);
  }
}

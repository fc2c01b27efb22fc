import { pooledBytes, readU32, writeU32 } from './bytes.js';
import { checkHeadroom, decryptionFailed, open, seal, NONCE_LENGTH, TAG_LENGTH } from './aead.js';
import type { RandomSource } from './random.js';

/**
 * A stored envelope names its format, algorithm and the version of the key that sealed it:
 *
 *   format (1 byte) | algorithm (1 byte) | key version (u32 BE) | nonce | ciphertext | tag
 *
 * The 6-byte header is authenticated together with the caller's context, so a record cannot be
 * downgraded to another format or relabelled with another key version.
 */
export const FORMAT_V1 = 0x01;
export const ALG_XCHACHA20_POLY1305 = 0x01;
export const HEADER_LENGTH = 6;
export const MAX_KEY_VERSION = 0xffff_ffff;

/** The associated data of an envelope: its header, then the caller's context. */
function headerAndContext(keyVersion: number, context: Uint8Array): Uint8Array {
  if (!Number.isInteger(keyVersion) || keyVersion < 1 || keyVersion > MAX_KEY_VERSION) {
    throw new RangeError('key version must be an integer in [1, 2^32)');
  }
  const aad = pooledBytes(HEADER_LENGTH + context.length);
  aad[0] = FORMAT_V1;
  aad[1] = ALG_XCHACHA20_POLY1305;
  writeU32(aad, 2, keyVersion);
  aad.set(context, HEADER_LENGTH);
  return aad;
}

/** Seals an envelope; with `headroom`, after that many zero bytes for the caller's own prefix (aead.ts). */
export function sealEnvelope(
  key: Uint8Array,
  keyVersion: number,
  plaintext: Uint8Array,
  context: Uint8Array,
  random?: RandomSource,
  headroom = 0,
): Uint8Array {
  checkHeadroom(headroom);
  const aad = headerAndContext(keyVersion, context);
  const out = seal(key, plaintext, aad, random, headroom + HEADER_LENGTH);
  out.set(aad.subarray(0, HEADER_LENGTH), headroom);
  return out;
}

/**
 * The key version an envelope claims, so the caller can fetch that key. The claim is only
 * trusted once `openEnvelope` has authenticated it. Malformed input is `decryption_failed`.
 */
export function envelopeKeyVersion(envelope: Uint8Array): number {
  if (envelope.length < HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH) throw decryptionFailed();
  if (envelope[0] !== FORMAT_V1 || envelope[1] !== ALG_XCHACHA20_POLY1305) throw decryptionFailed();
  const version = readU32(envelope, 2);
  if (version < 1) throw decryptionFailed();
  return version;
}

export function openEnvelope(key: Uint8Array, envelope: Uint8Array, context: Uint8Array): Uint8Array {
  // The header checked by envelopeKeyVersion is exactly the one headerAndContext writes for its version.
  return open(key, envelope.subarray(HEADER_LENGTH), headerAndContext(envelopeKeyVersion(envelope), context));
}

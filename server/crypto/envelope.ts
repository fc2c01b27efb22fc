import { concatBytes } from './bytes.js';
import { decryptionFailed, open, seal, NONCE_LENGTH, TAG_LENGTH } from './aead.js';
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

function header(keyVersion: number): Uint8Array {
  if (!Number.isInteger(keyVersion) || keyVersion < 1 || keyVersion > MAX_KEY_VERSION) {
    throw new RangeError('key version must be an integer in [1, 2^32)');
  }
  const h = new Uint8Array(HEADER_LENGTH);
  h[0] = FORMAT_V1;
  h[1] = ALG_XCHACHA20_POLY1305;
  new DataView(h.buffer).setUint32(2, keyVersion);
  return h;
}

export function sealEnvelope(
  key: Uint8Array,
  keyVersion: number,
  plaintext: Uint8Array,
  context: Uint8Array,
  random?: RandomSource,
): Uint8Array {
  const h = header(keyVersion);
  return concatBytes(h, seal(key, plaintext, concatBytes(h, context), random));
}

/**
 * The key version an envelope claims, so the caller can fetch that key. The claim is only
 * trusted once `openEnvelope` has authenticated it. Malformed input is `decryption_failed`.
 */
export function envelopeKeyVersion(envelope: Uint8Array): number {
  if (envelope.length < HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH) throw decryptionFailed();
  if (envelope[0] !== FORMAT_V1 || envelope[1] !== ALG_XCHACHA20_POLY1305) throw decryptionFailed();
  const version = new DataView(envelope.buffer, envelope.byteOffset, envelope.byteLength).getUint32(2);
  if (version < 1) throw decryptionFailed();
  return version;
}

export function openEnvelope(key: Uint8Array, envelope: Uint8Array, context: Uint8Array): Uint8Array {
  envelopeKeyVersion(envelope);
  const h = envelope.subarray(0, HEADER_LENGTH);
  return open(key, envelope.subarray(HEADER_LENGTH), concatBytes(h, context));
}

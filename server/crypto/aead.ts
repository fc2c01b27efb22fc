import sodium from 'sodium-native';
import { CofferError } from '../errors.js';
import { pooledBytes } from './bytes.js';
import { systemRandom, type RandomSource } from './random.js';

/**
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) with a random 192-bit nonce per message.
 * Output: nonce || ciphertext || tag. Random nonces of this size make repeats negligible.
 *
 * The AEAD runs in libsodium (sodium-native's `crypto_aead_xchacha20poly1305_ietf_*`): one
 * synchronous call per message, constant-time, reading the key where the caller holds it and
 * writing straight into the output buffer, so no copy of key material or plaintext is left
 * anywhere this module does not zeroize. node:crypto has no XChaCha20, and deriving its subkey
 * in JS and keying an OpenSSL cipher object per message cost 3-4x more (docs/performance.md).
 * The bytes are identical to @noble/ciphers' xchacha20poly1305 (a differential test holds it).
 */
export const KEY_LENGTH = 32;
export const NONCE_LENGTH = 24;
export const TAG_LENGTH = 16;

/** Bytes a caller leaves at the front of a sealed value for its own header (seal, sealEnvelope). */
export function checkHeadroom(headroom: number): void {
  if (!Number.isSafeInteger(headroom) || headroom < 0) throw new RangeError('headroom must be a non-negative integer');
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_LENGTH)
    throw new RangeError(`key must be ${KEY_LENGTH} bytes`);
}

function checkBytes(value: Uint8Array, what: string): void {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
}

/**
 * Seals `plaintext`. With `headroom`, the output starts with that many zero bytes for the
 * caller's own header (an envelope's, a stored record's), so a sealed value is built in one
 * buffer instead of copied once per layer.
 */
export function seal(
  key: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  random: RandomSource = systemRandom,
  headroom = 0,
): Uint8Array {
  checkKey(key);
  checkBytes(plaintext, 'plaintext');
  checkBytes(aad, 'aad');
  checkHeadroom(headroom);
  const nonce = random(NONCE_LENGTH);
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_LENGTH)
    throw new RangeError(`nonce must be ${NONCE_LENGTH} bytes`);
  // A buffer of its own: a sealed value is kept (in a batch, a cache), and must hold no pool alive.
  const out = new Uint8Array(headroom + NONCE_LENGTH + plaintext.length + TAG_LENGTH);
  out.set(nonce, headroom);
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
    out.subarray(headroom + NONCE_LENGTH),
    plaintext,
    aad,
    null,
    out.subarray(headroom, headroom + NONCE_LENGTH),
    key,
  );
  return out;
}

/** Opens a sealed message. Every failure is the same opaque `decryption_failed`. */
export function open(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  checkKey(key);
  checkBytes(aad, 'aad');
  if (!(sealed instanceof Uint8Array) || sealed.length < NONCE_LENGTH + TAG_LENGTH) throw decryptionFailed();
  // From node's pool, a slice no other buffer shares: libsodium writes every byte of it or, when
  // the tag does not verify, none (then it is zeroed here); the caller zeroizes what it is given.
  const plaintext = pooledBytes(sealed.length - NONCE_LENGTH - TAG_LENGTH);
  try {
    // libsodium checks the tag before it decrypts: on failure nothing is written to `plaintext`.
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      plaintext,
      null,
      sealed.subarray(NONCE_LENGTH),
      aad,
      sealed.subarray(0, NONCE_LENGTH),
      key,
    );
    return plaintext;
  } catch {
    plaintext.fill(0);
    throw decryptionFailed();
  }
}

export const decryptionFailed = () => new CofferError('decryption_failed', 'decryption failed');

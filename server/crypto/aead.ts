import sodium from 'sodium-native';
import { CofferError } from '../errors.js';
import { offHeapBytes, ON_HEAP_MAX, pooledBytes } from './bytes.js';
import { systemRandom, type RandomSource } from './random.js';

/**
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) with a random 192-bit nonce per message.
 * Output: nonce || ciphertext || tag. Random nonces of this size make repeats negligible.
 *
 * The AEAD runs in libsodium (sodium-native's `crypto_aead_xchacha20poly1305_ietf_*`): one
 * synchronous call per message, constant-time, writing straight into the output buffer.
 * node:crypto has no XChaCha20, and deriving its subkey in JS and keying an OpenSSL cipher
 * object per message cost 3-4x more (docs/performance.md). The bytes are identical to
 * @noble/ciphers' xchacha20poly1305 (a differential test holds it).
 *
 * Key material never reaches the binding in an array V8 may keep inside its heap (ON_HEAP_MAX,
 * bytes.ts): handing one to native code makes V8 move it, leaving a copy no zeroize reaches.
 * So the key, and a plaintext of key size,
 * are copied into scratch buffers outside the heap for the call and wiped after it (calls are
 * synchronous: no two overlap), and an opened plaintext of key size gets a buffer of its own.
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

const KEY_SCRATCH = offHeapBytes(KEY_LENGTH);
const SMALL_SCRATCH = offHeapBytes(ON_HEAP_MAX);

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
  try {
    KEY_SCRATCH.set(key);
    let message = plaintext;
    if (plaintext.length <= ON_HEAP_MAX) {
      SMALL_SCRATCH.set(plaintext);
      message = SMALL_SCRATCH.subarray(0, plaintext.length);
    }
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
      out.subarray(headroom + NONCE_LENGTH),
      message,
      aad,
      null,
      out.subarray(headroom, headroom + NONCE_LENGTH),
      KEY_SCRATCH,
    );
    return out;
  } finally {
    KEY_SCRATCH.fill(0);
    SMALL_SCRATCH.fill(0);
  }
}

/** Opens a sealed message. Every failure is the same opaque `decryption_failed`. */
export function open(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  checkKey(key);
  checkBytes(aad, 'aad');
  if (!(sealed instanceof Uint8Array) || sealed.length < NONCE_LENGTH + TAG_LENGTH) throw decryptionFailed();
  const length = sealed.length - NONCE_LENGTH - TAG_LENGTH;
  // A key-sized plaintext (a DEK, a keyring key: often cached) gets a buffer of its own outside
  // the heap; anything larger a slice of node's pool no other buffer shares, which libsodium
  // writes in full (or zeroes, when the tag does not verify). The caller zeroizes what it gets.
  const plaintext = length <= ON_HEAP_MAX ? offHeapBytes(length) : pooledBytes(length);
  try {
    KEY_SCRATCH.set(key);
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
      plaintext,
      null,
      sealed.subarray(NONCE_LENGTH),
      aad,
      sealed.subarray(0, NONCE_LENGTH),
      KEY_SCRATCH,
    );
    return plaintext;
  } catch {
    plaintext.fill(0);
    throw decryptionFailed();
  } finally {
    KEY_SCRATCH.fill(0);
  }
}

export const decryptionFailed = () => new CofferError('decryption_failed', 'decryption failed');

import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { CofferError } from '../errors.js';
import { concatBytes } from './bytes.js';
import { systemRandom, type RandomSource } from './random.js';

/**
 * XChaCha20-Poly1305 with a random 192-bit nonce per message. Output: nonce || ciphertext || tag.
 * Random nonces of this size make repeats negligible, so one key may seal very many messages;
 * the keyring still rotates keys by count as defence in depth.
 */
export const KEY_LENGTH = 32;
export const NONCE_LENGTH = 24;
export const TAG_LENGTH = 16;

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_LENGTH) throw new RangeError(`key must be ${KEY_LENGTH} bytes`);
}

export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, random: RandomSource = systemRandom): Uint8Array {
  checkKey(key);
  const nonce = random(NONCE_LENGTH);
  if (nonce.length !== NONCE_LENGTH) throw new RangeError(`nonce must be ${NONCE_LENGTH} bytes`);
  return concatBytes(nonce, xchacha20poly1305(key, nonce, aad).encrypt(plaintext));
}

/** Opens a sealed message. Every failure is the same opaque `decryption_failed`. */
export function open(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  checkKey(key);
  if (sealed.length < NONCE_LENGTH + TAG_LENGTH) throw decryptionFailed();
  try {
    return xchacha20poly1305(key, sealed.subarray(0, NONCE_LENGTH), aad).decrypt(sealed.subarray(NONCE_LENGTH));
  } catch {
    throw decryptionFailed();
  }
}

export const decryptionFailed = () => new CofferError('decryption_failed', 'decryption failed');

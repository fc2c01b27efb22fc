import { createCipheriv, createDecipheriv } from 'node:crypto';
import { hchacha } from '@noble/ciphers/chacha.js';
import { CofferError } from '../errors.js';
import { systemRandom, type RandomSource } from './random.js';

/**
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) with a random 192-bit nonce per message.
 * Output: nonce || ciphertext || tag. Random nonces of this size make repeats negligible.
 *
 * Construction: HChaCha20(key, nonce[0..16]) gives a subkey (noble's constant-time `hchacha`);
 * ChaCha20-Poly1305 (RFC 8439) under that subkey with nonce 0x00000000 || nonce[16..24] runs in
 * OpenSSL, which is constant-time and about 2.5x faster than the pure-JS AEAD on 1 KiB. The
 * bytes are identical to @noble/ciphers' xchacha20poly1305 (a differential test holds it).
 */
export const KEY_LENGTH = 32;
export const NONCE_LENGTH = 24;
export const TAG_LENGTH = 16;

const SIGMA = Uint32Array.of(0x61707865, 0x3320646e, 0x79622d32, 0x6b206574);

/** Bytes a caller leaves at the front of a sealed value for its own header (seal, sealEnvelope). */
export function checkHeadroom(headroom: number): void {
  if (!Number.isSafeInteger(headroom) || headroom < 0) throw new RangeError('headroom must be a non-negative integer');
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_LENGTH)
    throw new RangeError(`key must be ${KEY_LENGTH} bytes`);
}

// Scratch for HChaCha20 and for one message's subkey and IETF nonce, reused by every call:
// derive and the cipher it keys run synchronously (no two calls overlap), OpenSSL copies the
// subkey and nonce when the cipher is created, and every word of key material is zeroized
// before seal or open returns. A read opens four messages and a write seals four, and fresh
// typed arrays per message cost more than the HChaCha20 itself.
const KEY_WORDS = new Uint32Array(8);
const NONCE_WORDS = new Uint32Array(4);
const OUT_WORDS = new Uint32Array(8);
const SUBKEY = new Uint8Array(KEY_LENGTH);
const IV = new Uint8Array(12);

const word = (b: Uint8Array, at: number) =>
  (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;

/** Zeroizes every scratch word that held key material (also when a step in between threw). */
function wipeScratch(): void {
  KEY_WORDS.fill(0);
  OUT_WORDS.fill(0);
  SUBKEY.fill(0);
}

/** Puts the HChaCha20 subkey of one message in SUBKEY and its 12-byte IETF nonce in IV; the caller wipes the scratch. */
function derive(key: Uint8Array, nonce: Uint8Array): void {
  for (let i = 0; i < 8; i++) KEY_WORDS[i] = word(key, i * 4);
  for (let i = 0; i < 4; i++) NONCE_WORDS[i] = word(nonce, i * 4);
  hchacha(SIGMA, KEY_WORDS, NONCE_WORDS, OUT_WORDS);
  KEY_WORDS.fill(0);
  for (let i = 0; i < 8; i++) {
    const w = OUT_WORDS[i]!;
    SUBKEY[i * 4] = w;
    SUBKEY[i * 4 + 1] = w >>> 8;
    SUBKEY[i * 4 + 2] = w >>> 16;
    SUBKEY[i * 4 + 3] = w >>> 24;
  }
  OUT_WORDS.fill(0);
  IV.set(nonce.subarray(16, NONCE_LENGTH), 4);
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
  checkHeadroom(headroom);
  const nonce = random(NONCE_LENGTH);
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_LENGTH)
    throw new RangeError(`nonce must be ${NONCE_LENGTH} bytes`);
  try {
    derive(key, nonce);
    const cipher = createCipheriv('chacha20-poly1305', SUBKEY, IV, { authTagLength: TAG_LENGTH });
    cipher.setAAD(aad, { plaintextLength: plaintext.length });
    const body = cipher.update(plaintext);
    cipher.final();
    const out = new Uint8Array(headroom + NONCE_LENGTH + body.length + TAG_LENGTH);
    out.set(nonce, headroom);
    out.set(body, headroom + NONCE_LENGTH);
    out.set(cipher.getAuthTag(), headroom + NONCE_LENGTH + body.length);
    return out;
  } finally {
    wipeScratch();
  }
}

/** Opens a sealed message. Every failure is the same opaque `decryption_failed`. */
export function open(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  checkKey(key);
  if (!(sealed instanceof Uint8Array) || sealed.length < NONCE_LENGTH + TAG_LENGTH) throw decryptionFailed();
  let plaintext: Buffer | undefined;
  try {
    derive(key, sealed.subarray(0, NONCE_LENGTH));
    const decipher = createDecipheriv('chacha20-poly1305', SUBKEY, IV, { authTagLength: TAG_LENGTH });
    decipher.setAAD(aad, { plaintextLength: sealed.length - NONCE_LENGTH - TAG_LENGTH });
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_LENGTH));
    plaintext = decipher.update(sealed.subarray(NONCE_LENGTH, sealed.length - TAG_LENGTH));
    decipher.final();
    return new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  } catch {
    plaintext?.fill(0); // released before authentication succeeded: never returned
    throw decryptionFailed();
  } finally {
    wipeScratch();
  }
}

export const decryptionFailed = () => new CofferError('decryption_failed', 'decryption failed');

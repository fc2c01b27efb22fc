import assert from 'node:assert/strict';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import fc from 'fast-check';
import { open, seal, NONCE_LENGTH } from '../../../server/crypto/aead.js';

/**
 * aead.ts runs XChaCha20-Poly1305 in libsodium (sodium-native). These tests hold it
 * byte-identical to @noble/ciphers' xchacha20poly1305 and to the published test vector, so the
 * native implementation cannot drift from the reference.
 */
describe('aead against the reference XChaCha20-Poly1305', () => {
  it('produces exactly the bytes of @noble/ciphers for any key, nonce, AAD and plaintext', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 24, maxLength: 24 }),
        fc.uint8Array({ maxLength: 100 }),
        fc.uint8Array({ maxLength: 2000 }),
        (key, nonce, aad, plaintext) => {
          const ours = seal(key, plaintext, aad, () => Uint8Array.from(nonce));
          const reference = xchacha20poly1305(key, nonce, aad).encrypt(plaintext);
          assert.deepEqual(ours.subarray(NONCE_LENGTH), reference);
          assert.deepEqual(ours.subarray(0, NONCE_LENGTH), nonce);
          assert.deepEqual(open(key, ours, aad), plaintext);
          assert.deepEqual(xchacha20poly1305(key, nonce, aad).decrypt(ours.subarray(NONCE_LENGTH)), plaintext);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('matches the draft-irtf-cfrg-xchacha A.3.1 test vector', () => {
    const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
    const plaintext = Buffer.from(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const aad = hex('50515253c0c1c2c3c4c5c6c7');
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
    const expected = hex(`
      bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb
      731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452
      2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9
      21f9664c97637da9768812f615c68b13b52e
      c0875924c1c7987947deafd8780acf49`);
    const sealed = seal(key, plaintext, aad, () => Uint8Array.from(nonce));
    assert.deepEqual(sealed.subarray(NONCE_LENGTH), expected);
    assert.deepEqual(open(key, sealed, aad), new Uint8Array(plaintext));
  });
});

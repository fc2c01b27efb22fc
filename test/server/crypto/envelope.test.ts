import assert from 'node:assert/strict';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { KEY_LENGTH, NONCE_LENGTH, TAG_LENGTH, open, seal } from '../../../server/crypto/aead.js';
import {
  ALG_XCHACHA20_POLY1305,
  FORMAT_V1,
  HEADER_LENGTH,
  MAX_KEY_VERSION,
  envelopeKeyVersion,
  openEnvelope,
  sealEnvelope,
} from '../../../server/crypto/envelope.js';
import { CofferError } from '../../../server/errors.js';

/**
 * The stored envelope (server/crypto/envelope.ts): format | algorithm | key version (u32 BE) |
 * nonce | ciphertext | tag, the 6-byte header authenticated with the caller's context. Known
 * answers pin the bytes; the header bounds are checked one by one.
 */

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const utf8 = (s: string) => new TextEncoder().encode(s);
const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const NONCE = Uint8Array.from({ length: 24 }, (_, i) => 0x40 + i);
const fixedNonce = () => Uint8Array.from(NONCE);
const CONTEXT = utf8('coffer/test/kat');
const failed = (e: unknown) =>
  e instanceof CofferError && e.code === 'decryption_failed' && e.message === 'decryption failed';

describe('envelope: known answers', () => {
  it('seals a fixed key, nonce, plaintext, context and key version to fixed bytes', () => {
    const sealed = sealEnvelope(KEY, 7, utf8('known-answer envelope'), CONTEXT, fixedNonce);
    const expected = hex(
      '010100000007404142434445464748494a4b4c4d4e4f5051525354555657bf576a07becd1878fc83e2cc8ff90be4f7d6c2b4769bd3b0dd728805bf0d0aba67588390f6',
    );
    assert.deepEqual(sealed, expected);
    // The same bytes from the reference AEAD: header || XChaCha20-Poly1305(key, nonce, AAD = header || context).
    const header = expected.subarray(0, HEADER_LENGTH);
    const reference = xchacha20poly1305(KEY, NONCE, new Uint8Array([...header, ...CONTEXT])).encrypt(
      utf8('known-answer envelope'),
    );
    assert.deepEqual(sealed.subarray(HEADER_LENGTH + NONCE_LENGTH), reference);
    assert.equal(envelopeKeyVersion(sealed), 7);
    assert.deepEqual(openEnvelope(KEY, sealed, CONTEXT), utf8('known-answer envelope'));
  });

  it('seals an empty plaintext under the largest key version and an empty context', () => {
    const sealed = sealEnvelope(KEY, MAX_KEY_VERSION, new Uint8Array(0), new Uint8Array(0), fixedNonce);
    assert.deepEqual(
      sealed,
      hex('0101ffffffff404142434445464748494a4b4c4d4e4f50515253545556578e5cd6a9c309f1fbfe8fb780d87b9a04'),
    );
    assert.equal(sealed.length, HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH);
    assert.equal(envelopeKeyVersion(sealed), 0xffff_ffff);
    assert.deepEqual(openEnvelope(KEY, sealed, new Uint8Array(0)), new Uint8Array(0));
  });

  it('names its format and algorithm 0x01 0x01', () => {
    assert.equal(FORMAT_V1, 1);
    assert.equal(ALG_XCHACHA20_POLY1305, 1);
    assert.equal(HEADER_LENGTH, 6);
  });
});

describe('envelope: key versions', () => {
  it('sealEnvelope refuses key version 0, 2^32, 1.5, -1, NaN and a string', () => {
    for (const version of [0, 2 ** 32, 1.5, -1, Number.NaN, Number.POSITIVE_INFINITY, '3' as unknown as number]) {
      assert.throws(
        () => sealEnvelope(KEY, version, utf8('x'), CONTEXT),
        (e: unknown) => e instanceof RangeError && /key version must be an integer in \[1, 2\^32\)/.test(e.message),
        String(version),
      );
    }
  });

  it('sealEnvelope accepts key versions 1 and 2^32 - 1 and writes them big-endian', () => {
    assert.deepEqual(
      sealEnvelope(KEY, 1, utf8('x'), CONTEXT).subarray(0, HEADER_LENGTH),
      Uint8Array.of(1, 1, 0, 0, 0, 1),
    );
    assert.deepEqual(
      sealEnvelope(KEY, 0x01020304, utf8('x'), CONTEXT).subarray(0, HEADER_LENGTH),
      Uint8Array.of(1, 1, 1, 2, 3, 4),
    );
    assert.deepEqual(
      sealEnvelope(KEY, 2 ** 32 - 1, utf8('x'), CONTEXT).subarray(0, HEADER_LENGTH),
      Uint8Array.of(1, 1, 0xff, 0xff, 0xff, 0xff),
    );
  });

  it('envelopeKeyVersion reads the version of an envelope that starts inside a larger buffer', () => {
    const sealed = sealEnvelope(KEY, 0x0a0b0c0d, utf8('inner'), CONTEXT);
    const big = new Uint8Array(sealed.length + 11);
    big.fill(0xee);
    big.set(sealed, 5);
    const view = big.subarray(5, 5 + sealed.length);
    assert.equal(envelopeKeyVersion(view), 0x0a0b0c0d);
    assert.deepEqual(openEnvelope(KEY, view, CONTEXT), utf8('inner'));
  });
});

describe('envelope: malformed input is decryption_failed', () => {
  const good = sealEnvelope(KEY, 3, new Uint8Array(0), CONTEXT, fixedNonce);

  it('reads a minimal envelope (header, nonce, tag) and refuses anything one byte shorter', () => {
    assert.equal(good.length, HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH);
    assert.equal(envelopeKeyVersion(good), 3);
    assert.throws(() => envelopeKeyVersion(good.subarray(0, good.length - 1)), failed);
    assert.throws(() => openEnvelope(KEY, good.subarray(0, good.length - 1), CONTEXT), failed);
    assert.throws(() => envelopeKeyVersion(new Uint8Array(0)), failed);
    assert.throws(() => envelopeKeyVersion(good.subarray(0, HEADER_LENGTH)), failed);
  });

  it('refuses another format byte or another algorithm byte, before any decryption', () => {
    for (const [index, value] of [
      [0, 0x00],
      [0, 0x02],
      [0, 0xff],
      [1, 0x00],
      [1, 0x02],
      [1, 0xff],
    ] as const) {
      const bad = Uint8Array.from(good);
      bad[index] = value;
      assert.throws(() => envelopeKeyVersion(bad), failed, `byte ${index} = ${value}`);
      assert.throws(() => openEnvelope(KEY, bad, CONTEXT), failed, `byte ${index} = ${value}`);
    }
  });

  it('refuses key version 0 in a stored header', () => {
    const bad = Uint8Array.from(good);
    bad.fill(0, 2, 6);
    assert.throws(() => envelopeKeyVersion(bad), failed);
  });

  it('refuses a header relabelled to another key version, another context and a flipped bit (the AEAD)', () => {
    const relabelled = Uint8Array.from(good);
    relabelled[5] = 4;
    assert.equal(envelopeKeyVersion(relabelled), 4, 'the claim is readable');
    assert.throws(() => openEnvelope(KEY, relabelled, CONTEXT), failed, 'but not authentic');
    assert.throws(() => openEnvelope(KEY, good, utf8('coffer/test/other')), failed);
    const flipped = Uint8Array.from(good);
    flipped[flipped.length - 1]! ^= 1;
    assert.throws(() => openEnvelope(KEY, flipped, CONTEXT), failed);
  });
});

describe('aead: key, nonce and length checks', () => {
  it('refuses keys that are not 32 bytes, on seal and on open', () => {
    const sealed = seal(KEY, utf8('x'), new Uint8Array(0));
    for (const key of [
      new Uint8Array(31),
      new Uint8Array(33),
      new Uint8Array(0),
      Array.from(KEY) as unknown as Uint8Array,
    ]) {
      assert.throws(
        () => seal(key, utf8('x'), new Uint8Array(0)),
        (e: unknown) => e instanceof RangeError && e.message === `key must be ${KEY_LENGTH} bytes`,
      );
      assert.throws(
        () => open(key, sealed, new Uint8Array(0)),
        (e: unknown) => e instanceof RangeError && e.message === `key must be ${KEY_LENGTH} bytes`,
      );
    }
  });

  it('refuses a random source that gives a nonce of the wrong size', () => {
    for (const n of [0, 23, 25]) {
      assert.throws(
        () => seal(KEY, utf8('x'), new Uint8Array(0), () => new Uint8Array(n)),
        (e: unknown) => e instanceof RangeError && e.message === `nonce must be ${NONCE_LENGTH} bytes`,
      );
    }
    assert.throws(
      () => seal(KEY, utf8('x'), new Uint8Array(0), () => Array(24).fill(0) as unknown as Uint8Array),
      RangeError,
    );
  });

  it('opens a sealed empty message of exactly nonce + tag bytes and refuses anything shorter or not bytes', () => {
    const sealed = seal(KEY, new Uint8Array(0), utf8('aad'), fixedNonce);
    assert.equal(sealed.length, NONCE_LENGTH + TAG_LENGTH);
    assert.deepEqual(open(KEY, sealed, utf8('aad')), new Uint8Array(0));
    assert.throws(() => open(KEY, sealed.subarray(1), utf8('aad')), failed);
    assert.throws(() => open(KEY, Array.from(sealed) as unknown as Uint8Array, utf8('aad')), failed);
    for (const n of [0, 1, 8, 20, 23, 24, 39])
      assert.throws(() => open(KEY, new Uint8Array(n), utf8('aad')), failed, `${n} bytes on their own buffer`);
  });

  it('takes the key and nonce from inside larger buffers correctly', () => {
    const keyBuffer = new Uint8Array(40).fill(0x99);
    keyBuffer.set(KEY, 3);
    const key = keyBuffer.subarray(3, 35);
    const sealed = seal(key, utf8('offsets'), utf8('aad'), fixedNonce);
    assert.deepEqual(sealed, seal(KEY, utf8('offsets'), utf8('aad'), fixedNonce));
    const sealedBuffer = new Uint8Array(sealed.length + 9).fill(0x77);
    sealedBuffer.set(sealed, 9);
    assert.deepEqual(open(key, sealedBuffer.subarray(9), utf8('aad')), utf8('offsets'));
  });

  it('refuses a tampered tag, ciphertext, nonce or AAD with the same opaque error', () => {
    const sealed = seal(KEY, utf8('tamper me'), utf8('aad'), fixedNonce);
    for (const index of [0, NONCE_LENGTH - 1, NONCE_LENGTH, sealed.length - TAG_LENGTH - 1, sealed.length - 1]) {
      const bad = Uint8Array.from(sealed);
      bad[index]! ^= 0x80;
      assert.throws(() => open(KEY, bad, utf8('aad')), failed, `byte ${index}`);
    }
    assert.throws(() => open(KEY, sealed, utf8('aae')), failed);
    assert.throws(() => open(KEY, sealed, new Uint8Array(0)), failed);
  });
});

describe('envelope: headroom for the caller’s prefix', () => {
  it('seals after `headroom` zero bytes, the rest byte for byte what no headroom gives', () => {
    for (const headroom of [1, 3, 81]) {
      const plain = seal(KEY, utf8('room'), utf8('aad'), fixedNonce);
      const roomy = seal(KEY, utf8('room'), utf8('aad'), fixedNonce, headroom);
      assert.equal(roomy.length, headroom + plain.length);
      assert.deepEqual(roomy.subarray(0, headroom), new Uint8Array(headroom));
      assert.deepEqual(roomy.subarray(headroom), plain);
      assert.deepEqual(open(KEY, roomy.subarray(headroom), utf8('aad')), utf8('room'));

      const envelope = sealEnvelope(KEY, 7, utf8('room'), CONTEXT, fixedNonce);
      const prefixed = sealEnvelope(KEY, 7, utf8('room'), CONTEXT, fixedNonce, headroom);
      assert.deepEqual(prefixed.subarray(0, headroom), new Uint8Array(headroom));
      assert.deepEqual(prefixed.subarray(headroom), envelope);
      assert.equal(envelopeKeyVersion(prefixed.subarray(headroom)), 7);
    }
  });

  it('seals successive messages into buffers of their own (nothing shared between two results)', () => {
    const a = sealEnvelope(KEY, 1, utf8('first'), CONTEXT);
    const copy = Uint8Array.from(a);
    const b = sealEnvelope(KEY, 1, utf8('second'), CONTEXT, undefined, 1);
    assert.notEqual(a.buffer, b.buffer);
    assert.deepEqual(a, copy);
    assert.deepEqual(openEnvelope(KEY, a, CONTEXT), utf8('first'));
    assert.deepEqual(openEnvelope(KEY, b.subarray(1), CONTEXT), utf8('second'));
  });

  it('refuses a headroom that is negative, fractional or not a number', () => {
    for (const bad of [-1, -6, 1.5, Number.NaN, Infinity]) {
      const refused = { name: 'RangeError', message: 'headroom must be a non-negative integer' };
      assert.throws(() => seal(KEY, utf8('x'), utf8('aad'), fixedNonce, bad), refused, `seal ${bad}`);
      assert.throws(() => sealEnvelope(KEY, 1, utf8('x'), CONTEXT, fixedNonce, bad), refused, `envelope ${bad}`);
    }
  });
});

describe('aead: input types', () => {
  const notBytes = ['text', [1, 2, 3], new Uint16Array(4), null, undefined] as unknown as Uint8Array[];

  it('refuses a plaintext or associated data that is not a Uint8Array, naming which, before drawing a nonce', () => {
    let draws = 0;
    const counting = (n: number) => {
      draws++;
      void n;
      return fixedNonce();
    };
    for (const bad of notBytes) {
      assert.throws(() => seal(KEY, bad, utf8('aad'), counting), {
        name: 'TypeError',
        message: 'plaintext must be a Uint8Array',
      });
      assert.throws(() => seal(KEY, utf8('x'), bad, counting), {
        name: 'TypeError',
        message: 'aad must be a Uint8Array',
      });
    }
    assert.equal(draws, 0);
  });

  it('refuses associated data that is not a Uint8Array when opening, naming it', () => {
    const sealed = seal(KEY, utf8('x'), utf8('aad'));
    for (const bad of notBytes)
      assert.throws(() => open(KEY, sealed, bad), { name: 'TypeError', message: 'aad must be a Uint8Array' });
  });

  it('opens a plaintext of up to 64 bytes (a key) into a buffer of its own, a larger one into a slice of the pool', () => {
    for (const n of [0, 32, 64]) {
      const opened = open(KEY, seal(KEY, new Uint8Array(n), utf8('aad')), utf8('aad'));
      assert.equal(opened.buffer.byteLength, n, `${n} bytes: an ArrayBuffer of exactly its size`);
    }
    for (const n of [65, 1024]) {
      const opened = open(KEY, seal(KEY, new Uint8Array(n), utf8('aad')), utf8('aad'));
      assert.ok(opened.buffer.byteLength > n, `${n} bytes: a slice of node's pool`);
    }
  });

  it('opens and seals plaintexts of 63, 64 and 65 bytes (either side of the in-heap size) to the reference bytes', () => {
    for (const n of [0, 1, 31, 32, 33, 63, 64, 65, 1024]) {
      const plaintext = new Uint8Array(n).map((_, i) => i);
      const sealed = seal(KEY, plaintext, utf8('aad'), fixedNonce);
      const reference = xchacha20poly1305(KEY, fixedNonce(), utf8('aad')).encrypt(plaintext);
      assert.deepEqual(sealed.subarray(NONCE_LENGTH), reference, `${n} bytes`);
      assert.deepEqual(open(KEY, sealed, utf8('aad')), plaintext, `${n} bytes back`);
    }
  });
});

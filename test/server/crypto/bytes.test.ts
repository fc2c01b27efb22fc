import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  constantTimeEqual,
  encodeContext,
  fromBase64,
  pooledBytes,
  readU32,
  toBase64,
  writeU32,
} from '../../../server/crypto/bytes.js';

/** The reference encoding: each field as u32 BE byte length, then its UTF-8 bytes. */
function reference(...fields: (string | number)[]): Uint8Array {
  const parts = fields.map((f) => {
    const bytes = Buffer.from(String(f), 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return Buffer.concat([length, bytes]);
  });
  return new Uint8Array(Buffer.concat(parts));
}

describe('bytes: context encoding and integer helpers', () => {
  it('encodes ASCII, non-ASCII (first, middle, last character), numbers and empty fields as the reference does', () => {
    const cases: (string | number)[][] = [
      ['coffer/barrier', '3f9c2a5e-1b7d-4c2e-9a8f-6e5d4c3b2a19', 'meta/app/db'],
      ['é', 'aé', 'aéb', 'ab€', '😀x', ''],
      ['coffer/dek', 'cluster', 'default', 'path', 1, 4294967295],
      [],
    ];
    for (const fields of cases)
      assert.deepEqual(encodeContext(...fields), reference(...fields), JSON.stringify(fields));
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.string({ unit: 'binary' }), fc.nat()), { maxLength: 6 }), (fields) => {
        assert.deepEqual(encodeContext(...fields), reference(...fields));
      }),
    );
  });

  it('keeps fields apart: ("ab", "c") and ("a", "bc") differ', () => {
    assert.notDeepEqual(encodeContext('ab', 'c'), encodeContext('a', 'bc'));
  });

  it('writes and reads unsigned 32-bit big-endian integers at an offset, up to 2^32 - 1', () => {
    const b = new Uint8Array(7);
    for (const v of [0, 1, 0x0102_0304, 0x8000_0000, 0xffff_ffff]) {
      writeU32(b, 3, v);
      assert.equal(readU32(b, 3), v);
      assert.equal(Buffer.from(b).readUInt32BE(3), v);
    }
    assert.deepEqual([...b.subarray(0, 3)], [0, 0, 0], 'nothing written before the offset');
  });

  it('compares in constant time: equal bytes are equal, one differing byte or another length is not', () => {
    assert.equal(constantTimeEqual(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 3)), true);
    assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)), true);
    assert.equal(constantTimeEqual(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 4)), false);
    assert.equal(constantTimeEqual(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2)), false, 'a prefix is not equal');
    assert.equal(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 3)), false);
  });

  it('decodes strict base64 only: padding, alphabet and both ends are checked, and it round-trips', () => {
    for (const n of [0, 1, 2, 3, 4, 31, 32]) {
      const bytes = new Uint8Array(n).map((_, i) => (i * 37 + 11) & 0xff);
      assert.deepEqual(fromBase64(toBase64(bytes)), bytes, `${n} bytes`);
    }
    assert.deepEqual(fromBase64('QUJD'), Uint8Array.of(0x41, 0x42, 0x43));
    assert.deepEqual(fromBase64('QUI='), Uint8Array.of(0x41, 0x42));
    assert.deepEqual(fromBase64('QQ=='), Uint8Array.of(0x41));
    for (const bad of [
      'QUJ',
      'QQ',
      'Q',
      'QUI',
      'QUJD!',
      '!QUJD',
      'QU JD',
      'QUJD\n',
      'QQ=',
      'Q===',
      '=QUJ',
      'QU=D',
      'QUJD-_',
      'QUJD====',
    ])
      assert.equal(fromBase64(bad), undefined, JSON.stringify(bad));
  });

  it('hands out pooled bytes as a plain Uint8Array of the asked length, never overlapping another', () => {
    const a = pooledBytes(40);
    const b = pooledBytes(40);
    assert.equal(Object.getPrototypeOf(a), Uint8Array.prototype);
    assert.equal(a.length, 40);
    a.fill(1);
    b.fill(2);
    assert.ok(
      a.every((x) => x === 1),
      'filling one leaves the other as it was',
    );
  });
});

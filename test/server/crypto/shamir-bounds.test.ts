import assert from 'node:assert/strict';
import { CofferError } from '../../../server/errors.js';
import { MAX_SHARES, combine, decodeShare, gfInv, gfMul, split, type Share } from '../../../server/crypto/shamir.js';

/**
 * Shamir sharing at its bounds (server/crypto/shamir.ts): known-answer share bytes, the split
 * parameters (empty secret, threshold 0, threshold above shares, 255 and 256 shares), the
 * 1024-character share cap, and the checks combine makes before it interpolates.
 */

/** A deterministic random source: consecutive bytes from `start`. */
const counter = (start: number) => {
  let next = start;
  return (n: number) => Uint8Array.from({ length: n }, () => next++ & 0xff);
};
const invalid = (pattern: RegExp) => (e: unknown) =>
  e instanceof CofferError && e.code === 'invalid_request' && e.status === 400 && pattern.test(e.message);
const malformed = invalid(/^share is malformed: expected a base64 share produced by init$/);

/** GF(2^8) multiplication by shift and add, written here as a reference. */
function mulReference(a: number, b: number): number {
  let p = 0;
  while (b > 0) {
    if (b & 1) p ^= a;
    a = a & 0x80 ? ((a << 1) ^ 0x11b) & 0xff : a << 1;
    b >>= 1;
  }
  return p;
}

describe('shamir: field arithmetic', () => {
  it('gfMul agrees with a reference on every pair of bytes, and gfInv inverts every non-zero byte', () => {
    for (let a = 0; a < 256; a++) {
      for (let b = 0; b < 256; b++) assert.equal(gfMul(a, b), mulReference(a, b), `${a} * ${b}`);
      if (a > 0) assert.equal(gfMul(a, gfInv(a)), 1, `inverse of ${a}`);
    }
    assert.equal(gfInv(0), 0);
    assert.equal(gfMul(0x57, 0x83), 0xc1, 'FIPS-197 4.2 example');
  });
});

describe('shamir: known-answer shares', () => {
  it('encodes format, set id, threshold, x and y exactly (2-of-3 of two bytes)', () => {
    const shares = split(Uint8Array.of(0x42, 0x99), 3, 2, counter(0x10));
    assert.deepEqual(shares, ['ARAREhMCAVaM', 'ARAREhMCAmqz', 'ARAREhMCA36m']);
    // Set id 10 11 12 13; the coefficients 0x14 (byte 0) and 0x15 (byte 1): y = secret ^ c * x.
    const bytes = Buffer.from(shares[1]!, 'base64');
    assert.deepEqual(
      [...bytes],
      [0x01, 0x10, 0x11, 0x12, 0x13, 0x02, 0x02, 0x42 ^ mulReference(0x14, 2), 0x99 ^ mulReference(0x15, 2)],
    );
    const decoded = shares.map((s) => decodeShare(s, 2));
    assert.deepEqual(decoded[2], {
      setId: Uint8Array.of(0x10, 0x11, 0x12, 0x13),
      threshold: 2,
      x: 3,
      y: Uint8Array.of(0x42 ^ mulReference(0x14, 3), 0x99 ^ mulReference(0x15, 3)),
    });
    assert.deepEqual(combine([decoded[2]!, decoded[0]!]), Uint8Array.of(0x42, 0x99));
  });

  it('encodes a 3-of-4 split of three bytes exactly and rebuilds it from any three', () => {
    const shares = split(Uint8Array.of(0x00, 0xff, 0x01), 4, 3, counter(0xa0));
    assert.deepEqual(shares, ['AaChoqMDAQH+AA==', 'AaChoqMDAvEC2A==', 'AaChoqMDA/AD2Q==', 'AaChoqMDBBjP6Q==']);
    const d = shares.map((s) => decodeShare(s, 3));
    for (const pick of [
      [0, 1, 2],
      [3, 1, 0],
      [2, 3, 1],
      [0, 2, 3],
    ]) {
      assert.deepEqual(combine(pick.map((i) => d[i]!)), Uint8Array.of(0x00, 0xff, 0x01), String(pick));
    }
  });
});

describe('shamir: split parameters', () => {
  const secret = Uint8Array.of(7);

  it('refuses an empty secret and a secret that is not bytes', () => {
    for (const bad of [new Uint8Array(0), 'secret', [1, 2], undefined]) {
      assert.throws(
        () => split(bad as Uint8Array, 3, 2),
        (e: unknown) => e instanceof RangeError && e.message === 'secret must be non-empty bytes',
        String(bad),
      );
    }
  });

  it('refuses threshold 0, a threshold above the shares, 256 shares and non-integers', () => {
    for (const [shares, threshold] of [
      [3, 0],
      [3, 4],
      [1, 2],
      [256, 2],
      [256, 256],
      [0, 0],
      [3, -1],
      [2.5, 2],
      [3, 1.5],
      [Number.NaN, 1],
      [3, Number.NaN],
    ]) {
      assert.throws(
        () => split(secret, shares!, threshold!),
        invalid(/^shares and threshold must satisfy 1 <= threshold <= shares <= 255$/),
        `${shares} shares, threshold ${threshold}`,
      );
    }
  });

  it('accepts the bounds: 1 of 1, 255 shares with threshold 1 and 255, threshold equal to shares', () => {
    assert.equal(MAX_SHARES, 255);
    assert.deepEqual(combine([decodeShare(split(secret, 1, 1)[0]!, 1)]), secret);
    const all = split(secret, 255, 255).map((s) => decodeShare(s, 1));
    assert.equal(all.length, 255);
    assert.deepEqual(
      all.map((s) => s.x),
      Array.from({ length: 255 }, (_, i) => i + 1),
    );
    assert.deepEqual(combine(all), secret);
    assert.throws(() => combine(all.slice(1)), invalid(/^not enough shares$/));
    const one = split(secret, 255, 1).map((s) => decodeShare(s, 1));
    assert.deepEqual(combine([one[254]!]), secret);
    assert.deepEqual(one[254]!.y, secret, 'threshold 1: every share is the secret');
    assert.deepEqual(combine(split(secret, 4, 4).map((s) => decodeShare(s, 1))), secret);
  });
});

describe('shamir: decodeShare', () => {
  it('takes a share of exactly 1,024 base64 characters and refuses a longer one, however well formed', () => {
    // 7 header bytes + 761 = 768 bytes = 1,024 characters; + 762 = 769 bytes = 1,028 characters.
    const at = split(new Uint8Array(761).fill(3), 2, 2)[0]!;
    assert.equal(at.length, 1024);
    assert.equal(decodeShare(at, 761).y.length, 761);
    const over = split(new Uint8Array(762).fill(3), 2, 2)[0]!;
    assert.equal(over.length, 1028);
    assert.throws(() => decodeShare(over, 762), malformed);
  });

  it('refuses a share that is not a string, without a TypeError', () => {
    for (const bad of [undefined, null, 42, ['AQ=='], Buffer.from('x')])
      assert.throws(() => decodeShare(bad as unknown as string, 1), malformed);
  });

  it('refuses threshold 0 and x 0 in the share bytes', () => {
    const bytes = Buffer.from(split(Uint8Array.of(1, 2), 3, 2)[0]!, 'base64');
    const threshold0 = Buffer.from(bytes);
    threshold0[5] = 0;
    assert.throws(() => decodeShare(threshold0.toString('base64'), 2), malformed);
    const x0 = Buffer.from(bytes);
    x0[6] = 0;
    assert.throws(() => decodeShare(x0.toString('base64'), 2), malformed);
    assert.equal(decodeShare(bytes.toString('base64'), 2).threshold, 2);
  });
});

describe('shamir: combine checks', () => {
  const secret = Uint8Array.of(9, 8, 7);
  const shares = () => split(secret, 4, 2).map((s) => decodeShare(s, 3));

  it('refuses shares that differ in threshold, length or any byte of the set id', () => {
    const [a, b] = shares() as [Share, Share];
    assert.deepEqual(combine([a, b]), secret, 'control');
    const other = invalid(/^shares belong to different key splits$/);
    assert.throws(() => combine([a, { ...b, threshold: 3 }, { ...b, x: 9, threshold: 3 }]), other);
    assert.throws(() => combine([a, { ...b, y: b.y.subarray(0, 2) }]), other);
    for (let i = 0; i < 4; i++) {
      const setId = Uint8Array.from(a.setId);
      setId[i]! ^= 1;
      assert.throws(() => combine([a, { ...b, setId }]), other, `set id byte ${i}`);
    }
  });

  it('refuses a share with x = 0 and a repeated x', () => {
    const [a, b] = shares() as [Share, Share];
    assert.throws(() => combine([a, { ...b, x: 0 }]), invalid(/^duplicate or invalid share$/));
    assert.throws(() => combine([{ ...a, x: 0 }, b]), invalid(/^duplicate or invalid share$/));
    assert.throws(() => combine([a, { ...b, x: a.x }]), invalid(/^duplicate or invalid share$/));
  });

  it('needs at least threshold shares, and interpolates the first threshold of them only', () => {
    const [a, b, c] = shares() as [Share, Share, Share];
    assert.throws(() => combine([]), invalid(/^not enough shares$/));
    assert.throws(() => combine([a]), invalid(/^not enough shares$/));
    const corrupted = { ...c, y: Uint8Array.from(c.y, (v) => v ^ 0x5a) };
    assert.deepEqual(combine([a, b, corrupted]), secret, 'a share beyond the threshold is not used');
    assert.notDeepEqual(combine([a, corrupted, b]), secret, 'the same share within the threshold is');
  });
});

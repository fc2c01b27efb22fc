import assert from 'node:assert/strict';
import fc from 'fast-check';
import { combine, decodeShare, split } from '../../../server/crypto/shamir.js';

const SECRET_LENGTH = 32;

describe('shamir: threshold reconstruction', () => {
  it('rebuilds the secret from any t of n shares, in any order, and not from t-1', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: SECRET_LENGTH, maxLength: SECRET_LENGTH }),
        fc.integer({ min: 1, max: 8 }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 1, max: n }))),
        fc.infiniteStream(fc.nat()),
        (secret, [n, t], picks) => {
          const shares = split(secret, n, t).map((s) => decodeShare(s, SECRET_LENGTH));
          const order = [...shares];
          const it = picks[Symbol.iterator]();
          for (let i = order.length - 1; i > 0; i--) {
            const j = it.next().value! % (i + 1);
            [order[i], order[j]] = [order[j]!, order[i]!];
          }
          assert.deepEqual(combine(order.slice(0, t)), secret);
          if (t > 1) assert.throws(() => combine(order.slice(0, t - 1)), /not enough shares/);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('t-1 shares are consistent with every candidate secret (perfect secrecy, one byte, t=2)', () => {
    // With one share of a 2-of-n split, y = secret ^ (coefficient * x): every secret is possible,
    // so a forged second share can be chosen to "reconstruct" any value; the vault therefore
    // checks the result against stored ciphertext and never trusts a combination by itself.
    const [first] = split(Uint8Array.of(42), 3, 2).map((s) => decodeShare(s, 1));
    const candidates = new Set<number>();
    for (let y2 = 0; y2 < 256; y2++) {
      candidates.add(combine([first!, { ...first!, x: 2, y: Uint8Array.of(y2) }])[0]!);
    }
    assert.equal(candidates.size, 256);
  });

  it('refuses malformed shares: bad base64, wrong length, extra bytes, x = 0, wrong format byte', () => {
    const good = split(new Uint8Array(SECRET_LENGTH).fill(7), 3, 2)[0]!;
    const bytes = Buffer.from(good, 'base64');
    const variants = [
      'not base64!!',
      bytes.subarray(0, bytes.length - 1).toString('base64'),
      Buffer.concat([bytes, Buffer.of(0)]).toString('base64'),
      Buffer.from(bytes).fill(0, 6, 7).toString('base64'),
      Buffer.from(bytes).fill(9, 0, 1).toString('base64'),
      `${good} `,
    ];
    for (const v of variants) assert.throws(() => decodeShare(v, SECRET_LENGTH), /share is malformed/);
  });

  it('refuses duplicate shares and shares of two different splits', () => {
    const secret = new Uint8Array(SECRET_LENGTH).fill(1);
    const a = split(secret, 3, 2).map((s) => decodeShare(s, SECRET_LENGTH));
    const b = split(secret, 3, 2).map((s) => decodeShare(s, SECRET_LENGTH));
    assert.throws(() => combine([a[0]!, a[0]!]), /duplicate/);
    assert.throws(() => combine([a[0]!, b[1]!]), /different key splits/);
  });

  it('draws every coefficient uniformly, the top one included (chi-square over 20,000 splits)', () => {
    // 2-of-2 split of a fixed byte: y(1) = secret ^ c1, so y(1) is uniform iff c1 is.
    const counts = new Array<number>(256).fill(0);
    const runs = 20_000;
    for (let i = 0; i < runs; i++) counts[decodeShare(split(Uint8Array.of(0x5a), 2, 2)[0]!, 1).y[0]!]!++;
    const expected = runs / 256;
    const chi2 = counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
    assert.ok(chi2 < 350, `chi-square ${chi2.toFixed(1)} for 255 degrees of freedom`);
    assert.ok(counts[0]! > 0, 'a zero top coefficient happens too');
  });
});

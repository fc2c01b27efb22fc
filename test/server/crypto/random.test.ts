import assert from 'node:assert/strict';
import { assertRandomHealthy, randomInt, systemRandom } from '../../../server/crypto/random.js';
import { CofferError } from '../../../server/errors.js';

/**
 * The system random source (server/crypto/random.ts): small draws come from a pool, larger ones
 * straight from the CSPRNG. Every draw is a fresh array of its own, never a view of the pool,
 * and no two draws share bytes, across pool refills too.
 */
describe('system random source', () => {
  it('gives each draw its own fresh array of the asked length, for every size up to and past the pooled ones', () => {
    for (const length of [0, 1, 12, 24, 32, 63, 64, 65, 100, 4096, 5000]) {
      const draw = systemRandom(length);
      assert.ok(draw instanceof Uint8Array);
      assert.equal(draw.length, length);
      assert.equal(draw.byteOffset, 0, 'not a view into a shared buffer');
      assert.equal(draw.buffer.byteLength, length, 'owns its whole buffer');
    }
  });

  it('never repeats: 2,000 nonce-sized draws (about twelve pool refills) are all distinct and none is zero', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      const draw = systemRandom(24);
      assert.ok(
        draw.some((b) => b !== 0),
        'a zeroized (already handed out) region was handed out again',
      );
      seen.add(Buffer.from(draw).toString('hex'));
    }
    assert.equal(seen.size, 2_000);
  });

  it('draws of mixed sizes that straddle a refill do not overlap: no 8-byte window of one appears in another', () => {
    const draws = Array.from({ length: 600 }, (_, i) => systemRandom([7, 24, 32, 64, 1][i % 5]!));
    const windows = new Map<string, number>();
    draws.forEach((d, i) => {
      for (let at = 0; at + 8 <= d.length; at++) {
        const key = Buffer.from(d.subarray(at, at + 8)).toString('hex');
        const other = windows.get(key);
        assert.ok(other === undefined || other === i, `draws ${other} and ${i} share bytes`);
        windows.set(key, i);
      }
    });
  });

  it('a draw the caller zeroizes does not touch the next one', () => {
    const a = systemRandom(32);
    a.fill(0);
    const b = systemRandom(32);
    assert.ok(b.some((x) => x !== 0));
  });

  it('refuses a length that is not a non-negative integer', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      assert.throws(() => systemRandom(bad), RangeError);
    }
  });

  it('passes the start-up health check; a constant or repeating source fails it', () => {
    assertRandomHealthy(systemRandom);
    assert.throws(
      () => assertRandomHealthy((n) => new Uint8Array(n).fill(7)),
      (e) => e instanceof CofferError && e.code === 'internal',
    );
    const fixed = Uint8Array.from({ length: 32 }, (_, i) => i);
    assert.throws(() => assertRandomHealthy(() => Uint8Array.from(fixed)), CofferError);
  });

  it('randomInt stays in range and reaches every value', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 2_000; i++) {
      const v = randomInt(10);
      assert.ok(Number.isInteger(v) && v >= 0 && v < 10);
      seen.add(v);
    }
    assert.equal(seen.size, 10);
  });
});

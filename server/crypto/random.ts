import { randomFillSync } from 'node:crypto';
import { CofferError } from '../errors.js';
import { offHeapBytes } from './bytes.js';

/** Draws `length` bytes from the operating system's CSPRNG (node:crypto). */
export type RandomSource = (length: number) => Uint8Array;

/**
 * Small draws (nonces, DEKs, ids: a write takes five) come from a pool filled by one CSPRNG
 * call per POOL_BYTES: each call into OpenSSL costs about 4 us whatever its size, a copy out
 * of the pool 0.3 us. Bytes handed out are zeroized in the pool at once, so a draw exists
 * only in its caller's copy; what the pool still holds has never been used. Larger draws go
 * to the CSPRNG directly.
 */
const POOL_BYTES = 4096;
const MAX_POOLED = 64;
const pool = new Uint8Array(POOL_BYTES);
let poolAt = POOL_BYTES;

export const systemRandom: RandomSource = (length) => {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('length must be a non-negative integer');
  // Outside V8's heap even when small: a draw is often a key.
  const out = offHeapBytes(length);
  if (length > MAX_POOLED) return randomFillSync(out);
  if (poolAt + length > POOL_BYTES) {
    randomFillSync(pool);
    poolAt = 0;
  }
  out.set(pool.subarray(poolAt, poolAt + length));
  pool.fill(0, poolAt, poolAt + length);
  poolAt += length;
  return out;
};

/**
 * Start-up health test for a random source: two 32-byte draws must differ and neither may be
 * constant. A stubbed or broken generator makes the vault refuse to unseal (SECURITY E7).
 */
export function assertRandomHealthy(random: RandomSource): void {
  const a = random(32);
  const b = random(32);
  const constant = (x: Uint8Array) => x.every((v) => v === x[0]);
  if (a.length !== 32 || b.length !== 32 || constant(a) || constant(b) || equalBytes(a, b)) {
    throw new CofferError('internal', 'random number generator failed its health check');
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Random integer in [0, max) without modulo bias (rejection sampling over bytes). */
export function randomInt(max: number, random: RandomSource = systemRandom): number {
  if (!Number.isInteger(max) || max < 1 || max > 256) throw new RangeError('max must be an integer in [1, 256]');
  const limit = 256 - (256 % max);
  for (;;) {
    const byte = random(1)[0]!;
    if (byte < limit) return byte % max;
  }
}

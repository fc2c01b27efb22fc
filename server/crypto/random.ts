import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { CofferError } from '../errors.js';

/** Draws `length` bytes from the operating system's CSPRNG (node:crypto). */
export type RandomSource = (length: number) => Uint8Array;

export const systemRandom: RandomSource = (length) => {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError('length must be a non-negative integer');
  const buf = nodeRandomBytes(length);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
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

import { CofferError } from '../errors.js';
import { concatBytes, fromBase64, toBase64, zeroize } from './bytes.js';
import { systemRandom, type RandomSource } from './random.js';

/**
 * Shamir secret sharing over GF(2^8) (AES polynomial x^8+x^4+x^3+x+1).
 *
 * Field arithmetic uses no lookup tables and no secret-dependent branches, so timing does not
 * depend on share or secret bytes (CVE-2023-25000). Every polynomial coefficient, the top one
 * included, is uniform over [0, 255] (RUSTSEC-2024-0398).
 *
 * Share encoding (base64 on the wire):
 *   format (1) | set id (4) | threshold (1) | x (1) | y (secret length)
 * The set id ties the shares of one split together, so shares of different splits (e.g. before
 * and after a rekey) are refused before combining instead of yielding a wrong key.
 */
const SHARE_FORMAT = 0x01;
const SHARE_HEADER = 7;
export const MAX_SHARES = 255;

/** Multiplication in GF(2^8), constant time: eight fixed rounds, masks instead of branches. */
export function gfMul(a: number, b: number): number {
  let product = 0;
  for (let i = 0; i < 8; i++) {
    product ^= -(b & 1) & a;
    const carry = -((a >> 7) & 1) & 0x1b;
    a = ((a << 1) & 0xff) ^ carry;
    b >>= 1;
  }
  return product & 0xff;
}

/** Multiplicative inverse as a^254 (fixed square-and-multiply chain; inverse of 0 is 0). */
export function gfInv(a: number): number {
  let result = 1;
  let base = a;
  for (let e = 254, i = 0; i < 8; i++, e >>= 1) {
    const m = gfMul(result, base);
    const take = -(e & 1);
    result = (m & take) | (result & ~take & 0xff);
    base = gfMul(base, base);
  }
  return result & 0xff;
}

export interface Share {
  setId: Uint8Array;
  threshold: number;
  x: number;
  y: Uint8Array;
}

export function split(
  secret: Uint8Array,
  shares: number,
  threshold: number,
  random: RandomSource = systemRandom,
): string[] {
  if (!(secret instanceof Uint8Array) || secret.length < 1) throw new RangeError('secret must be non-empty bytes');
  if (
    !Number.isInteger(shares) ||
    !Number.isInteger(threshold) ||
    threshold < 1 ||
    threshold > shares ||
    shares > MAX_SHARES
  ) {
    throw new CofferError('invalid_request', 'shares and threshold must satisfy 1 <= threshold <= shares <= 255');
  }
  const setId = random(4);
  const ys = Array.from({ length: shares }, () => new Uint8Array(secret.length));
  const coefficients = new Uint8Array(threshold);
  for (let byte = 0; byte < secret.length; byte++) {
    coefficients[0] = secret[byte]!;
    coefficients.set(random(threshold - 1), 1);
    for (let s = 0; s < shares; s++) {
      const x = s + 1;
      let y = 0;
      for (let c = threshold - 1; c >= 0; c--) y = gfMul(y, x) ^ coefficients[c]!;
      ys[s]![byte] = y;
    }
  }
  zeroize(coefficients);
  const encoded = ys.map((y, s) =>
    toBase64(concatBytes(Uint8Array.of(SHARE_FORMAT), setId, Uint8Array.of(threshold, s + 1), y)),
  );
  zeroize(...ys);
  return encoded;
}

/** Parses one base64 share; a malformed share is `invalid_request` (the bytes are never echoed). */
export function decodeShare(encoded: string, secretLength: number): Share {
  const bytes = typeof encoded === 'string' && encoded.length <= 1024 ? fromBase64(encoded) : undefined;
  if (!bytes || bytes.length !== SHARE_HEADER + secretLength || bytes[0] !== SHARE_FORMAT) {
    throw new CofferError('invalid_request', 'share is malformed: expected a base64 share produced by init');
  }
  const threshold = bytes[5]!;
  const x = bytes[6]!;
  if (x === 0 || threshold === 0)
    throw new CofferError('invalid_request', 'share is malformed: expected a base64 share produced by init');
  return { setId: bytes.slice(1, 5), threshold, x, y: bytes.slice(SHARE_HEADER) };
}

export const sameSet = (a: Share, b: Share): boolean =>
  a.threshold === b.threshold && a.y.length === b.y.length && a.setId.every((v, i) => v === b.setId[i]);

/** Lagrange interpolation at x = 0. Callers check set, distinct x and count first. */
export function combine(shares: Share[]): Uint8Array {
  const first = shares[0];
  if (!first || shares.length < first.threshold) throw new CofferError('invalid_request', 'not enough shares');
  const xs = new Set<number>();
  for (const s of shares) {
    if (!sameSet(first, s)) throw new CofferError('invalid_request', 'shares belong to different key splits');
    if (s.x === 0 || xs.has(s.x)) throw new CofferError('invalid_request', 'duplicate or invalid share');
    xs.add(s.x);
  }
  const used = shares.slice(0, first.threshold);
  const secret = new Uint8Array(first.y.length);
  for (let i = 0; i < used.length; i++) {
    // basis_i(0) = prod_{j != i} x_j / (x_j - x_i); subtraction is XOR in GF(2^8).
    let num = 1;
    let den = 1;
    for (let j = 0; j < used.length; j++) {
      if (j === i) continue;
      num = gfMul(num, used[j]!.x);
      den = gfMul(den, used[j]!.x ^ used[i]!.x);
    }
    const basis = gfMul(num, gfInv(den));
    const y = used[i]!.y;
    for (let b = 0; b < secret.length; b++) secret[b] = secret[b]! ^ gfMul(y[b]!, basis);
  }
  return secret;
}

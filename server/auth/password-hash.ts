import { scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { fromBase64, toBase64 } from '../crypto/bytes.js';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { CofferError } from '../errors.js';

/**
 * Password hashing with scrypt (N=2^15, r=8, p=3: 32 MiB; OWASP's equivalent of N=2^17, p=1 at a
 * quarter of the memory) through node:crypto's asynchronous
 * API, which runs on the libuv thread pool: a login flood costs CPU but never blocks the event
 * loop that serves secret reads. At most two hashes run at once, so the pool always keeps
 * threads for the file writes (audit fdatasync) every request waits on; a longer queue is
 * refused with 429. Format: `scrypt$N$r$p$salt$hash` (base64).
 */
const scryptRaw = promisify(scrypt) as (pw: string, salt: Uint8Array, len: number, opts: object) => Promise<Buffer>;
const MAX_RUNNING = 2;
const MAX_WAITING = 64;
let running = 0;
const waiting: (() => void)[] = [];

async function scryptAsync(pw: string, salt: Uint8Array, len: number, opts: object): Promise<Buffer> {
  if (running < MAX_RUNNING) running++;
  else if (waiting.length >= MAX_WAITING)
    throw new CofferError('rate_limited', 'too many logins in progress: retry shortly');
  else await new Promise<void>((resolve) => waiting.push(resolve)); // the finishing hash hands over its slot
  try {
    return await scryptRaw(pw, salt, len, opts);
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

const PARAMS = { N: 2 ** 15, r: 8, p: 3, maxmem: 64 * 1024 * 1024 };

export async function hashPassword(password: string, random: RandomSource = systemRandom): Promise<string> {
  const salt = random(16);
  const hash = await scryptAsync(password, salt, 32, PARAMS);
  return `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${toBase64(salt)}$${hash.toString('base64')}`;
}

/** Verifies in constant time; a malformed stored hash never verifies. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, saltB64, hashB64] = stored.split('$');
  const salt = fromBase64(saltB64 ?? '');
  const expected = fromBase64(hashB64 ?? '');
  if (scheme !== 'scrypt' || !salt || !expected || expected.length !== 32) return false;
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  const actual = await scryptAsync(password, salt, 32, { ...params, maxmem: PARAMS.maxmem });
  // A hash with a smaller p than today's costs less: the rest is spent on a decoy, so a user
  // whose hash predates the change answers as slowly as an unknown one (whose decoy is today's).
  if (params.N === PARAMS.N && params.r === PARAMS.r && params.p < PARAMS.p)
    await scryptAsync(password, salt, 32, { ...params, p: PARAMS.p - params.p, maxmem: PARAMS.maxmem });
  return timingSafeEqual(actual, expected);
}

/** Whether a stored hash was made with other parameters than today's (then a login replaces it). */
export function needsRehash(stored: string): boolean {
  const [scheme, n, r, p] = stored.split('$');
  return scheme !== 'scrypt' || Number(n) !== PARAMS.N || Number(r) !== PARAMS.r || Number(p) !== PARAMS.p;
}

/** A hash that verifies nothing, so unknown users cost the same time as known ones. */
export const DECOY_HASH = `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$AAAAAAAAAAAAAAAAAAAAAA==$${Buffer.alloc(32).toString('base64')}`;

import { timingSafeEqual } from 'node:crypto';

/** Overwrites key material in place. Call it as soon as a plain key is no longer needed. */
export function zeroize(...buffers: (Uint8Array | undefined)[]): void {
  for (const b of buffers) b?.fill(0);
}

/** Constant-time equality for secrets of any length (the length itself is not hidden). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

const encoder = new TextEncoder();
export const utf8 = (s: string): Uint8Array => encoder.encode(s);

/**
 * Length-prefixed UTF-8 encoding of context fields (u32 BE length, bytes), so ("ab","c") and
 * ("a","bc") never collide. Built in one buffer from node's pool (a context is associated
 * data, never secret; an ArrayBuffer of its own costs 300 ns or more to allocate), with ASCII
 * copied in JS: four contexts are built per secret read.
 */
export function encodeContext(...fields: (string | number)[]): Uint8Array {
  const strings = new Array<string>(fields.length);
  let length = 0;
  for (let i = 0; i < fields.length; i++) {
    const s = String(fields[i]);
    strings[i] = s;
    length += 4 + Buffer.byteLength(s, 'utf8');
  }
  const out = Buffer.allocUnsafe(length);
  let offset = 0;
  for (const s of strings) {
    const written = writeUtf8(out, s, offset + 4);
    writeU32(out, offset, written);
    offset += 4 + written;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Writes `s` as UTF-8 at `at` (room for it is there) and returns its length in bytes. */
function writeUtf8(out: Buffer, s: string, at: number): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return out.write(s, at, 'utf8'); // not ASCII: node's encoder, from the start
    out[at + i] = c;
  }
  return s.length;
}

/** An unsigned 32-bit integer, big-endian, at `at`. */
export function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = value >>> 16;
  out[at + 2] = value >>> 8;
  out[at + 3] = value;
}

/** The unsigned 32-bit big-endian integer at `at` (the caller has checked the length). */
export const readU32 = (b: Uint8Array, at: number): number =>
  ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

/**
 * Typed arrays of this many bytes or fewer may live inside V8's heap (V8's on-heap limit), and
 * V8 moves those, leaving the old bytes behind where no zeroize reaches them: when it compacts
 * the heap, and when native code is handed one.
 */
export const ON_HEAP_MAX = 64;

/** `length` zero bytes in a buffer of their own outside V8's heap, whatever the length: for key material. */
export const offHeapBytes = (length: number): Uint8Array => new Uint8Array(new ArrayBuffer(length));

/**
 * `length` bytes from node's pool for data that is not secret or that the caller overwrites in
 * full (an AEAD's output), as a plain Uint8Array. A zero-filled ArrayBuffer of its own costs
 * 300-600 ns per allocation, and a read allocates eight of these.
 */
export function pooledBytes(length: number): Uint8Array {
  const b = Buffer.allocUnsafe(length);
  return new Uint8Array(b.buffer, b.byteOffset, length);
}

export const toBase64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/** Strict base64 decode: rejects anything Buffer would silently skip or pad. */
export function fromBase64(s: string): Uint8Array | undefined {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) return undefined;
  const buf = Buffer.from(s, 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

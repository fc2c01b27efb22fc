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
 * ("a","bc") never collide. Built in one buffer: this runs twice per secret read.
 */
export function encodeContext(...fields: (string | number)[]): Uint8Array {
  const strings = fields.map(String);
  let length = 0;
  for (const s of strings) length += 4 + Buffer.byteLength(s, 'utf8');
  const out = Buffer.allocUnsafe(length);
  let offset = 0;
  for (const s of strings) {
    const written = out.write(s, offset + 4, 'utf8');
    out.writeUInt32BE(written, offset);
    offset += 4 + written;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

export const toBase64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/** Strict base64 decode: rejects anything Buffer would silently skip or pad. */
export function fromBase64(s: string): Uint8Array | undefined {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) return undefined;
  const buf = Buffer.from(s, 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

import type { z } from 'zod';
import { CofferError } from '../errors.js';

/**
 * How a stored record is turned into bytes and back. `decode` throws `RecordInvalid` on
 * anything that is not a well-formed record of its kind (never a partly filled object), so a
 * record that opened but does not parse is reported like any other integrity failure.
 */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** A stored value that is not a well-formed record of its table (the reason is for the log only). */
export class RecordInvalid extends Error {}

const text = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');

/**
 * JSON checked against a zod schema when read. Records are written only by this server and
 * authenticated by the barrier, so the schema is the contract of the record's shape, not a
 * defence against hostile input; unknown fields pass through unchanged (a record written by a
 * newer version keeps them when an older one rewrites it).
 */
export function jsonCodec<S extends z.ZodType>(schema: S): Codec<z.output<S>> {
  return {
    encode: (value) => Buffer.from(JSON.stringify(value), 'utf8'),
    decode: (bytes) => {
      let raw: unknown;
      try {
        raw = JSON.parse(text(bytes));
      } catch {
        throw new RecordInvalid('not JSON');
      }
      const parsed = schema.safeParse(raw);
      if (!parsed.success)
        throw new RecordInvalid(
          `not of its schema: ${parsed.error.issues[0]?.path.join('.') || 'record'} ${parsed.error.issues[0]?.message ?? ''}`,
        );
      return parsed.data;
    },
  };
}

/** Decodes a stored record; a malformed one is `integrity_error` naming its kind (the key and reason go to the log). */
export function decodeStored<T>(codec: Codec<T>, bytes: Uint8Array, what: string, key: string): T {
  try {
    return codec.decode(bytes);
  } catch (e) {
    if (e instanceof RecordInvalid)
      throw new CofferError('integrity_error', `a stored ${what} failed its integrity check`, `${key}: ${e.message}`);
    throw e;
  }
}

/** The bytes as they are (records with a binary format of their own, such as secret versions). */
export const bytesCodec: Codec<Uint8Array> = { encode: (v) => v, decode: (b) => b };

/** A UTF-8 string. */
export const stringCodec: Codec<string> = { encode: (v) => Buffer.from(v, 'utf8'), decode: text };

/** A non-negative integer in decimal (token-state records: the time, in seconds, a record matters until). */
export const decimalCodec: Codec<number> = {
  encode: (v) => Buffer.from(String(v), 'utf8'),
  decode: (bytes) => {
    const s = text(bytes);
    if (!/^(0|[1-9][0-9]{0,15})$/.test(s)) throw new RecordInvalid('not a decimal integer');
    return Number(s);
  },
};

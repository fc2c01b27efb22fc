import { z } from 'zod';
import { toBase64 } from '../crypto/bytes.js';

/**
 * The stored form of a change-log record (docs/storage.md "Change log"): what one mutation
 * wrote, kept for replicas to replay. Written by every mutation, read only by the shipper, so
 * it is binary: the values go in as the bytes they are, with no base64 or JSON on the write
 * path (11 us and a third more bytes a write, for LevelDB to write and compact). The shipper's
 * segments carry the JSON form (`ChangeRecord`), made when it reads.
 *
 *   0x01 | seq f64 | time f64 | count u32 | count x (0x00 put | 0x01 del, key length u16, key UTF-8, put: value length u32, value)
 *
 * all big-endian. Records written before this format are JSON (they start with `{`) and still read.
 */

const FORMAT = 0x01;
const PUT = 0x00;
const DEL = 0x01;
const HEAD_BYTES = 1 + 8 + 8 + 4;
const MAX_KEY_BYTES = 0xffff;

export type StoredOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

const legacyRecord = z.strictObject({
  seq: z.number().int().positive(),
  time: z.number(),
  ops: z.array(
    z.discriminatedUnion('type', [
      z.strictObject({ type: z.literal('put'), key: z.string(), value: z.string() }),
      z.strictObject({ type: z.literal('del'), key: z.string() }),
    ]),
  ),
});
/** A change-log record as the shipper sends it: values in base64. */
export type ChangeRecord = z.infer<typeof legacyRecord>;

export function encodeChange(seq: number, time: number, ops: readonly StoredOp[]): Buffer {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError('seq must be a positive integer');
  if (!Number.isFinite(time)) throw new RangeError('time must be a finite number');
  let size = HEAD_BYTES;
  for (const op of ops) {
    const n = Buffer.byteLength(op.key, 'utf8');
    if (n > MAX_KEY_BYTES) throw new RangeError(`a change-log key is at most ${MAX_KEY_BYTES} bytes`);
    size += 1 + 2 + n + (op.type === 'put' ? 4 + op.value.length : 0);
  }
  // Every byte is written below; the values are sealed bytes, never plaintext.
  const out = Buffer.allocUnsafe(size);
  out[0] = FORMAT;
  out.writeDoubleBE(seq, 1);
  out.writeDoubleBE(time, 9);
  out.writeUInt32BE(ops.length, 17);
  let at = HEAD_BYTES;
  for (const op of ops) {
    out[at] = op.type === 'put' ? PUT : DEL;
    const keyLength = out.write(op.key, at + 3, 'utf8');
    out.writeUInt16BE(keyLength, at + 1);
    at += 3 + keyLength;
    if (op.type === 'put') {
      out.writeUInt32BE(op.value.length, at);
      out.set(op.value, at + 4);
      at += 4 + op.value.length;
    }
  }
  return out;
}

/** The record stored under `logKey(seq)`; throws on anything that is not one, of either format. */
export function decodeChange(stored: Uint8Array): ChangeRecord {
  const bytes = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
  if (bytes[0] === 0x7b) return legacyRecord.parse(JSON.parse(bytes.toString('utf8')));
  const fail = (why: string): never => {
    throw new Error(`change-log record unreadable: ${why}`);
  };
  if (bytes.length < HEAD_BYTES) fail('shorter than its head');
  if (bytes[0] !== FORMAT) fail(`unknown format ${bytes[0]}`);
  const seq = bytes.readDoubleBE(1);
  const time = bytes.readDoubleBE(9);
  const count = bytes.readUInt32BE(17);
  if (!Number.isSafeInteger(seq) || seq < 1) fail('sequence number is not a positive integer');
  if (!Number.isFinite(time)) fail('time is not a number');
  const ops: ChangeRecord['ops'] = [];
  let at = HEAD_BYTES;
  const need = (n: number) => at + n <= bytes.length || fail('cut short');
  for (let i = 0; i < count; i++) {
    need(3);
    const type = bytes.readUInt8(at);
    const keyLength = bytes.readUInt16BE(at + 1);
    at += 3;
    need(keyLength);
    const key = bytes.toString('utf8', at, at + keyLength);
    at += keyLength;
    if (type === DEL) {
      ops.push({ type: 'del', key });
    } else if (type === PUT) {
      need(4);
      const valueLength = bytes.readUInt32BE(at);
      at += 4;
      need(valueLength);
      ops.push({ type: 'put', key, value: toBase64(bytes.subarray(at, at + valueLength)) });
      at += valueLength;
    } else {
      fail(`unknown operation ${type}`);
    }
  }
  if (at !== bytes.length) fail('bytes after its last operation');
  return { seq, time, ops };
}

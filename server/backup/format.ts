import { createHash } from 'node:crypto';
import { z } from 'zod';
import { constantTimeEqual, encodeContext, utf8 } from '../crypto/bytes.js';
import { CofferError } from '../errors.js';
import { BACKUP_IDENTITY_KEY } from '../store/keys.js';
import {
  KIND,
  ReplicationError,
  deriveKeys,
  openObject,
  sealObject,
  type ReplicationKeys,
} from '../replication/format.js';

/**
 * The backup file (`GET /v1/sys/backup`, `coffer backup`, `coffer restore`):
 *
 *   file    = "COFFERBK" | version (1) | u32 BE header length | header JSON | record* | end
 *   record  = u32 BE length | chunk object
 *   end     = u32 BE 0 | SHA-256 of every byte before it
 *
 * The header is in clear: a restore needs it before it can open anything (which vault, which
 * key source, the backup key wrapped by the master key, and the identity entries a software
 * provider needs to open its master key versions: the same things a replication manifest
 * publishes). It is authenticated twice: the trailing SHA-256 covers it (catches accidents;
 * a restore checks it before it writes anything, and when the key source does not open the
 * backup key, to tell damage from another vault's backup: restore.ts), and every chunk binds
 * its SHA-256 in its AAD (catches a forger who recomputed the digest).
 *
 * A chunk object is replication's framing (server/replication/format.ts: XChaCha20-Poly1305
 * with its header as AAD, padded to 1 KiB, HMAC-SHA256 over it all), kind `backupChunk`,
 * under working keys derived from a fresh backup key with the label `coffer/backup/v1`. Its
 * header binds vault id, backup id, chunk index, the file header's hash and `last`, so chunks
 * cannot be reordered, dropped, moved between backups or vaults, or cut off at a chunk
 * boundary without the restore noticing. The payload is store entries, binary:
 *   entry = u32 BE key length | key (UTF-8) | u32 BE value length | value
 */
export const MAGIC = utf8('COFFERBK');
export const FORMAT_VERSION = 1;
export const KEY_LABEL = 'coffer/backup/v1';
/** Plaintext bytes per chunk before it is sealed (about; one entry may overshoot). */
export const CHUNK_BYTES = 1 << 20;
/** Refuses absurd lengths before allocating: a chunk is about CHUNK_BYTES plus one 64 KiB value. */
const MAX_RECORD = 8 << 20;
const MAX_HEADER = 1 << 20;
export const PREAMBLE_LENGTH = MAGIC.length + 1 + 4;
const PREAMBLE = PREAMBLE_LENGTH;

const hex32 = z.string().regex(/^[0-9a-f]{32}$/);
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const b64 = z
  .string()
  .max(1 << 18)
  .regex(/^[A-Za-z0-9+/]*={0,2}$/);

/**
 * Identity entries the header may carry: the seal configuration, the master key versions
 * wrapped by the root key and the rights of imported (BYOK) versions. Nothing else: the
 * restore writes them before the body is verified, so they are kept to what opening needs.
 */
export const IDENTITY_KEY = BACKUP_IDENTITY_KEY;

export const backupHeader = z.strictObject({
  format: z.literal(FORMAT_VERSION),
  /** The vault (cluster) id. */
  vault: hex32,
  /** Random per backup: binds the key context and every chunk. */
  backup: hex32,
  /** The change-log sequence number the snapshot is at. */
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  created_at: z.iso.datetime(),
  /** The vault's key source kind (`shamir`, `file`, `env`, `passphrase`, `pkcs11`). */
  source: z.enum(['shamir', 'file', 'env', 'passphrase', 'pkcs11']),
  /** The backup key, wrapped by the master key through the provider (context: backupKeyContext). */
  key: b64,
  identity: z.record(z.string().regex(IDENTITY_KEY), b64),
});
export type BackupHeader = z.infer<typeof backupHeader>;

export const chunkHeader = z.strictObject({
  vault: hex32,
  backup: hex32,
  head: hex64,
  chunk: z.number().int().min(0),
  last: z.boolean(),
  entries: z.number().int().min(0),
});
export type ChunkHeader = z.infer<typeof chunkHeader>;

export const backupKeyContext = (vault: string, backup: string) => encodeContext(KEY_LABEL, vault, backup);
export const backupKeys = (raw: Uint8Array, vault: string, wrapped: Uint8Array): ReplicationKeys =>
  deriveKeys(raw, vault, wrapped, KEY_LABEL);
export const sha256hex = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

const u32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};

export const corrupt = (message: string) => new CofferError('backup_corrupt', message);

/** The file's first bytes: magic, version, header. */
export function encodePreamble(header: BackupHeader): Uint8Array {
  const json = utf8(JSON.stringify(header));
  const out = new Uint8Array(PREAMBLE + json.length);
  out.set(MAGIC, 0);
  out[MAGIC.length] = FORMAT_VERSION;
  new DataView(out.buffer).setUint32(MAGIC.length + 1, json.length);
  out.set(json, PREAMBLE);
  return out;
}

/** One sealed chunk as a record (length-prefixed). */
export function encodeChunk(keys: ReplicationKeys, header: ChunkHeader, payload: Uint8Array): Uint8Array[] {
  const { bytes } = sealObject(keys, KIND.backupChunk, header, payload);
  return [u32(bytes.length), bytes];
}

export const encodeEnd = (digest: Uint8Array) => [u32(0), digest];

/** Appends entries to a chunk payload in the binary entry encoding. */
export class EntryWriter {
  private parts: Uint8Array[] = [];
  size = 0;
  count = 0;

  add(key: string, value: Uint8Array): void {
    const k = utf8(key);
    this.parts.push(u32(k.length), k, u32(value.length), value);
    this.size += 8 + k.length + value.length;
    this.count++;
  }

  take(): { payload: Uint8Array; entries: number } {
    const payload = Buffer.concat(this.parts, this.size);
    const entries = this.count;
    this.parts = [];
    this.size = 0;
    this.count = 0;
    return { payload: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), entries };
  }
}

export function decodeEntries(payload: Uint8Array, expected: number): [string, Uint8Array][] {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const out: [string, Uint8Array][] = [];
  let at = 0;
  const take = () => {
    if (at + 4 > payload.length) throw corrupt('backup chunk entries are malformed');
    const n = view.getUint32(at);
    at += 4;
    if (at + n > payload.length) throw corrupt('backup chunk entries are malformed');
    const bytes = payload.subarray(at, at + n);
    at += n;
    return bytes;
  };
  while (at < payload.length) {
    const key = Buffer.from(take()).toString('utf8');
    out.push([key, Uint8Array.from(take())]);
  }
  if (out.length !== expected) throw corrupt('backup chunk entry count does not match its header');
  return out;
}

/**
 * Reads a backup file's frames from a byte stream, computing the SHA-256 as it goes. Yields the
 * header, then every chunk object, and finally checks the trailing digest: anything missing,
 * extra or altered is `backup_corrupt`. Nothing here needs a key.
 */
export async function* readFrames(
  source: AsyncIterable<Uint8Array>,
): AsyncGenerator<
  { type: 'header'; header: BackupHeader; hash: string } | { type: 'chunk'; object: Uint8Array; index: number }
> {
  const hash = createHash('sha256');
  const reader = new ByteReader(source);
  const preamble = await reader.read(PREAMBLE);
  if (!preamble) throw corrupt('the file is empty or truncated: not a Coffer backup');
  if (!constantTimeEqual(preamble.subarray(0, MAGIC.length), MAGIC))
    throw corrupt('the file is not a Coffer backup (bad magic)');
  if (preamble[MAGIC.length] !== FORMAT_VERSION)
    throw corrupt(`unsupported backup format version ${preamble[MAGIC.length]}`);
  const headerLength = new DataView(preamble.buffer, preamble.byteOffset).getUint32(MAGIC.length + 1);
  if (headerLength === 0 || headerLength > MAX_HEADER) throw corrupt('backup header length is out of range');
  const headerBytes = await reader.read(headerLength);
  if (!headerBytes) throw corrupt('the backup is truncated (in its header)');
  hash.update(preamble).update(headerBytes);
  let header: BackupHeader;
  try {
    header = backupHeader.parse(JSON.parse(Buffer.from(headerBytes).toString('utf8')));
  } catch {
    throw corrupt('the backup header is malformed');
  }
  yield { type: 'header', header, hash: sha256hex(headerBytes) };
  for (let index = 0; ; index++) {
    const lengthBytes = await reader.read(4);
    if (!lengthBytes) throw corrupt('the backup is truncated (no end marker)');
    hash.update(lengthBytes);
    const length = new DataView(lengthBytes.buffer, lengthBytes.byteOffset).getUint32(0);
    if (length === 0) break;
    if (length > MAX_RECORD) throw corrupt('a backup record length is out of range');
    const object = await reader.read(length);
    if (!object) throw corrupt(`the backup is truncated (in chunk ${index})`);
    hash.update(object);
    yield { type: 'chunk', object, index };
  }
  const digest = await reader.read(32);
  if (!digest) throw corrupt('the backup is truncated (in its digest)');
  if (!constantTimeEqual(hash.digest(), digest))
    throw corrupt('the backup digest does not match: the file was altered or damaged');
  if (!(await reader.atEnd())) throw corrupt('the backup has bytes after its end marker');
}

/**
 * Opens chunk `index` of a backup: the object's MAC and AEAD (replication framing), then its
 * header against the file header. Throws `backup_corrupt` on any mismatch.
 */
export function openChunk(
  keys: ReplicationKeys,
  header: BackupHeader,
  headerHash: string,
  object: Uint8Array,
  index: number,
): { last: boolean; entries: [string, Uint8Array][] } {
  let opened;
  try {
    opened = openObject(keys, KIND.backupChunk, object, chunkHeader);
  } catch (e) {
    if (e instanceof ReplicationError)
      throw corrupt(`backup chunk ${index} does not verify (${e.code}): the file was altered or damaged`);
    throw e;
  }
  const h = opened.header;
  if (h.vault !== header.vault || h.backup !== header.backup || h.head !== headerHash || h.chunk !== index) {
    throw corrupt(`backup chunk ${index} does not belong at this place in this backup`);
  }
  return { last: h.last, entries: decodeEntries(opened.payload, h.entries) };
}

/** Reads exact byte counts from an async byte stream. */
class ByteReader {
  private buffered: Uint8Array[] = [];
  private length = 0;
  private done = false;
  private readonly iterator: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** Exactly `n` bytes, or undefined when the stream ends first. */
  async read(n: number): Promise<Uint8Array | undefined> {
    while (this.length < n && !this.done) await this.pull();
    if (this.length < n) return undefined;
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered, this.length);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.buffered = rest.length ? [rest] : [];
    this.length = rest.length;
    return out;
  }

  async atEnd(): Promise<boolean> {
    while (this.length === 0 && !this.done) await this.pull();
    return this.length === 0;
  }

  private async pull(): Promise<void> {
    const next = await this.iterator.next();
    if (next.done) {
      this.done = true;
      return;
    }
    const chunk = next.value instanceof Uint8Array ? next.value : new Uint8Array(next.value);
    if (chunk.length) {
      this.buffered.push(chunk);
      this.length += chunk.length;
    }
  }
}

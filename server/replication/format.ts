import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { z } from 'zod';
import { open as aeadOpen, seal as aeadSeal } from '../crypto/aead.js';
import { concatBytes, constantTimeEqual, utf8 } from '../crypto/bytes.js';
import type { ReplicationErrorCode } from '../../sdk/wire/errors.js';
import { REPLICA_IDENTITY_KEY as IDENTITY_KEY } from '../store/keys.js';

/**
 * Wire formats of what the bucket holds, all authenticated with keys derived from the
 * replication key (see keys.ts). Everything read from a bucket goes through `openObject` or
 * `openManifest`, which check the MAC before parsing anything, then a zod schema.
 *
 *   object  = "CFR1" | kind (1) | header length (u32 BE) | header JSON | sealed | HMAC (32)
 *   sealed  = XChaCha20-Poly1305(enc key, u32 length | payload | zero padding, AAD = all before it)
 *
 * Padding to 1 KiB steps keeps sizes finer than that out of the bucket's view.
 */
export const MAGIC = utf8('CFR1');
export const KIND = { segment: 1, snapshotIndex: 2, snapshotPart: 3, backupChunk: 4 } as const;
export type Kind = (typeof KIND)[keyof typeof KIND];
const MAC_LENGTH = 32;
const MAX_HEADER = 2048;
const PAD = 1024;

export interface ReplicationKeys {
  /** Short id of the wrapped replication key (names it in headers and the manifest). */
  id: string;
  wrapped: Uint8Array;
  enc: Uint8Array;
  mac: Uint8Array;
}

/**
 * The two working keys, derived (HKDF-SHA256) from the random replication key per purpose.
 * `label` separates other users of this framing (backups: `coffer/backup/v1`) from replication.
 */
export function deriveKeys(
  raw: Uint8Array,
  clusterId: string,
  wrapped: Uint8Array,
  label = 'coffer/replication/v1',
): ReplicationKeys {
  const derive = (purpose: string) =>
    new Uint8Array(hkdfSync('sha256', raw, utf8(clusterId), utf8(`${label}/${purpose}`), 32));
  return { id: keyIdOf(wrapped), wrapped, enc: derive('encrypt'), mac: derive('mac') };
}

export const keyIdOf = (wrapped: Uint8Array) => createHash('sha256').update(wrapped).digest('hex').slice(0, 16);

export const hmacHex = (key: Uint8Array, ...parts: (string | Uint8Array)[]) => {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(typeof p === 'string' ? utf8(p) : p).update(utf8('\u0000'));
  return h.digest('hex');
};

/** The chain value a stream starts from when there is no segment before it. */
export const genesisChain = (keys: ReplicationKeys, cluster: string, epoch: number, seq: number) =>
  hmacHex(keys.mac, 'genesis', cluster, String(epoch), String(seq));

/** Why replication refused or failed; `code` (closed list: sdk/wire/errors.ts) is what status and logs show. */
export class ReplicationError extends Error {
  constructor(
    readonly code: ReplicationErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ReplicationError';
  }
}

export function sealObject(
  keys: ReplicationKeys,
  kind: Kind,
  header: object,
  payload: Uint8Array,
): { bytes: Uint8Array; mac: string } {
  const headerBytes = utf8(JSON.stringify(header));
  const prefix = new Uint8Array(9);
  prefix.set(MAGIC, 0);
  prefix[4] = kind;
  new DataView(prefix.buffer).setUint32(5, headerBytes.length);
  const aad = concatBytes(prefix, headerBytes);
  const padded = new Uint8Array(Math.ceil((payload.length + 4) / PAD) * PAD);
  new DataView(padded.buffer).setUint32(0, payload.length);
  padded.set(payload, 4);
  const body = concatBytes(aad, aeadSeal(keys.enc, padded, aad));
  const mac = createHmac('sha256', keys.mac).update(body).digest();
  return { bytes: concatBytes(body, mac), mac: mac.toString('hex') };
}

/**
 * Verifies and opens an object: MAC first (a flipped bit or a truncation fails here, before
 * any parsing), then the header against `schema`, then the AEAD. Returns the MAC as the chain
 * value of the object.
 */
export function openObject<H>(
  keys: ReplicationKeys,
  kind: Kind,
  bytes: Uint8Array,
  schema: z.ZodType<H>,
): { header: H; payload: Uint8Array; mac: string } {
  if (bytes.length < 9 + 2 + 24 + 16 + MAC_LENGTH)
    throw new ReplicationError('truncated', 'object is too short (truncated or empty)');
  const body = bytes.subarray(0, bytes.length - MAC_LENGTH);
  const mac = createHmac('sha256', keys.mac).update(body).digest();
  if (!constantTimeEqual(mac, bytes.subarray(bytes.length - MAC_LENGTH)))
    throw new ReplicationError('bad_mac', 'object MAC does not verify (tampered, truncated, or another vault)');
  if (!constantTimeEqual(bytes.subarray(0, 4), MAGIC) || bytes[4] !== kind)
    throw new ReplicationError('bad_format', 'object has the wrong type');
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset).getUint32(5);
  if (headerLength > MAX_HEADER || 9 + headerLength > body.length)
    throw new ReplicationError('bad_format', 'object header length is out of range');
  const aad = body.subarray(0, 9 + headerLength);
  const header = parseJson(schema, Buffer.from(aad.subarray(9)).toString('utf8'), 'object header');
  let padded: Uint8Array;
  try {
    padded = aeadOpen(keys.enc, body.subarray(9 + headerLength), aad);
  } catch {
    throw new ReplicationError('bad_mac', 'object does not decrypt');
  }
  // An authentic object whose sealed part is shorter than its length field is bad_format, not a RangeError.
  const length = padded.length < 4 ? Infinity : new DataView(padded.buffer, padded.byteOffset).getUint32(0);
  if (length + 4 > padded.length) throw new ReplicationError('bad_format', 'object payload length is out of range');
  return { header, payload: padded.subarray(4, 4 + length), mac: mac.toString('hex') };
}

export function parseJson<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ReplicationError('bad_format', `${what} is not JSON`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ReplicationError('bad_format', `${what}: ${issue.path.join('.') || 'value'}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * The only store keys a manifest may carry as the vault identity: `sys/seal` and
 * `sys/master/<v>`. A fresh replica copies them before it can verify anything, so anything
 * else (replication state such as `sys/repl/stream`, `sys/seq`) must never be accepted there.
 */
export const isIdentityKey = (key: string) => IDENTITY_KEY.test(key);

const seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const epoch = z
  .number()
  .int()
  .min(1)
  .max(2 ** 31);
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const cluster = z.string().regex(/^[0-9a-f]{32}$/);
const b64 = z
  .string()
  .max(1 << 20)
  .regex(/^[A-Za-z0-9+/]*={0,2}$/);
const storeKey = z.string().min(1).max(4096);

export const segmentHeader = z.strictObject({
  cluster,
  key: z.string().regex(/^[0-9a-f]{16}$/),
  epoch,
  from: seq,
  to: seq,
  prev: hex64,
  count: z.number().int().min(1),
});
export type SegmentHeader = z.infer<typeof segmentHeader>;

export const changeRecord = z.strictObject({
  seq,
  time: z.number().int().min(0),
  ops: z
    .array(
      z.union([
        z.strictObject({ type: z.literal('put'), key: storeKey, value: b64 }),
        z.strictObject({ type: z.literal('del'), key: storeKey }),
      ]),
    )
    .min(1),
});
export const segmentPayload = z.array(changeRecord).min(1);

export const snapshotIndexHeader = z.strictObject({
  cluster,
  key: z.string().regex(/^[0-9a-f]{16}$/),
  epoch,
  seq,
  chain: hex64,
  parts: z.number().int().min(0).max(1_000_000),
  entries: z.number().int().min(0),
});
export type SnapshotIndexHeader = z.infer<typeof snapshotIndexHeader>;
export const snapshotIndexPayload = z.strictObject({ parts: z.array(hex64) });
export const snapshotPartHeader = z.strictObject({ cluster, seq, part: z.number().int().min(0) });
export const snapshotPartPayload = z.array(z.tuple([storeKey, b64]));

/** The manifest body: what the primary says the stream looks like, and its lease. */
export const manifestBody = z.strictObject({
  epoch,
  /** Node id of the primary holding the epoch and the lease. */
  holder: z.string().regex(/^[0-9a-f]{32}$/),
  /** The primary's address, for 409 read_only_replica answers (may be empty). */
  primary: z.string().max(512),
  issued_at: z.number().int().min(0),
  /** The primary stops acknowledging writes before this time unless it renews. 0: no lease. */
  lease_until: z.number().int().min(0),
  /** Where this epoch's chain starts. */
  base: z.strictObject({ seq, chain: hex64 }),
  /** The last segment shipped in this epoch (or `base`). */
  head: z.strictObject({ seq, chain: hex64 }),
  /** The most recent segments as [from, to], so replicas can GET them without a LIST. */
  recent: z.array(z.tuple([seq, seq])).max(512),
  snapshot: z.strictObject({ seq, epoch, chain: hex64, mac: hex64 }).nullable(),
  /**
   * Store entries a fresh replica needs before it can unseal (already sealed where secret):
   * the seal configuration and the wrapped master keys, nothing else (see `isIdentityKey`).
   */
  identity: z.record(z.string().regex(IDENTITY_KEY), b64),
});
export type ManifestBody = z.infer<typeof manifestBody>;

const manifestDoc = z.strictObject({
  format: z.literal(1),
  cluster,
  key: z.strictObject({ id: z.string().regex(/^[0-9a-f]{16}$/), wrapped: b64 }),
  body: z.string().max(4 << 20),
  mac: hex64,
});
export type ManifestDoc = z.infer<typeof manifestDoc>;

export function encodeManifest(keys: ReplicationKeys, clusterId: string, body: ManifestBody): Uint8Array {
  const text = JSON.stringify(body);
  const wrapped = Buffer.from(keys.wrapped).toString('base64');
  const doc: ManifestDoc = {
    format: 1,
    cluster: clusterId,
    key: { id: keys.id, wrapped },
    body: text,
    mac: manifestMac(keys, clusterId, wrapped, text),
  };
  return utf8(JSON.stringify(doc));
}

const manifestMac = (keys: ReplicationKeys, clusterId: string, wrapped: string, body: string) =>
  hmacHex(keys.mac, 'manifest', clusterId, wrapped, body);

/** Parses a manifest without verifying it: only for what a sealed, fresh replica needs first. */
export function readManifestUnverified(bytes: Uint8Array): { doc: ManifestDoc; body: ManifestBody } {
  const doc = parseJson(manifestDoc, Buffer.from(bytes).toString('utf8'), 'manifest');
  return { doc, body: parseJson(manifestBody, doc.body, 'manifest body') };
}

/** Verifies a manifest's MAC under `keys` and parses its body. */
export function openManifest(keys: ReplicationKeys, clusterId: string, bytes: Uint8Array): ManifestBody {
  const doc = parseJson(manifestDoc, Buffer.from(bytes).toString('utf8'), 'manifest');
  if (doc.cluster !== clusterId)
    throw new ReplicationError('other_vault', 'manifest belongs to another vault (cluster id differs)');
  if (doc.key.id !== keys.id) throw new ReplicationError('other_key', 'manifest is under another replication key');
  const expected = manifestMac(keys, clusterId, doc.key.wrapped, doc.body);
  if (!constantTimeEqual(Buffer.from(expected, 'hex'), Buffer.from(doc.mac, 'hex')))
    throw new ReplicationError('bad_mac', 'manifest MAC does not verify');
  return parseJson(manifestBody, doc.body, 'manifest body');
}

const hex = (n: number) => n.toString(16).padStart(16, '0');
export const MANIFEST = 'manifest.json';
export const segmentPrefix = (epoch: number) => `epoch-${epoch}/seg/`;
export const segmentName = (epoch: number, from: number, to: number) =>
  `${segmentPrefix(epoch)}${hex(from)}-${hex(to)}.seg`;
export const epochClaim = (epoch: number) => `epoch-${epoch}/claim`;
export const SNAPSHOT_PREFIX = 'snap/';
/**
 * A snapshot index is named by its sequence and epoch, and created only if absent: a primary
 * fenced out by a promotion (still finishing a snapshot at the same sequence) writes under its
 * own, older epoch and can never replace the new epoch's index.
 */
export const snapshotIndexName = (seq: number, epoch: number) =>
  `${SNAPSHOT_PREFIX}${hex(seq)}-${epoch.toString(16).padStart(8, '0')}.snap`;
export const snapshotPartName = (seq: number, part: number) =>
  `${SNAPSHOT_PREFIX}${hex(seq)}/${part.toString(16).padStart(8, '0')}.part`;

/** Parses `epoch-E/seg/<from>-<to>.seg`; anything else (junk, floods) is undefined. */
export function parseSegmentName(name: string): { epoch: number; from: number; to: number } | undefined {
  const m = /^epoch-([1-9][0-9]{0,9})\/seg\/([0-9a-f]{16})-([0-9a-f]{16})\.seg$/.exec(name);
  if (!m) return undefined;
  const from = parseInt(m[2]!, 16);
  const to = parseInt(m[3]!, 16);
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to < from) return undefined;
  return { epoch: Number(m[1]), from, to };
}

/** Parses `snap/<seq>-<epoch>.snap` (and the older `snap/<seq>.snap`, epoch 0). */
export const parseSnapshotIndexName = (name: string): { seq: number; epoch: number } | undefined => {
  const m = /^snap\/([0-9a-f]{16})(?:-([0-9a-f]{8}))?\.snap$/.exec(name);
  return m ? { seq: parseInt(m[1]!, 16), epoch: m[2] ? parseInt(m[2], 16) : 0 } : undefined;
};

export const fromB64 = (s: string) => new Uint8Array(Buffer.from(s, 'base64'));

import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Op, Store } from '../store/db.js';
import { SEQ_KEY, isLocalKey } from '../store/keys.js';
import type { Bucket } from './bucket.js';
import {
  KIND,
  ReplicationError,
  openObject,
  parseJson,
  parseSnapshotIndexName,
  sealObject,
  snapshotIndexHeader,
  snapshotIndexName,
  snapshotIndexPayload,
  snapshotPartHeader,
  snapshotPartPayload,
  type ReplicationKeys,
  type SnapshotIndexHeader,
} from './format.js';

const PART_BYTES = 1 << 20;

const partName = (id: string, part: number) => `snap/${id}/${part.toString(16).padStart(8, '0')}.part`;

/**
 * Streams the whole store, from one LevelDB snapshot, into encrypted parts of about 1 MiB.
 * Returns the sequence number the snapshot is at (read from the same LevelDB snapshot, so it
 * matches the content exactly) and the part MACs; the caller writes the index once it knows
 * the chain value at that sequence.
 */
export async function writeSnapshotParts(
  store: Store,
  bucket: Bucket,
  keys: ReplicationKeys,
  cluster: string,
): Promise<{ id: string; seq: number; parts: string[]; entries: number }> {
  const id = randomBytes(16).toString('hex');
  const parts: string[] = [];
  let batch: [string, string][] = [];
  let size = 0;
  let seq: number | undefined;
  let entries = 0;
  const flush = async () => {
    const { bytes, mac } = sealObject(
      keys,
      KIND.snapshotPart,
      { cluster, id, part: parts.length },
      Buffer.from(JSON.stringify(batch)),
    );
    await bucket.put(partName(id, parts.length), bytes);
    parts.push(mac);
    batch = [];
    size = 0;
  };
  const iterator = store.iterate('', '\uffff');
  try {
    for await (const [key, value] of iterator) {
      if (key === SEQ_KEY) seq = Number(Buffer.from(value).toString('utf8'));
      if (isLocalKey(key)) continue;
      const encoded = Buffer.from(value).toString('base64');
      batch.push([key, encoded]);
      entries++;
      size += key.length + encoded.length + 8;
      if (size >= PART_BYTES) await flush();
    }
  } finally {
    await iterator.close();
  }
  if (batch.length > 0) await flush();
  return { id, seq: seq ?? 0, parts, entries };
}

/** Opens a snapshot index object (no check against a manifest: the caller compares). */
export function openSnapshotIndex(keys: ReplicationKeys, bytes: Uint8Array) {
  return openObject(keys, KIND.snapshotIndex, bytes, indexHeader);
}

export function sealSnapshotIndex(
  keys: ReplicationKeys,
  header: SnapshotIndexHeader & { id: string },
  parts: string[],
): { bytes: Uint8Array; mac: string } {
  return sealObject(keys, KIND.snapshotIndex, header, Buffer.from(JSON.stringify({ parts })));
}

const indexHeader = snapshotIndexHeader.extend({ id: z.string().regex(/^[0-9a-f]{32}$/) });
const partHeader = snapshotPartHeader.omit({ seq: true }).extend({ id: z.string().regex(/^[0-9a-f]{32}$/) });

/**
 * Reads a snapshot the manifest names: the index must carry the MAC the (verified) manifest
 * commits to, and each part the MAC the index lists, so nothing can be swapped in from another
 * snapshot, chain or vault. Entries are handed to `apply` part by part.
 */
export async function readSnapshot(
  bucket: Bucket,
  keys: ReplicationKeys,
  cluster: string,
  expected: { seq: number; epoch: number; chain: string; mac: string },
  apply: (ops: Op[], progress: { part: number; parts: number; entries: number }) => Promise<void>,
): Promise<SnapshotIndexHeader> {
  const indexObject = await bucket.get(snapshotIndexName(expected.seq, expected.epoch));
  if (!indexObject)
    throw new ReplicationError('snapshot_missing', `snapshot ${expected.seq} named by the manifest is missing`);
  const index = openObject(keys, KIND.snapshotIndex, indexObject.body, indexHeader);
  if (index.mac !== expected.mac)
    throw new ReplicationError('snapshot_mismatch', 'snapshot index is not the one the manifest commits to');
  const h = index.header;
  if (h.cluster !== cluster || h.seq !== expected.seq || h.epoch !== expected.epoch || h.chain !== expected.chain) {
    throw new ReplicationError('snapshot_mismatch', 'snapshot index header does not match the manifest');
  }
  const { parts } = parseJson(snapshotIndexPayload, Buffer.from(index.payload).toString('utf8'), 'snapshot index');
  if (parts.length !== h.parts) throw new ReplicationError('bad_format', 'snapshot index part count is inconsistent');
  let entries = 0;
  for (let i = 0; i < parts.length; i++) {
    const object = await bucket.get(partName(h.id, i));
    if (!object) throw new ReplicationError('snapshot_missing', `snapshot part ${i} is missing`);
    const part = openObject(keys, KIND.snapshotPart, object.body, partHeader);
    if (part.mac !== parts[i] || part.header.id !== h.id || part.header.part !== i || part.header.cluster !== cluster) {
      throw new ReplicationError('snapshot_mismatch', `snapshot part ${i} is not the one the index lists`);
    }
    const rows = parseJson(snapshotPartPayload, Buffer.from(part.payload).toString('utf8'), `snapshot part ${i}`);
    const ops: Op[] = [];
    for (const [key, value] of rows) {
      if (isLocalKey(key)) throw new ReplicationError('bad_format', 'snapshot holds a server-local key');
      ops.push({ type: 'put', key, value: new Uint8Array(Buffer.from(value, 'base64')) });
    }
    entries += ops.length;
    await apply(ops, { part: i + 1, parts: parts.length, entries });
  }
  if (entries !== h.entries) throw new ReplicationError('bad_format', 'snapshot entry count is inconsistent');
  return h;
}

/** Deletes snapshot objects other than the kept one (index at `keep`, parts of `keepId`). */
export async function pruneSnapshots(
  bucket: Bucket,
  keep: { seq: number; epoch: number },
  keepId: string | undefined,
): Promise<void> {
  let startAfter: string | undefined;
  for (;;) {
    const page = await bucket.list('snap/', startAfter ? { startAfter } : {});
    for (const { key } of page.objects) {
      const index = parseSnapshotIndexName(key);
      const part = /^snap\/([0-9a-f]{32})\//.exec(key);
      if (index && (index.seq < keep.seq || (index.seq === keep.seq && index.epoch < keep.epoch)))
        await bucket.delete(key);
      else if (part && part[1] !== keepId) await bucket.delete(key);
    }
    if (!page.next) break;
    startAfter = page.next;
  }
}

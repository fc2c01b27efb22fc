import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Op, Store } from '../store/db.js';
import {
  REPL_BOOTSTRAP_KEY as BOOTSTRAP_KEY,
  REPL_NODE_KEY as NODE_KEY,
  REPL_STREAM_KEY as STREAM_KEY,
} from '../store/keys.js';

/**
 * Replication's own state in the local store. It is written with `writeRaw` or inside the
 * batch that applies a segment, never through the change log, and never leaves the server
 * (snapshots skip it): each server has its own.
 *
 *   sys/repl/node           this server's node id (holder name in the manifest)
 *   sys/repl/stream         epoch, applied sequence and chain value: the high-water mark that
 *                           never moves backwards
 *   sys/repl/bootstrapping  present while a snapshot is being loaded in several batches
 *   sys/repl/identity-unverified  present from copying the vault identity out of an
 *                           unverified manifest until the authenticated manifest confirmed it
 */

const streamSchema = z.strictObject({
  epoch: z.number().int().min(1),
  seq: z.number().int().min(0),
  chain: z.string().regex(/^[0-9a-f]{64}$/),
  /** Set once this server became primary by promotion: it stays primary across restarts. */
  promoted: z.boolean().optional(),
});
export type StreamState = z.infer<typeof streamSchema>;

export function readStream(store: Store): StreamState | undefined {
  const raw = store.get(STREAM_KEY);
  if (!raw) return undefined;
  return streamSchema.parse(JSON.parse(Buffer.from(raw).toString('utf8')));
}

export const streamOp = (state: StreamState): Op => ({
  type: 'put',
  key: STREAM_KEY,
  value: Buffer.from(JSON.stringify(state)),
});

export async function nodeId(store: Store): Promise<string> {
  const raw = store.get(NODE_KEY);
  if (raw) return Buffer.from(raw).toString('utf8');
  const id = randomBytes(16).toString('hex');
  await store.writeRaw([{ type: 'put', key: NODE_KEY, value: Buffer.from(id) }]);
  return id;
}

export const isBootstrapping = (store: Store) => store.get(BOOTSTRAP_KEY) !== undefined;

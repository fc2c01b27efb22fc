import { createHash, randomBytes } from 'node:crypto';
import { toBase64, zeroize } from '../crypto/bytes.js';
import type { MasterKeyProvider } from '../keys/provider.js';
import { sealConfigCodec } from '../keys/seal.js';
import { decodeStored } from '../store/codec.js';
import { forgetKeys } from '../replication/keys.js';
import type { Store } from '../store/db.js';
import { MASTER_META_PREFIX, MASTER_PREFIX, SEAL_KEY, SEQ_KEY } from '../store/keys.js';
import { isLocalKey } from '../store/keys.js';
import {
  CHUNK_BYTES,
  EntryWriter,
  IDENTITY_KEY,
  PREAMBLE_LENGTH,
  backupKeyContext,
  backupKeys,
  encodeChunk,
  encodeEnd,
  encodePreamble,
  sha256hex,
  type BackupHeader,
} from './format.js';
import { CofferError } from '../errors.js';

export interface BackupInfo {
  vault: string;
  backup: string;
  seq: number;
  created_at: string;
}

export interface StartedBackup {
  info: BackupInfo;
  body: AsyncGenerator<Uint8Array>;
  /** Closes the snapshot iterator and zeroizes the working keys; idempotent. */
  dispose: () => Promise<void>;
  /** True once the working keys are zeroized (tests; reveals no key material). */
  keysForgotten(): boolean;
}

/**
 * One consistent, online backup of the store (format.ts). Returns the header facts at once and
 * the file's bytes as a stream.
 *
 * Consistency: the LevelDB iterator is created inside a `Store.mutate` callback that stages
 * nothing. Mutations run one at a time and every write to the database goes through that queue,
 * so at that moment the last committed batch is exactly `store.lastSeq`, and the iterator's
 * implicit snapshot (taken synchronously at creation) holds that state and no other. Writers
 * queue behind the callback for microseconds only, and go on while the snapshot streams.
 *
 * Left out, as in replication snapshots (`isLocalKey`): the change log, `sys/seq` (the header
 * carries the sequence) and replication's local state under `sys/repl/` (node id, stream
 * high-water mark: a restored vault is a fresh primary, not the node it was taken from). The
 * audit chain head is a file beside the store, never in it.
 *
 * The backup key is 32 fresh bytes wrapped by the master key through the provider, so an HSM
 * key never leaves its token; the raw key and the derived working keys are zeroized at the end.
 *
 * The caller must call `dispose()` on every path (streamed to the end, refused, cut, client
 * gone): it closes the iterator (releasing the pinned LevelDB snapshot) and zeroizes the working
 * keys. The body's own `finally` does the same, but a generator that was never started never
 * runs its `finally` (`return()` on it just completes it), so that alone leaks both. `dispose()`
 * is idempotent; a body read after it yields nothing.
 */
export async function startBackup(
  store: Store,
  provider: MasterKeyProvider,
  vault: string,
  now: () => number = Date.now,
): Promise<StartedBackup> {
  const backup = randomBytes(16).toString('hex');
  const raw = new Uint8Array(randomBytes(32));
  let wrapped: Uint8Array;
  try {
    wrapped = await provider.wrap(raw, backupKeyContext(vault, backup));
  } catch (e) {
    zeroize(raw);
    throw e;
  }
  const keys = backupKeys(raw, vault, wrapped);
  zeroize(raw);

  // An async callback keeps the queue: nothing commits until it returns, so the identity
  // scan below sees the same state as the iterator's snapshot.
  let snapshot: { iterator: ReturnType<Store['iterate']>; seq: number; identity: Record<string, string> };
  try {
    snapshot = await store.mutate(async () => {
      const iterator = store.iterate('', '\uffff');
      const seq = store.lastSeq;
      const identity: Record<string, string> = {};
      try {
        const seal = store.get(SEAL_KEY);
        if (seal) identity[SEAL_KEY] = toBase64(seal);
        for (const prefix of [MASTER_PREFIX, MASTER_META_PREFIX]) {
          for (const [key, value] of await store.scanPrefix(prefix))
            if (IDENTITY_KEY.test(key)) identity[key] = toBase64(value);
        }
      } catch (e) {
        await iterator.close();
        throw e;
      }
      return { iterator, seq, identity };
    });
  } catch (e) {
    forgetKeys(keys);
    throw e;
  }
  const { iterator, seq, identity } = snapshot;
  let disposed = false;
  let released: Promise<void> | undefined;
  const dispose = (): Promise<void> => {
    disposed = true;
    released ??= (async () => {
      try {
        await iterator.close().catch(() => undefined);
      } finally {
        forgetKeys(keys);
      }
    })();
    return released;
  };
  let info: BackupInfo;
  let preamble: Uint8Array;
  let headHash: string;
  try {
    const source = identity[SEAL_KEY]
      ? decodeStored(sealConfigCodec, Buffer.from(identity[SEAL_KEY], 'base64'), 'seal configuration', SEAL_KEY).source
      : undefined;
    if (!source) throw new CofferError('not_initialized', 'vault is not initialized: nothing to back up');
    info = { vault, backup, seq, created_at: new Date(now()).toISOString() };
    const header: BackupHeader = { format: 1, ...info, source, key: toBase64(wrapped), identity };
    preamble = encodePreamble(header);
    headHash = sha256hex(preamble.subarray(PREAMBLE_LENGTH));
  } catch (e) {
    await dispose();
    throw e;
  }

  async function* body(): AsyncGenerator<Uint8Array> {
    const hash = createHash('sha256');
    const emit = (parts: Uint8Array[]) => {
      for (const p of parts) hash.update(p);
      return parts.length === 1 ? parts[0]! : new Uint8Array(Buffer.concat(parts));
    };
    const writer = new EntryWriter();
    let chunk = 0;
    const flush = (last: boolean) => {
      if (disposed) throw new CofferError('internal', 'backup disposed: its keys are forgotten');
      const { payload, entries } = writer.take();
      return emit(encodeChunk(keys, { vault, backup, head: headHash, chunk: chunk++, last, entries }, payload));
    };
    if (disposed) return;
    try {
      yield emit([preamble]);
      for await (const [key, value] of iterator) {
        // The snapshot must be at the sequence the header names (see above); a mismatch would
        // mean the queue reasoning no longer holds, and a wrong header is worse than no backup.
        if (key === SEQ_KEY && Number(Buffer.from(value).toString('utf8')) !== seq) {
          throw new CofferError('internal', 'backup snapshot does not match the sequence it was taken at');
        }
        if (isLocalKey(key)) continue;
        writer.add(key, value);
        if (writer.size >= CHUNK_BYTES) yield flush(false);
      }
      yield flush(true);
      const [zero] = encodeEnd(new Uint8Array(0));
      hash.update(zero!);
      yield new Uint8Array(Buffer.concat([zero!, hash.digest()]));
    } finally {
      await dispose();
    }
  }
  return {
    info,
    body: body(),
    dispose,
    keysForgotten: () => keys.enc.every((b) => b === 0) && keys.mac.every((b) => b === 0),
  };
}

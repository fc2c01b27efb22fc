import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { syncDirectory } from '../durable-fs.js';
import { zeroize } from '../crypto/bytes.js';
import { CofferError, isCofferError } from '../errors.js';
import { parseKekUri, type RootKeySource } from '../keys/root-key.js';
import { SealManager, sealConfigCodec } from '../keys/seal.js';
import { forgetKeys } from '../replication/keys.js';
import type { ReplicationKeys } from '../replication/format.js';
import { Store, type Op } from '../store/db.js';
import { SEAL_KEY } from '../store/keys.js';
import { isLocalKey } from '../store/keys.js';
import type { RestoreOptions, RestoreResult } from '../../sdk/wire/restore.js';
import { backupKeyContext, backupKeys, corrupt, openChunk, readFrames, type BackupHeader } from './format.js';

export type { RestoreOptions, RestoreResult };

const STAGING_PREFIX = '.coffer-restore-';
const WRITE_BATCH_BYTES = 4 << 20;

/**
 * `coffer restore` (offline). In this order, and nothing visible in the data directory until
 * the last step:
 *  1. the data directory must be absent or empty (`not_empty`);
 *  2. the header is read and the master key source opened against the backup's own identity
 *     (seal configuration, wrapped master versions) in a staging store inside the directory,
 *     and the backup key is unwrapped through the provider: a key source, shares or HSM key
 *     that does not open it is `backup_foreign` (another vault or another master key), unless
 *     the file's digest is also wrong (then it is damage: `backup_corrupt`);
 *  3. the whole file is verified: the digest and every chunk's MAC, AEAD, index and the final
 *     flag (`backup_corrupt`);
 *  4. only then the entries are written into the staging store, the sequence number last;
 *  5. the staging store is moved to `<dir>/db` and the staging directory removed.
 * On any failure the staging directory (and the data directory, if this created it) is removed.
 * The master key material is never written: the restored vault opens only with the same key
 * source (key file, passphrase, env, Shamir shares, HSM key), as the server checks at start.
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const dataDir = resolve(options.dataDir);
  const created = await prepareDirectory(dataDir);
  let staging: string | undefined;
  let store: Store | undefined;
  let keys: ReplicationKeys | undefined;
  try {
    const header = await readHeader(options.file);
    staging = await mkdtemp(join(dataDir, STAGING_PREFIX));
    store = await Store.open(join(staging, 'db'));
    keys = await openBackupKey(store, header, options);

    const verified = await passOver(options.file, header, keys, (chunks, entries) =>
      options.progress?.('verify', chunks, entries),
    );

    let batch: Op[] = [];
    let size = 0;
    const written = await passOver(options.file, header, keys, async (chunks, entries, rows) => {
      for (const [key, value] of rows) {
        batch.push({ type: 'put', key, value });
        size += key.length + value.length;
      }
      if (size >= WRITE_BATCH_BYTES) {
        await store!.writeRaw(batch);
        batch = [];
        size = 0;
      }
      options.progress?.('write', chunks, entries);
    });
    if (written.entries !== verified.entries) throw corrupt('the backup changed while it was being restored');
    // The sequence last: a store with it set is a complete restore.
    await store.writeRaw(batch, header.seq);
    await store.close();
    store = undefined;
    await rename(join(staging, 'db'), join(dataDir, 'db'));
    await rmdir(staging);
    staging = undefined;
    await syncDirectory(dataDir);
    return {
      vault: header.vault,
      backup: header.backup,
      seq: header.seq,
      created_at: header.created_at,
      entries: written.entries,
      data_dir: dataDir,
    };
  } catch (e) {
    await store?.close().catch(() => undefined);
    if (staging) await rm(staging, { recursive: true, force: true });
    if (created) await rmdir(dataDir).catch(() => undefined);
    throw e;
  } finally {
    forgetKeys(keys);
  }
}

/** Creates the directory (0700) or checks that it is empty; returns whether it was created. */
async function prepareDirectory(dir: string): Promise<boolean> {
  const info = await stat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new CofferError('invalid_request', `cannot read data directory ${dir}: ${e.code ?? e.message}`);
  });
  if (!info) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return true;
  }
  if (!info.isDirectory())
    throw new CofferError(
      'not_empty',
      `${dir} exists and is not a directory: restore needs an empty or absent data directory`,
    );
  const entries = await readdir(dir);
  if (entries.length > 0) {
    throw new CofferError(
      'not_empty',
      `data directory ${dir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}): restore only into an empty or absent directory, so no vault is overwritten`,
    );
  }
  return false;
}

async function readHeader(file: string): Promise<BackupHeader> {
  const frames = readFrames(fileStream(file));
  try {
    const first = await frames.next();
    if (first.done || first.value.type !== 'header') throw corrupt('the backup has no header');
    return first.value.header;
  } finally {
    await frames.return(undefined);
  }
}

/**
 * Opens the master key source against the backup's identity and unwraps the backup key through
 * the provider. The identity goes into the staging store only (removed on failure): the seal
 * manager and the software provider read it from a store, as a server would.
 */
async function openBackupKey(store: Store, header: BackupHeader, options: RestoreOptions): Promise<ReplicationKeys> {
  const identity: Op[] = Object.entries(header.identity).map(([key, value]) => ({
    type: 'put',
    key,
    value: new Uint8Array(Buffer.from(value, 'base64')),
  }));
  const seal = identity.find((op) => op.key === SEAL_KEY);
  if (!seal || seal.type !== 'put') throw corrupt('the backup header carries no seal configuration');
  let config: { cluster_id: string; source: string };
  try {
    config = sealConfigCodec.decode(seal.value);
  } catch {
    throw corrupt('the backup header carries a malformed seal configuration');
  }
  if (config.cluster_id !== header.vault || config.source !== header.source)
    throw corrupt('the backup header contradicts its seal configuration');
  await store.writeRaw(identity);

  const source = keySource(header, options);
  // Keys only: the staging store holds just the identity, and must be neither migrated nor marked.
  const manager = new SealManager(store, { source, env: options.env ?? process.env, storage: false });
  const foreign = async (why: string) => {
    // A flipped byte in the header also fails to open: report damage as damage.
    await checkDigest(options.file);
    return new CofferError(
      'backup_foreign',
      `${why}: this backup is of vault ${header.vault} and does not open with the given master key (another vault or another master key). Restore needs the master key source the vault was backed up with`,
    );
  };
  try {
    if (source.kind === 'shamir') {
      const shares = options.shares?.length
        ? options.shares
        : ((await options.askShares?.(manager.status().threshold)) ?? []);
      if (shares.length === 0)
        throw new CofferError(
          'invalid_request',
          'this backup is of a Shamir vault: give its unseal shares (prompted, or --share-file)',
        );
      for (const share of shares) {
        if (!manager.sealed) break;
        try {
          await manager.submitShare(share);
        } catch (e) {
          if (isCofferError(e, 'unseal_failed')) throw await foreign('the shares do not open it');
          if (isCofferError(e, 'invalid_request') && /belong|match/.test(e.message))
            throw await foreign('a share is of another vault or key split');
          throw e;
        }
      }
      if (manager.sealed)
        throw new CofferError('invalid_request', `not enough shares: this vault needs ${manager.status().threshold}`);
    } else {
      try {
        await manager.autoUnsealNow();
      } catch (e) {
        if (isCofferError(e, 'unseal_failed') || isCofferError(e, 'decryption_failed'))
          throw await foreign('the key does not open it');
        throw e;
      }
    }
    const wrapped = new Uint8Array(Buffer.from(header.key, 'base64'));
    let raw: Uint8Array;
    try {
      raw = await manager.keys().provider.unwrap(wrapped, backupKeyContext(header.vault, header.backup));
    } catch (e) {
      if (isCofferError(e, 'key_expired') || isCofferError(e, 'hsm_unavailable')) throw e;
      throw await foreign('its backup key does not unwrap');
    }
    try {
      return backupKeys(raw, header.vault, wrapped);
    } finally {
      zeroize(raw);
    }
  } finally {
    manager.stopRetrying();
    await manager.seal();
  }
}

function keySource(header: BackupHeader, options: RestoreOptions): RootKeySource {
  if (options.kek) {
    const source = parseKekUri(options.kek);
    if (source.kind === 'shamir' && header.source !== 'shamir') {
      throw new CofferError(
        'invalid_request',
        `this backup is of a vault with --kek ${header.source}: give that key source with --kek`,
      );
    }
    return source;
  }
  if (header.source === 'shamir') return { kind: 'shamir' };
  throw new CofferError(
    'invalid_request',
    `this backup is of a vault with --kek ${header.source}: give the same key source with --kek (as for coffer server)`,
  );
}

/**
 * One pass over the file: every frame verified (format.ts), each chunk's entries handed to
 * `each`. Ends only after the digest was checked and the last chunk seen.
 */
async function passOver(
  file: string,
  header: BackupHeader,
  keys: ReplicationKeys,
  each: (chunks: number, entries: number, rows: [string, Uint8Array][]) => void | Promise<void>,
): Promise<{ chunks: number; entries: number }> {
  let headerHash: string | undefined;
  let last = false;
  let chunks = 0;
  let entries = 0;
  for await (const frame of readFrames(fileStream(file))) {
    if (frame.type === 'header') {
      if (JSON.stringify(frame.header) !== JSON.stringify(header))
        throw corrupt('the backup changed while it was being restored');
      headerHash = frame.hash;
      continue;
    }
    if (last) throw corrupt('the backup has chunks after its last one');
    const chunk = openChunk(keys, header, headerHash!, frame.object, frame.index);
    for (const [key] of chunk.entries)
      if (isLocalKey(key)) throw corrupt('the backup holds a server-local key (change log or replication state)');
    last = chunk.last;
    chunks++;
    entries += chunk.entries.length;
    await each(chunks, entries, chunk.entries);
  }
  if (!last) throw corrupt('the backup is truncated (its last chunk is missing)');
  return { chunks, entries };
}

async function checkDigest(file: string): Promise<void> {
  for await (const _frame of readFrames(fileStream(file))) {
    // readFrames checks the digest at the end
  }
}

function fileStream(file: string): AsyncIterable<Uint8Array> {
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  return {
    async *[Symbol.asyncIterator]() {
      try {
        for await (const chunk of stream) yield chunk as Buffer;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new CofferError('invalid_request', `cannot read backup file ${file}: ${code ?? (e as Error).message}`);
      } finally {
        stream.destroy();
      }
    },
  };
}

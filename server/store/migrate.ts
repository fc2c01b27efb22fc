import type { Logger } from 'pino';
import { z } from 'zod';
import { zeroize } from '../crypto/bytes.js';
import { CofferError } from '../errors.js';
import { jsonCodec } from './codec.js';
import type { Store, Tx } from './db.js';
import { CLEAR_PREFIXES, FORMAT_KEY, isClearKey, prefixEnd } from './keys.js';

/**
 * The storage format, kept in `sys/format` (clear). Version 2 is the storage barrier: every
 * value outside the clear keys is sealed (barrier.ts). A data directory written before the
 * barrier has no marker; its first unseal migrates it (`migrateToBarrier`) and writes one.
 *
 *   { format: 2 }                                a fresh vault
 *   { format: 2, migration: { cursor, ... } }    a migration under way (resumes after the cursor)
 *   { format: 2, legacy_log_until: S, ... }      migrated; change-log records up to S were written
 *                                                before the barrier (values in clear): dropped
 */
export const FORMAT_VERSION = 2;

const formatSchema = z.strictObject({
  format: z.literal(FORMAT_VERSION),
  migration: z
    .strictObject({
      /** The last sequence number written before the migration started. */
      from_seq: z.number().int().nonnegative(),
      /** The last key handled; the migration resumes after it (null: from the start). */
      cursor: z.string().nullable(),
      sealed: z.number().int().nonnegative(),
      started_at: z.string(),
    })
    .optional(),
  legacy_log_until: z.number().int().nonnegative().optional(),
  migrated_at: z.string().optional(),
  migrated_values: z.number().int().nonnegative().optional(),
});
export type FormatRecord = z.infer<typeof formatSchema>;
export const formatCodec = jsonCodec(formatSchema);

/** The marker of a vault created with the barrier (written in init's batch). */
export const CURRENT_FORMAT: FormatRecord = { format: FORMAT_VERSION };

/** What the migration needs of the keys: the cluster id and the sys keyring. */
export interface MigrationSealer {
  clusterId: string;
  encryptionKey(tx: Tx, uses: number): Promise<{ version: number; key: Uint8Array }>;
  /** Seals one value, or returns undefined when it is sealed already (it opens under its key). */
  seal(key: string, value: Uint8Array, sysVersion: number, sysKey: Uint8Array): Promise<Uint8Array | undefined>;
}

/** Values per batch; a batch never spans two top-level prefixes (`auth/`, `meta/`, `ver/`, ...). */
export const MIGRATION_BATCH = 256;

const group = (key: string) => key.slice(0, key.indexOf('/') + 1 || key.length);

/**
 * Seals every value a store written before the barrier holds in clear, in key order, skipping
 * the clear keys. Each batch is one mutation (synced, change-logged on a primary: a replica
 * receives the sealed values like any write) that also moves the cursor in `sys/format`, so a crash between
 * batches resumes after the last one that committed, and re-running a batch is harmless: a
 * value that is sealed already is recognised (it opens under its own key) and left as it is.
 * Progress is logged per top-level prefix. Returns the final marker.
 */
export async function migrateToBarrier(
  store: Store,
  sealer: MigrationSealer,
  log?: Pick<Logger, 'info' | 'warn'>,
  now: () => number = Date.now,
): Promise<FormatRecord> {
  const raw = store.get(FORMAT_KEY);
  let format: FormatRecord = raw
    ? formatCodec.decode(raw)
    : {
        format: FORMAT_VERSION,
        migration: { from_seq: store.lastSeq, cursor: null, sealed: 0, started_at: new Date(now()).toISOString() },
      };
  if (!format.migration) return format;
  const migration = { ...format.migration };
  log?.info(
    { resume_after: migration.cursor, sealed: migration.sealed },
    migration.cursor === null
      ? 'storage: this data directory was written before the storage barrier: sealing every stored value (one prefix at a time)'
      : 'storage: resuming the migration to the storage barrier',
  );
  let current = migration.cursor === null ? undefined : group(migration.cursor);
  let inGroup = 0;
  for (;;) {
    const rows = await nextRows(store, migration.cursor);
    const last = rows.length === 0;
    if (!last && group(rows[0]![0]) !== current) {
      if (current !== undefined) log?.info({ prefix: current, sealed: inGroup }, 'storage: prefix sealed');
      current = group(rows[0]![0]);
      inGroup = 0;
    }
    if (last) break;
    const sealedNow = await store.mutate(async (tx) => {
      let n = 0;
      const current = await sealer.encryptionKey(tx, rows.length);
      const sysKey = Uint8Array.from(current.key); // a copy: the keyring cache may evict (and zeroize) its own while this awaits
      try {
        for (const [k, value] of rows) {
          const sealed = await sealer.seal(k, value, current.version, sysKey);
          if (sealed === undefined) continue;
          tx.put(k, sealed);
          n++;
        }
      } finally {
        zeroize(sysKey);
      }
      const next = { ...migration, cursor: rows[rows.length - 1]![0], sealed: migration.sealed + n };
      tx.put(FORMAT_KEY, formatCodec.encode({ format: FORMAT_VERSION, migration: next }));
      return { n, next };
    });
    Object.assign(migration, sealedNow.next);
    inGroup += sealedNow.n;
  }
  if (current !== undefined) log?.info({ prefix: current, sealed: inGroup }, 'storage: prefix sealed');
  format = {
    format: FORMAT_VERSION,
    legacy_log_until: migration.from_seq,
    migrated_at: new Date(now()).toISOString(),
    migrated_values: migration.sealed,
  };
  await store.mutate((tx) => tx.put(FORMAT_KEY, formatCodec.encode(format)));
  log?.info({ sealed: migration.sealed }, 'storage: migration to the storage barrier finished');
  return format;
}

/**
 * The next batch after `cursor`: keys that are not clear, of one top-level prefix, at most
 * MIGRATION_BATCH. The clear prefixes are skipped as ranges (the change log is never read).
 */
async function nextRows(store: Store, cursor: string | null): Promise<[string, Uint8Array][]> {
  let gte = cursor === null ? '' : `${cursor}\u0000`;
  const skips = [...CLEAR_PREFIXES].sort();
  for (;;) {
    const inside = skips.find((p) => gte >= p && gte < prefixEnd(p));
    if (inside) {
      gte = prefixEnd(inside);
      continue;
    }
    const stop = skips.find((p) => p > gte) ?? '\uffff\uffff';
    const scanned = await store.range(gte, stop, MIGRATION_BATCH);
    const rows = scanned.filter(([k]) => !isClearKey(k));
    if (rows.length > 0) {
      const g = group(rows[0]![0]);
      const cut = rows.findIndex(([k]) => group(k) !== g);
      return cut < 0 ? rows : rows.slice(0, cut);
    }
    if (scanned.length === MIGRATION_BATCH) {
      gte = `${scanned[scanned.length - 1]![0]}\u0000`; // a page of clear keys only (sys/seq, sys/seal, ...)
      continue;
    }
    if (stop === '\uffff\uffff') return [];
    gte = stop;
  }
}

/**
 * Drops the change-log records up to `untilSeq` (written before the barrier, so they hold
 * values in clear) and returns how many. Local to each server (no change-log record): a
 * replica does the same once the primary's migration reached it. Shipping from before that
 * point needs a snapshot, which the shipper takes by itself when the log no longer holds a record.
 */
export async function purgeLegacyLog(store: Store, untilSeq: number, log?: Pick<Logger, 'info'>): Promise<number> {
  const dropped = await store.dropChanges(untilSeq);
  if (dropped > 0)
    log?.info(
      { records: dropped, until_seq: untilSeq },
      'storage: dropped the change-log records written before the storage barrier',
    );
  return dropped;
}

/** Compacts the database, so that the values a migration overwrote leave its files. */
export async function compactAfterMigration(store: Store, log?: Pick<Logger, 'info'>): Promise<void> {
  log?.info('storage: compacting the database, so that the values written in clear leave its files');
  await store.compact();
  log?.info('storage: compaction finished');
}

export const unreadableFormat = () =>
  new CofferError(
    'internal',
    `the storage format marker ${FORMAT_KEY} is unreadable: this data directory was written by an unknown version`,
  );

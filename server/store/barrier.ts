import type { Logger } from 'pino';
import { encodeContext, zeroize } from '../crypto/bytes.js';
import { envelopeKeyVersion, openEnvelope, sealEnvelope } from '../crypto/envelope.js';
import { CofferError, isCofferError } from '../errors.js';
import { decodeStored, type Codec } from './codec.js';
import type { Store, Tx } from './db.js';
import { FORMAT_KEY, isClearKey, prefixEnd } from './keys.js';
import {
  formatCodec,
  migrateToBarrier,
  compactAfterMigration,
  purgeLegacyLog,
  unreadableFormat,
  type FormatRecord,
  type MigrationSealer,
} from './migrate.js';

export type { Tx };
export type { Codec };

/**
 * The storage barrier: the one seam between every engine and LevelDB (as OpenBao's
 * `barrier_aes_gcm.go` is for Vault). Every value written through it is sealed with
 * XChaCha20-Poly1305 under the `sys` keyring, with the storage key (and the cluster id) as
 * associated data, so a value moved to another key does not open; key names stay in clear.
 * The exceptions are the bootstrap records listed by `isClearKey` (keys.ts): what must be read
 * before this barrier can open, or by replication without keys. They pass through unchanged.
 *
 * A stored value is `0xb1 | envelope` (server/crypto/envelope.ts: format, algorithm, sys keyring
 * version, nonce, ciphertext, tag). The keyring version in the header lets a rotation of the
 * `sys` keyring re-seal lazily: old values stay readable under their version, and are sealed
 * under the current one when next written.
 *
 * While sealed every operation is refused (`sealed`, or `not_initialized`): engines no longer
 * check the seal themselves, and `keys()` is the one check of an operation that needs both the
 * barrier and the unsealed keys (a secret read: metadata, version record, DEK).
 *
 * Reads outside a mutation take the sys key from the keyring cache (no extra LevelDB read); a
 * mutation takes copies of the sys keyring's versions when it starts (reads inside a mutation
 * are synchronous) and zeroizes them when it ends. Plaintext values are never cached.
 */
export const BARRIER_TAG = 0xb1;
const SYS = 'sys';

/** The `sys` keyring, as the barrier needs it (server/keys/keyring.ts). */
export interface SysKeyring {
  /** The current sys key, for use inside a mutation; counts `uses` wraps against its budget. */
  encryptionKey(tx: Tx, namespace: string, uses?: number): Promise<{ version: number; key: Uint8Array }>;
  decryptionKey(namespace: string, version: number): Promise<Uint8Array>;
  /** The key of a version if cached (used at once, synchronously), else undefined. */
  cachedKey(namespace: string, version: number): Uint8Array | undefined;
  /** The keyring's version numbers, read inside a mutation. */
  versions(tx: Tx, namespace: string): number[];
}

export interface BarrierKeys {
  clusterId: string;
  keyrings: SysKeyring;
}

/** The engine-facing store: what engines read and write, sealed. */
export interface SealedStore<K extends BarrierKeys = BarrierKeys> {
  /** The keys of an unsealed vault, or the refusal (`sealed`, `not_initialized`): the seal check. */
  keys(): K;
  get(key: string, keys?: K): Promise<Uint8Array | undefined>;
  /** Whether a key is present (its name only: nothing is opened). */
  has(key: string): boolean;
  range(gte: string, lt: string, limit?: number): Promise<[string, Uint8Array][]>;
  /** Keys in [gte, lt), at most `limit` (names only: nothing is opened). */
  names(gte: string, lt: string, limit?: number): Promise<string[]>;
  scanPrefix(prefix: string, after?: string, limit?: number): Promise<[string, Uint8Array][]>;
  count(gte: string, lt: string): Promise<number>;
  mutate<T>(fn: (tx: Tx) => T | Promise<T>): Promise<T>;
  table<T>(prefix: string, codec: Codec<T>, what: string): Table<T, K>;
}

const context = (clusterId: string, key: string) => encodeContext('coffer/barrier', clusterId, key);
const opaque = (key: string) =>
  new CofferError('decryption_failed', 'decryption failed', `the stored value of ${key} did not open`);

/** Whether the value carries the barrier's envelope (a value written before the barrier does not). */
export const isSealedValue = (value: Uint8Array) => value.length > 0 && value[0] === BARRIER_TAG;

export function sealValue(
  clusterId: string,
  key: string,
  sysVersion: number,
  sysKey: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array {
  const sealed = sealEnvelope(sysKey, sysVersion, plaintext, context(clusterId, key), undefined, 1);
  sealed[0] = BARRIER_TAG;
  return sealed;
}

/** The sys keyring version a sealed value names (authenticated only once it opens). */
export function sealedVersion(key: string, value: Uint8Array): number {
  try {
    return envelopeKeyVersion(value.subarray(1));
  } catch {
    throw opaque(key);
  }
}

export function openValue(clusterId: string, key: string, sysKey: Uint8Array, value: Uint8Array): Uint8Array {
  try {
    return openEnvelope(sysKey, value.subarray(1), context(clusterId, key));
  } catch {
    throw opaque(key);
  }
}

export class Barrier<K extends BarrierKeys = BarrierKeys> implements SealedStore<K> {
  private opened: K | undefined;
  /** 'sealed': every value outside the clear keys must carry the envelope. 'legacy': see `open`. */
  private mode: 'sealed' | 'legacy' = 'sealed';

  constructor(
    private readonly store: Store,
    private readonly refusal: () => CofferError,
    private readonly log?: Pick<Logger, 'info' | 'warn' | 'error'>,
  ) {}

  // --- lifecycle (the seal manager only) ----------------------------------------------------

  /**
   * Opens the barrier with the keys of an unseal. A store written before the barrier existed
   * (no format marker) is migrated first, one prefix at a time (migrate.ts); the barrier opens
   * only once that is done, so engines never see a half-migrated store. A server that may not
   * write (a replica, a fenced primary) cannot migrate: it reads values written before the
   * barrier as they are until the primary's migration reaches it (`refresh`).
   */
  async open(keys: K): Promise<void> {
    let format = this.readFormat();
    let migrated = false;
    if (format === undefined || format.migration !== undefined) {
      try {
        format = await migrateToBarrier(this.store, this.migrationSealer(keys), this.log);
        migrated = true;
      } catch (e) {
        if (!isCofferError(e, 'read_only_replica')) throw e;
        this.log?.info(
          'storage: this server cannot write, so the values written before the storage barrier are read as they are until the primary’s migration is replicated here',
        );
      }
    }
    this.mode = format !== undefined && format.migration === undefined ? 'sealed' : 'legacy';
    if (this.mode === 'sealed') await this.housekeeping(format!, migrated);
    this.opened = keys;
  }

  /** True while values written before the barrier are read as they are (see `open`); false once the store is migrated. */
  get acceptsLegacyValues(): boolean {
    return this.mode === 'legacy';
  }

  /** Refuses everything from now on (seal). Mutations already running finish with their own key copies. */
  close(): void {
    this.opened = undefined;
  }

  /** Re-reads the format marker (a replica, after applying changes that may hold the primary's migration). */
  async refresh(): Promise<void> {
    const format = this.readFormat();
    const mode = format !== undefined && format.migration === undefined ? 'sealed' : 'legacy';
    if (mode === this.mode) return;
    this.mode = mode;
    if (mode === 'sealed') {
      this.log?.info(
        'storage: the primary’s migration to the storage barrier has been replicated; every value is sealed now',
      );
      await this.housekeeping(format!);
    }
  }

  /**
   * Writes through the barrier with keys that are not (yet) the open ones: `init`, whose batch
   * holds the seal configuration, the format marker and the first sealed records together.
   */
  mutateWith<T>(keys: K, fn: (tx: Tx) => T | Promise<T>): Promise<T> {
    return this.store.mutate((raw) => this.runMutation(raw, keys, fn));
  }

  // --- engine-facing ------------------------------------------------------------------------

  keys(): K {
    if (!this.opened) throw this.refusal();
    return this.opened;
  }

  async get(key: string, keys: K = this.keys()): Promise<Uint8Array | undefined> {
    const stored = this.store.get(key);
    if (stored === undefined || isClearKey(key)) return stored;
    return this.openStored(keys, key, stored);
  }

  has(key: string): boolean {
    this.keys();
    return this.store.get(key) !== undefined;
  }

  async range(gte: string, lt: string, limit = -1): Promise<[string, Uint8Array][]> {
    const keys = this.keys();
    return this.openRows(keys, await this.store.range(gte, lt, limit));
  }

  async names(gte: string, lt: string, limit = -1): Promise<string[]> {
    this.keys();
    return (await this.store.range(gte, lt, limit)).map(([k]) => k);
  }

  async scanPrefix(prefix: string, after?: string, limit = -1): Promise<[string, Uint8Array][]> {
    const keys = this.keys();
    return this.openRows(keys, await this.store.scanPrefix(prefix, after, limit));
  }

  async count(gte: string, lt: string): Promise<number> {
    this.keys();
    return this.store.count(gte, lt);
  }

  /**
   * One mutation of the store (serialised, one synced batch with its change-log record; see
   * Store.mutate). Reads inside it see its own writes; values are sealed when it commits, all
   * under the current sys key, whose wrap count grows by the number of values sealed.
   */
  async mutate<T>(fn: (tx: Tx) => T | Promise<T>): Promise<T> {
    this.keys(); // refused at once while sealed, and again when its turn comes (sealed while queued)
    return this.store.mutate((raw) => this.runMutation(raw, this.keys(), fn));
  }

  table<T>(prefix: string, codec: Codec<T>, what: string): Table<T, K> {
    return new Table(this, prefix, codec, what);
  }

  // --- internals ----------------------------------------------------------------------------

  private async runMutation<T>(raw: Tx, keys: K, fn: (tx: Tx) => T | Promise<T>): Promise<T> {
    const sysKeys = await this.sysKeyCopies(raw, keys);
    const staged = new Map<string, Uint8Array | null>();
    const tx: Tx = {
      get: (key) => {
        if (isClearKey(key)) return raw.get(key);
        const mine = staged.get(key);
        if (mine !== undefined) return mine === null ? undefined : mine;
        const stored = raw.get(key);
        if (stored === undefined) return undefined;
        if (!isSealedValue(stored)) return this.legacy(key, stored);
        const version = sealedVersion(key, stored);
        const sysKey = sysKeys.get(version);
        if (sysKey instanceof Error) throw sysKey;
        if (!sysKey) throw opaque(key);
        return openValue(keys.clusterId, key, sysKey, stored);
      },
      put: (key, value) => {
        if (isClearKey(key)) raw.put(key, value);
        else staged.set(key, value);
      },
      del: (key) => {
        if (isClearKey(key)) return void raw.del(key);
        staged.set(key, null);
        raw.del(key);
      },
    };
    try {
      const result = await fn(tx);
      const puts = [...staged].filter((e): e is [string, Uint8Array] => e[1] !== null);
      if (puts.length > 0) {
        const { version, key } = await keys.keyrings.encryptionKey(raw, SYS, puts.length);
        for (const [k, value] of puts) raw.put(k, sealValue(keys.clusterId, k, version, key, value));
      }
      return result;
    } finally {
      for (const k of sysKeys.values()) if (!(k instanceof Error)) zeroize(k);
    }
  }

  /**
   * Copies of every version of the sys keyring, for the synchronous reads of one mutation (a
   * keyring cache entry may be evicted, and zeroized, while a long mutation awaits). A version
   * that does not open (an expired imported master key) is kept as its error.
   */
  private async sysKeyCopies(raw: Tx, keys: K): Promise<Map<number, Uint8Array | Error>> {
    const out = new Map<number, Uint8Array | Error>();
    for (const v of keys.keyrings.versions(raw, SYS)) {
      try {
        out.set(v, Uint8Array.from(await keys.keyrings.decryptionKey(SYS, v)));
      } catch (e) {
        if (isCofferError(e, 'sealed')) throw e;
        out.set(v, e as Error);
      }
    }
    return out;
  }

  private openStored(keys: K, key: string, stored: Uint8Array): Uint8Array | Promise<Uint8Array> {
    if (!isSealedValue(stored)) return this.legacy(key, stored);
    const version = sealedVersion(key, stored);
    // The cached key, used synchronously (the hot path: no promise); on a miss, unwrapped first.
    const cached = keys.keyrings.cachedKey(SYS, version);
    if (cached) return openValue(keys.clusterId, key, cached, stored);
    return keys.keyrings.decryptionKey(SYS, version).then((sysKey) => openValue(keys.clusterId, key, sysKey, stored)); // at once after the unwrap: no eviction in between
  }

  private async openRows(keys: K, rows: [string, Uint8Array][]): Promise<[string, Uint8Array][]> {
    const out: [string, Uint8Array][] = [];
    for (const [key, value] of rows) out.push([key, isClearKey(key) ? value : await this.openStored(keys, key, value)]);
    return out;
  }

  /** A value without the envelope: as it is while a store written before the barrier is read, else refused. */
  private legacy(key: string, stored: Uint8Array): Uint8Array {
    if (this.mode === 'legacy') return stored;
    throw opaque(key);
  }

  private readFormat(): FormatRecord | undefined {
    const raw = this.store.get(FORMAT_KEY);
    if (!raw) return undefined;
    try {
      return formatCodec.decode(raw);
    } catch {
      throw unreadableFormat();
    }
  }

  private migrationSealer(keys: K): MigrationSealer {
    return {
      clusterId: keys.clusterId,
      encryptionKey: (tx, uses) => keys.keyrings.encryptionKey(tx, SYS, uses),
      seal: async (key, value, sysVersion, sysKey) => {
        if (!isSealedValue(value)) return sealValue(keys.clusterId, key, sysVersion, sysKey, value);
        try {
          await this.openStored(keys, key, value);
        } catch (e) {
          if (!isCofferError(e, 'decryption_failed')) throw e;
          this.log?.warn(
            { key },
            'storage: a value carries the barrier envelope but does not open under its key: left as it is (reading it fails its integrity check)',
          );
        }
        return undefined; // sealed already (a batch redone after a crash)
      },
    };
  }

  /**
   * After a migration: the change-log records from before it (values in clear) are dropped, and
   * the database compacted when any were, or when the migration ran in this unseal (a standalone
   * store dropped its records at open, before the migration overwrote the clear values).
   */
  private async housekeeping(format: FormatRecord, migrated = false): Promise<void> {
    const until = format.legacy_log_until;
    if (until === undefined) return;
    const cleaned = async () => {
      const dropped = await purgeLegacyLog(this.store, until, this.log);
      if (dropped > 0 || migrated) await compactAfterMigration(this.store, this.log);
    };
    await cleaned().catch((e: unknown) => {
      this.log?.warn(
        { err: (e as Error).message },
        'storage: could not drop the change-log records written before the storage barrier; retried at the next unseal',
      );
    });
  }
}

/**
 * A typed view of one prefix of the barrier: ids are the keys without the prefix, values
 * decoded by the table's codec. A value that does not open or does not decode is reported as
 * `integrity_error` naming the table (the key goes to the log only).
 */
export class Table<T, K extends BarrierKeys = BarrierKeys> {
  constructor(
    private readonly barrier: SealedStore<K>,
    readonly prefix: string,
    private readonly codec: Codec<T>,
    private readonly what: string,
  ) {}

  key(id: string): string {
    return this.prefix + id;
  }

  async get(id: string, keys?: K): Promise<T | undefined> {
    const key = this.key(id);
    const raw = await this.guard(key, () => this.barrier.get(key, keys));
    return raw === undefined ? undefined : this.decode(key, raw);
  }

  has(id: string): boolean {
    return this.barrier.has(this.key(id));
  }

  /** Ids and values under the prefix (optionally below a sub-prefix), after `after` (an id). */
  async scan(options: { under?: string; after?: string; limit?: number } = {}): Promise<[string, T][]> {
    const prefix = this.prefix + (options.under ?? '');
    const rows = await this.guard(prefix, () =>
      this.barrier.scanPrefix(
        prefix,
        options.after === undefined ? undefined : this.key(options.after),
        options.limit ?? -1,
      ),
    );
    return rows.map(([k, v]) => [k.slice(this.prefix.length), this.decode(k, v)]);
  }

  /** Ids under the prefix in byte order (names only: nothing is opened). */
  async ids(under = ''): Promise<string[]> {
    const prefix = this.prefix + under;
    return (await this.barrier.names(prefix, prefixEnd(prefix))).map((k) => k.slice(this.prefix.length));
  }

  /** The seal check (see `SealedStore.keys`). */
  keys(): K {
    return this.barrier.keys();
  }

  /** A mutation of the barrier (for the table's own writes). */
  mutate<R>(fn: (tx: Tx) => R | Promise<R>): Promise<R> {
    return this.barrier.mutate(fn);
  }

  /** Reads inside a mutation (its own writes included). */
  read(tx: Tx, id: string): T | undefined {
    const key = this.key(id);
    const raw = this.guardSync(key, () => tx.get(key));
    return raw === undefined ? undefined : this.decode(key, raw);
  }

  write(tx: Tx, id: string, value: T): void {
    tx.put(this.key(id), this.codec.encode(value));
  }

  delete(tx: Tx, id: string): void {
    tx.del(this.key(id));
  }

  decode(key: string, raw: Uint8Array): T {
    return decodeStored(this.codec, raw, this.what, key);
  }

  private integrity(key: string, why: string): CofferError {
    return new CofferError('integrity_error', `a stored ${this.what} failed its integrity check`, `${key}: ${why}`);
  }

  private async guard<R>(key: string, read: () => Promise<R>): Promise<R> {
    try {
      return await read();
    } catch (e) {
      if (isCofferError(e, 'decryption_failed')) throw this.integrity(key, e.detail ?? 'did not open');
      throw e;
    }
  }

  private guardSync<R>(key: string, read: () => R): R {
    try {
      return read();
    } catch (e) {
      if (isCofferError(e, 'decryption_failed')) throw this.integrity(key, e.detail ?? 'did not open');
      throw e;
    }
  }
}

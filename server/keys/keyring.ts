import { encodeContext, fromBase64, toBase64, zeroize } from '../crypto/bytes.js';
import { KEY_LENGTH } from '../crypto/aead.js';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { CofferError } from '../errors.js';
import { z } from 'zod';
import { decodeStored, jsonCodec } from '../store/codec.js';
import type { KeyValueStore, Tx } from '../store/db.js';
import { KEYRING_PREFIX, keyringKey } from '../store/keys.js';
import type { MasterKeyProvider } from './provider.js';

/** A keyring as stored (clear: its versions are wrapped by a master version). */
const keyringRecord = z.looseObject({
  namespace: z.string(),
  current: z.number().int().nonnegative(),
  versions: z.record(
    z.string().regex(/^[1-9][0-9]*$/),
    z.looseObject({ wrapped: z.string(), created_at: z.number(), wraps: z.number().int().nonnegative() }),
  ),
});
export type KeyringRecord = z.infer<typeof keyringRecord>;
const keyringCodec = jsonCodec(keyringRecord);

export interface KeyringOptions {
  /** How long an unwrapped keyring version stays in memory after its last use. */
  cacheTtlMs: number;
  /** Rotate automatically once the current version has wrapped this many DEKs. */
  maxWraps: number;
  /** Rotate automatically once the current version is this old. */
  maxAgeMs: number;
  now: () => number;
  random: RandomSource;
}

export const DEFAULT_KEYRING_OPTIONS: KeyringOptions = {
  cacheTtlMs: 10 * 60_000,
  maxWraps: 2 ** 24,
  maxAgeMs: 90 * 24 * 3600_000,
  now: Date.now,
  random: systemRandom,
};

interface CachedKey {
  key: Uint8Array;
  expires: number;
  /** The wrapped form it was unwrapped from or wrapped to. */
  wrapped: string;
  /**
   * Seen in the database. A version this instance added is not until it is read back from the
   * database: the mutation that added it may be refused (a replica) or fail, and the version the
   * database later holds under that number (a primary's, replicated) is another key.
   */
  confirmed: boolean;
}

/**
 * The intermediate keys: one keyring per namespace, each with numbered versions stored only
 * wrapped by the master key. Unwrapped versions are cached for a bounded time, zeroized on
 * eviction and on close (seal). Plain DEKs and values are never cached here.
 *
 * The keyring record is the source of truth and is read inside each mutation, so the wrap
 * counter and version list persisted with a secret are always the ones it was written under.
 */
export class Keyrings {
  private readonly cache = new Map<string, CachedKey>();
  private readonly records = new KeyringRecords();
  /** Per keyring version: uses counted since this instance last reserved, and the count it staged. */
  private readonly counted = new Map<string, { used: number; reserved: number }>();
  /** Names this instance's reservations in the records, so it never takes another's count for its own. */
  private readonly instance: string;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;
  private readonly options: KeyringOptions;

  constructor(
    private readonly store: KeyValueStore,
    private readonly provider: MasterKeyProvider,
    private readonly clusterId: string,
    options: Partial<KeyringOptions> = {},
  ) {
    this.options = { ...DEFAULT_KEYRING_OPTIONS, ...options };
    this.instance = toBase64(this.options.random(12));
    this.sweeper = setInterval(() => this.evictExpired(), Math.min(this.options.cacheTtlMs, 60_000));
    this.sweeper.unref();
  }

  get masterVersion(): number {
    return this.provider.currentVersion();
  }

  /**
   * The key new DEKs are wrapped with, for use inside a mutation. Creates the keyring on first
   * use, rotates it past its wrap count or age, and stages the counter, raised by `uses` (the
   * messages the caller seals with it: the storage barrier seals several values per batch), in `tx`.
   */
  async encryptionKey(tx: Tx, namespace: string, uses = 1): Promise<{ version: number; key: Uint8Array }> {
    this.checkOpen();
    if (!Number.isSafeInteger(uses) || uses < 1) throw new RangeError('uses must be a positive integer');
    let record = this.records.read(namespace, tx.get(keyringKey(namespace)));
    const now = this.options.now();
    const current = record?.versions[String(record.current)];
    let used = record && current ? this.usedOf(namespace, record.current, current) : 0;
    let added = false;
    if (
      !record ||
      !current ||
      used + uses > this.options.maxWraps ||
      now - current.created_at >= this.options.maxAgeMs
    ) {
      record = await this.addVersion(tx, namespace, record);
      added = true;
      used = 0;
    }
    const entry = record.versions[String(record.current)]!;
    used += uses;
    if (added || used > entry.wraps) {
      // The stored count runs ahead of the uses, a block at a time (up to the budget), so most
      // mutations stage no keyring record: a restart or a batch that failed counts the whole
      // block as used, and a version never wraps more than its budget unnoticed.
      entry.wraps = Math.max(used, Math.min(used + WRAP_BLOCK, this.options.maxWraps));
      entry.reserved_by = this.instance;
      // A checked record whose only change is a whole-number counter is still of its schema, so
      // its bytes count as checked (the next write of a group commit reads them back); a record
      // with a version just added is checked again when next read.
      const vouched = !added && Number.isSafeInteger(entry.wraps);
      tx.put(keyringKey(namespace), this.records.encode(namespace, record, vouched));
    }
    // A bound on memory. Forgetting loses only uses beyond the stored count, whose ciphertexts
    // were never stored (their batch failed or was refused), as a restart does.
    if (this.counted.size >= MAX_COUNTED) this.counted.clear();
    this.counted.set(cacheId(namespace, record.current), { used, reserved: entry.wraps });
    return { version: record.current, key: await this.key(namespace, record.current, entry.wrapped, false) };
  }

  /**
   * The uses of a keyring version: counted here while the stored count is the last block this
   * instance reserved; otherwise (a restart, a failed or refused batch, another primary since)
   * the whole stored count, which is never less than the uses of stored ciphertexts.
   */
  private usedOf(namespace: string, version: number, stored: KeyringRecord['versions'][string]): number {
    const mine = this.counted.get(cacheId(namespace, version));
    return mine && stored.reserved_by === this.instance && mine.reserved === stored.wraps
      ? mine.used
      : Math.max(mine?.used ?? 0, stored.wraps);
  }

  /**
   * The key of a keyring version if it is in the cache (its use refreshes it), else undefined:
   * the storage barrier's synchronous fast path (no promise on every stored value it opens).
   * Use the key at once: an eviction zeroizes it.
   */
  cachedKey(namespace: string, version: number): Uint8Array | undefined {
    this.checkOpen();
    const cached = this.cache.get(cacheId(namespace, version));
    if (!cached?.confirmed) return undefined;
    cached.expires = this.options.now() + this.options.cacheTtlMs;
    return cached.key;
  }

  /** The version numbers of a keyring, read inside a mutation (the storage barrier's sys key copies). */
  versions(tx: Tx, namespace: string): number[] {
    const record = this.records.read(namespace, tx.get(keyringKey(namespace)));
    return record ? Object.keys(record.versions).map(Number) : [];
  }

  /** The key of a given keyring version, for unwrapping a DEK. */
  async decryptionKey(namespace: string, version: number): Promise<Uint8Array> {
    const cached = this.cachedKey(namespace, version);
    if (cached) return cached;
    const record = this.records.read(namespace, this.store.get(keyringKey(namespace)));
    const entry = record?.versions[String(version)];
    if (entry) return this.key(namespace, version, entry.wrapped, true);
    // Not in the database yet: a version this instance added in a mutation not yet committed
    // (a later mutation of its group commit reads what the earlier one sealed with it).
    const added = this.cache.get(cacheId(namespace, version));
    if (added) return added.key;
    throw new CofferError('decryption_failed', 'decryption failed');
  }

  /** Adds a keyring version and makes it current (admin rotation). */
  rotate(namespace: string): Promise<number> {
    return this.store.mutate(async (tx) => {
      const record = await this.addVersion(tx, namespace, this.records.read(namespace, tx.get(keyringKey(namespace))));
      tx.put(keyringKey(namespace), this.records.encode(namespace, record, false));
      return record.current;
    });
  }

  /** The stored keyring of `namespace` with key material removed, for status views. */
  describe(
    namespace: string,
  ):
    | { current: number; versions: { version: number; created_at: number; wraps: number; master_version: number }[] }
    | undefined {
    const record = this.records.read(namespace, this.store.get(keyringKey(namespace)));
    if (!record) return undefined;
    return {
      current: record.current,
      versions: Object.entries(record.versions).map(([v, e]) => ({
        version: Number(v),
        created_at: e.created_at,
        wraps: this.usedOf(namespace, Number(v), e),
        master_version: this.provider.versionOf(fromBase64(e.wrapped)!),
      })),
    };
  }

  /**
   * After a master-key rotation: re-wraps every keyring version under the current master
   * version, one keyring per batch. No data is touched. Returns how many keyrings changed.
   */
  async rewrapUnderCurrentMaster(): Promise<number> {
    let changed = 0;
    for (const namespace of await this.namespacesBehindMaster()) {
      this.checkOpen(); // sealed meanwhile: stop, an unseal resumes it
      const didChange = await this.store.mutate(async (tx) => {
        this.checkOpen();
        const record = this.records.read(namespace, tx.get(keyringKey(namespace)));
        if (!record) return false;
        let touched = false;
        for (const [v, entry] of Object.entries(record.versions)) {
          const wrapped = fromBase64(entry.wrapped)!;
          if (this.provider.versionOf(wrapped) === this.provider.currentVersion()) continue;
          const context = this.context(namespace, Number(v));
          const key = await this.provider.unwrap(wrapped, context);
          const before = entry.wrapped;
          try {
            entry.wrapped = toBase64(await this.provider.wrap(key, context));
          } finally {
            zeroize(key);
          }
          // The same key, wrapped anew: a cached copy of what was stored follows it.
          const cached = this.cache.get(cacheId(namespace, Number(v)));
          if (cached?.confirmed && cached.wrapped === before) cached.wrapped = entry.wrapped;
          touched = true;
        }
        if (touched) tx.put(keyringKey(namespace), this.records.encode(namespace, record, false));
        return touched;
      });
      if (didChange) changed++;
    }
    return changed;
  }

  /**
   * Keyrings with a version not wrapped by the current master version (read-only, no unwrap).
   * Empty except while a master rotation or BYOK import is re-wrapping, or after one was
   * interrupted (kill -9) between storing the new master version and re-wrapping the last keyring.
   */
  async namespacesBehindMaster(): Promise<string[]> {
    const current = this.provider.currentVersion();
    return (await this.store.scanPrefix(KEYRING_PREFIX))
      .filter(([key, raw]) =>
        Object.values(this.records.read(key.slice(KEYRING_PREFIX.length), raw)!.versions).some(
          (e) => this.provider.versionOf(fromBase64(e.wrapped)!) !== current,
        ),
      )
      .map(([k]) => k.slice(KEYRING_PREFIX.length));
  }

  /** Zeroizes every cached key. Called on seal; the instance is unusable afterwards. */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const { key } of this.cache.values()) zeroize(key);
    this.cache.clear();
  }

  get cachedVersions(): number {
    return this.cache.size;
  }

  private async addVersion(_tx: Tx, namespace: string, record: KeyringRecord | undefined): Promise<KeyringRecord> {
    const next: KeyringRecord = record ?? { namespace, current: 0, versions: {} };
    const version = Math.max(0, ...Object.keys(next.versions).map(Number)) + 1;
    const key = this.options.random(KEY_LENGTH);
    let wrapped: Uint8Array;
    try {
      wrapped = await this.provider.wrap(key, this.context(namespace, version));
      this.checkOpen(); // sealed while the provider wrapped: nothing may enter a cache no one sweeps
    } catch (e) {
      zeroize(key);
      throw e;
    }
    const wrappedB64 = toBase64(wrapped);
    next.versions[String(version)] = { wrapped: wrappedB64, created_at: this.options.now(), wraps: 0 };
    next.current = version;
    this.remember(namespace, version, key, wrappedB64, false);
    return next;
  }

  /** `confirmed`: `wrappedB64` was read from the database (not from a mutation's staged writes). */
  private async key(namespace: string, version: number, wrappedB64: string, confirmed: boolean): Promise<Uint8Array> {
    const id = cacheId(namespace, version);
    const cached = this.cache.get(id);
    if (cached?.wrapped === wrappedB64) {
      cached.expires = this.options.now() + this.options.cacheTtlMs;
      cached.confirmed ||= confirmed;
      return cached.key;
    }
    const wrapped = fromBase64(wrappedB64);
    if (!wrapped) throw new CofferError('decryption_failed', 'decryption failed');
    const key = await this.provider.unwrap(wrapped, this.context(namespace, version));
    if (this.closed) {
      zeroize(key);
      throw new CofferError('sealed', 'vault is sealed');
    }
    // Another call unwrapped the same bytes meanwhile: keep its key, which a caller may hold.
    const raced = this.cache.get(id);
    if (raced?.wrapped === wrappedB64) {
      zeroize(key);
      raced.confirmed ||= confirmed;
      return raced.key;
    }
    return this.remember(namespace, version, key, wrappedB64, confirmed);
  }

  private remember(
    namespace: string,
    version: number,
    key: Uint8Array,
    wrapped: string,
    confirmed: boolean,
  ): Uint8Array {
    const id = cacheId(namespace, version);
    const existing = this.cache.get(id);
    // Callers use a key at once after their await resumes, in this macrotask: a replaced key is
    // wiped after it, so one just handed out is never wiped under its caller.
    if (existing) setImmediate(() => zeroize(existing.key));
    this.cache.set(id, { key, wrapped, confirmed, expires: this.options.now() + this.options.cacheTtlMs });
    return key;
  }

  private evictExpired(): void {
    const now = this.options.now();
    for (const [id, entry] of this.cache) {
      if (entry.expires <= now) {
        zeroize(entry.key);
        this.cache.delete(id);
      }
    }
  }

  private context(namespace: string, version: number): Uint8Array {
    return encodeContext('coffer/keyring', this.clusterId, namespace, version);
  }

  private checkOpen(): void {
    if (this.closed) throw new CofferError('sealed', 'vault is sealed');
  }
}

const cacheId = (namespace: string, version: number) => `${namespace}#${version}`;

/**
 * Wraps reserved at a time in the stored counter. A restart uses up what is left of a block:
 * at most 1,024 of a version's 2^24 (`keyring_max_wraps`).
 */
const WRAP_BLOCK = 1024;

/**
 * Keyring records as read and written. Every write reads its namespace's record and the `sys`
 * one (twice), and puts back the record the next write of its group commit reads, so the same
 * bytes come back again and again: the bytes last checked against the schema (read, or encoded
 * from a checked record) are kept per namespace, and identical bytes are only parsed. Keyring
 * records are stored in clear (their versions wrapped by the master key), so nothing kept here
 * is secret.
 */
class KeyringRecords {
  private readonly checked = new Map<string, Buffer>();

  read(namespace: string, raw: Uint8Array | undefined): KeyringRecord | undefined {
    if (!raw) return undefined;
    if (this.checked.get(namespace)?.equals(raw)) return JSON.parse(utf8(raw)) as KeyringRecord;
    const record = decodeStored(keyringCodec, raw, 'keyring', KEYRING_PREFIX);
    this.remember(namespace, raw);
    return record;
  }

  /** The record's bytes; `vouched` (the caller changed a checked record in ways its schema allows) marks them checked. */
  encode(namespace: string, record: KeyringRecord, vouched: boolean): Uint8Array {
    const bytes = keyringCodec.encode(record);
    if (vouched) this.remember(namespace, bytes);
    else this.checked.delete(namespace);
    return bytes;
  }

  private remember(namespace: string, bytes: Uint8Array): void {
    if (this.checked.size >= MAX_CHECKED && !this.checked.has(namespace)) this.checked.clear();
    this.checked.set(namespace, Buffer.from(bytes));
  }
}

/** Namespaces whose checked record bytes are kept at most (a few hundred bytes each). */
const MAX_CHECKED = 1024;

/** Keyring versions whose uses are counted in memory at most (a few dozen bytes each). */
const MAX_COUNTED = 4096;

const utf8 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');

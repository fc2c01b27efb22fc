import { z } from 'zod';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { CofferError, isCofferError } from '../errors.js';
import type { UnsealedKeys, VaultStore } from '../keys/seal.js';
import { namespaceOf } from '../paths.js';
import type { Table, Tx } from '../store/barrier.js';
import { jsonCodec } from '../store/codec.js';
import { META_PREFIX, metaKey, prefixEnd, versionKey } from '../store/keys.js';
import { openVersion, sealVersion, type VersionAddress } from './record.js';
import type { PutSecretRequest, Secret } from '../../sdk/wire/types.js';
import { CERTIFICATE_FACTS, SECRET_TYPES, generatePassword, inspectCertificate, type SecretType } from './types.js';
import { MAX_DATA_BYTES, MAX_METADATA_KEYS } from '../../sdk/wire/constants.js';

export { MAX_BATCH, MAX_DATA_BYTES } from '../../sdk/wire/constants.js';

// What a secret key holds: the native API writes strings, the Vault API any JSON (docs/vault-compatibility.md).
import type { JsonValue } from '../../sdk/wire/schemas.js';
export type { JsonValue };

/** What a write takes: the wire request (docs/api.md "Secrets"), already validated at the HTTP edge, with values of any JSON. */
export type PutInput = Omit<PutSecretRequest, 'data'> & { data: Record<string, JsonValue> };

/** A version as stored: values as written (strings, or any JSON when written through the Vault API). */
/**
 * The caller's right to write, judged inside the write: `exists` is whether the secret is there
 * in the state being changed, so a secret created by a write queued just before counts as
 * existing. It throws to refuse.
 */
export type WriteCheck = (exists: boolean) => void;

export type StoredSecret = Omit<Secret, 'data'> & { data: Record<string, JsonValue> };

const versionInfo = z.object({
  version: z.number().int().positive(),
  type: z.enum(SECRET_TYPES),
  created_at: z.number(),
  deleted_at: z.number().nullable(),
  destroyed: z.boolean(),
  expires_at: z.number().nullable(),
});
export type VersionInfo = z.infer<typeof versionInfo>;

/** Stored under `meta/<path>`: everything about a secret except its values. */
const secretMeta = z.object({
  type: z.enum(SECRET_TYPES),
  current_version: z.number().int().nonnegative(),
  metadata: z.record(z.string(), z.string()),
  created_at: z.number(),
  updated_at: z.number(),
  versions: z.array(versionInfo),
  /** Versions kept for this secret (set through the Vault metadata route); default the engine's `maxVersions`. */
  max_versions: z.number().int().positive().optional(),
  /** Every write must carry `cas` (set through the Vault metadata route). */
  cas_required: z.boolean().optional(),
});
export type SecretMeta = z.infer<typeof secretMeta>;

export interface SecretsOptions {
  now: () => number;
  random: RandomSource;
  /** Versions kept per path; older ones are destroyed when a new version is written. */
  maxVersions: number;
}

/** What the Vault metadata route sets on a secret, existing or not yet (docs/vault-compatibility.md). */
export interface SecretSettings {
  metadata?: Record<string, string>;
  /**
   * Merged into the metadata inside the write (a null removes its key), so that two merges at
   * once each keep the other's keys; applied after `metadata`.
   */
  metadataPatch?: Record<string, string | null>;
  /** 0: back to the engine's default. */
  max_versions?: number;
  cas_required?: boolean;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * The secrets engine: versioned, typed secrets with check-and-set, soft delete, undelete and
 * destroy. Every write is one store mutation; values are sealed per version (record.ts).
 * Missing things are `undefined`; only HTTP turns that into 404.
 */
export class SecretsEngine {
  private readonly options: SecretsOptions;
  private readonly meta: Table<SecretMeta, UnsealedKeys>;

  constructor(
    private readonly store: VaultStore,
    options: Partial<SecretsOptions> = {},
  ) {
    this.options = { now: Date.now, random: systemRandom, maxVersions: 100, ...options };
    this.meta = store.table(META_PREFIX, jsonCodec(secretMeta), 'secret metadata record');
  }

  /**
   * Writes a new version. `keepMetadata`: the secret's metadata stays as it is (a Vault data
   * write, which never carries it) instead of being replaced by `input.metadata`. `authorize`
   * runs inside the write, against the state the write changes.
   */
  async put(
    path: string,
    input: PutInput,
    options: { keepMetadata?: boolean; authorize?: WriteCheck } = {},
  ): Promise<{ path: string; version: number; created_at: string }> {
    const keys = this.store.keys();
    const type = input.type ?? 'kv';
    const data = { ...input.data };
    if (type !== 'kv' && !Object.values(data).every((v) => typeof v === 'string'))
      throw new CofferError('invalid_request', `a ${type} secret holds string values only`);
    if (input.generate) {
      const { key, length = 32, charset = 'alphanumeric' } = input.generate;
      if (Object.hasOwn(data, key))
        throw new CofferError('invalid_request', `generate.key "${key}" is also given in data`);
      data[key] = generatePassword(length, charset, this.options.random);
    }
    const plaintext = Buffer.from(JSON.stringify(data), 'utf8');
    if (plaintext.length > MAX_DATA_BYTES)
      throw new CofferError('too_large', `data exceeds ${MAX_DATA_BYTES} bytes once encoded`);
    if (Object.keys(data).length === 0) throw new CofferError('invalid_request', 'data must hold at least one key');
    const metadata = { ...(input.metadata ?? {}) };
    let expiresAt = input.expires_at === undefined ? null : Date.parse(input.expires_at);
    if (type === 'certificate') {
      const facts = inspectCertificate(data as Record<string, string>); // string values only, checked above
      Object.assign(metadata, facts);
      expiresAt ??= Date.parse(facts.not_after);
    }
    if (expiresAt !== null && !Number.isFinite(expiresAt))
      throw new CofferError('invalid_request', 'expires_at must be an RFC 3339 timestamp');

    try {
      return await this.store.mutate(async (tx) => {
        const meta = this.meta.read(tx, path);
        options.authorize?.(meta !== undefined);
        if (meta?.cas_required && input.cas === undefined)
          throw new CofferError('invalid_request', `check-and-set is required for ${path}: send cas`);
        checkCas(meta, input.cas);
        const now = this.options.now();
        const version = (meta?.current_version ?? 0) + 1;
        const record = await sealVersion(
          tx,
          keys.keyrings,
          this.address(keys.clusterId, path, version),
          type,
          plaintext,
          this.options.random,
        );
        tx.put(versionKey(path, version), record);
        const next: SecretMeta = meta ?? {
          type,
          current_version: 0,
          metadata: {},
          created_at: now,
          updated_at: now,
          versions: [],
        };
        const previousType = next.type;
        next.type = type;
        next.current_version = version;
        if (!options.keepMetadata || !meta) next.metadata = metadata;
        // A Vault write (keepMetadata) stores a kv version: a certificate's facts would no longer describe it.
        else if (previousType === 'certificate' && type !== 'certificate')
          for (const fact of CERTIFICATE_FACTS) delete next.metadata[fact];
        next.updated_at = now;
        next.versions.push({
          version,
          type,
          created_at: now,
          deleted_at: null,
          destroyed: false,
          expires_at: expiresAt,
        });
        this.pruneVersions(tx, path, next);
        this.meta.write(tx, path, next);
        return { path, version, created_at: iso(now)! };
      });
    } finally {
      plaintext.fill(0);
    }
  }

  /** A version's value; `undefined` when the path or version is missing, deleted or destroyed. */
  async get(path: string, version?: number): Promise<StoredSecret | undefined> {
    const keys = this.store.keys(); // the read's one seal check: the barrier reads below and the DEK use these keys
    let plaintext: Uint8Array;
    let meta: SecretMeta | undefined;
    let info: VersionInfo | undefined;
    try {
      meta = await this.meta.get(path, keys);
      if (!meta) return undefined;
      const wanted = version ?? meta.current_version;
      info = meta.versions.find((v) => v.version === wanted);
      if (!info || info.deleted_at !== null || info.destroyed) return undefined;
      const record = await this.store.get(versionKey(path, info.version), keys);
      if (!record) return undefined;
      plaintext = await openVersion(keys.keyrings, this.address(keys.clusterId, path, info.version), info.type, record);
    } catch (e) {
      if (isCofferError(e, 'decryption_failed') || isCofferError(e, 'integrity_error')) {
        const which = info ? ` version ${info.version}` : '';
        throw new CofferError(
          'integrity_error',
          `secret ${path}${which} failed its integrity check`,
          isCofferError(e) ? e.detail : undefined,
        );
      }
      throw e;
    }
    let data: Record<string, JsonValue>;
    try {
      // Authenticated plaintext this engine wrote from a validated map (the AEAD refuses anything else).
      data = JSON.parse(
        Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength).toString('utf8'),
      ) as Record<string, string>;
    } finally {
      plaintext.fill(0);
    }
    return {
      path,
      version: info.version,
      type: info.type,
      data,
      metadata: meta.metadata,
      created_at: iso(info.created_at)!,
      expires_at: iso(info.expires_at),
    };
  }

  metadata(path: string): Promise<SecretMeta | undefined> {
    return this.meta.get(path);
  }

  /** Whether a secret exists at `path` (its key only: nothing is opened). */
  exists(path: string): boolean {
    return this.meta.has(path);
  }

  /**
   * Sets a secret's metadata, version limit or check-and-set rule; creates the secret with no
   * version yet when it does not exist (External Secrets Operator writes metadata first). A
   * lower limit destroys the oldest versions now, as the next write would. `authorize` runs
   * inside the write, against the state it changes; `authorizeLowerLimit` too, when the limit
   * of a secret that keeps versions goes down: that erases history, which is more than a
   * metadata write, so the routes ask for `destroy` there.
   */
  async configure(
    path: string,
    settings: SecretSettings,
    checks: { authorize?: WriteCheck; authorizeLowerLimit?: () => void } = {},
  ): Promise<void> {
    await this.store.mutate((tx) => {
      const now = this.options.now();
      const existing = this.meta.read(tx, path);
      checks.authorize?.(existing !== undefined);
      const limit = settings.max_versions === 0 ? this.options.maxVersions : settings.max_versions; // 0: the engine's
      if (existing && existing.versions.length > 0 && limit !== undefined && limit < this.versionLimit(existing))
        checks.authorizeLowerLimit?.();
      const meta: SecretMeta = existing ?? {
        type: 'kv',
        current_version: 0,
        metadata: {},
        created_at: now,
        updated_at: now,
        versions: [],
      };
      if (settings.metadata !== undefined) meta.metadata = { ...settings.metadata };
      if (settings.metadataPatch !== undefined) {
        const merged = { ...meta.metadata };
        for (const [key, value] of Object.entries(settings.metadataPatch)) {
          if (value === null) delete merged[key];
          else merged[key] = value;
        }
        // The bound every metadata write is held to (docs/api.md), on what the merge leaves.
        if (Object.keys(merged).length > MAX_METADATA_KEYS)
          throw new CofferError(
            'invalid_request',
            `custom_metadata: at most ${MAX_METADATA_KEYS} keys after the merge`,
          );
        meta.metadata = merged;
      }
      if (settings.max_versions !== undefined) {
        if (settings.max_versions === 0) delete meta.max_versions;
        else meta.max_versions = settings.max_versions;
      }
      if (settings.cas_required !== undefined) meta.cas_required = settings.cas_required;
      meta.updated_at = now;
      this.pruneVersions(tx, path, meta);
      this.meta.write(tx, path, meta);
    });
  }

  /** Erases a secret: every version (as destroy does) and its metadata; false when there was none. */
  async purge(path: string): Promise<boolean> {
    return this.store.mutate((tx) => {
      const meta = this.meta.read(tx, path);
      if (!meta) return false;
      for (const info of meta.versions) tx.del(versionKey(path, info.version));
      this.meta.delete(tx, path);
      return true;
    });
  }

  /** Soft-deletes the given versions (default: the current one). */
  async delete(path: string, versions?: number[]): Promise<boolean> {
    return this.changeVersions(path, versions, (info, now) => {
      if (!info.destroyed && info.deleted_at === null) info.deleted_at = now;
    });
  }

  async undelete(path: string, versions: number[]): Promise<boolean> {
    return this.changeVersions(path, versions, (info) => {
      if (!info.destroyed) info.deleted_at = null;
    });
  }

  /** Erases the ciphertext and wrapped DEK of the given versions for good (crypto-shred). */
  async destroy(path: string, versions: number[]): Promise<boolean> {
    return this.changeVersions(path, versions, (info, _now, tx) => {
      info.destroyed = true;
      tx.del(versionKey(path, info.version));
    });
  }

  /**
   * Paths equal to `prefix` or below it (segment boundary), in byte order, after `after`.
   * An empty prefix lists everything.
   */
  async list(
    prefix: string,
    after: string | undefined,
    limit: number,
  ): Promise<{ keys: string[]; next: string | null }> {
    const keys: string[] = [];
    if (prefix && (after === undefined || after < prefix) && this.meta.has(prefix)) keys.push(prefix);
    const below = prefix ? `${META_PREFIX}${prefix}/` : META_PREFIX;
    const cursor = after !== undefined ? metaKey(after) : undefined;
    const names = await this.store.names(
      cursor !== undefined && cursor >= below ? `${cursor}\u0000` : below,
      prefixEnd(below),
      limit + 1 - keys.length,
    );
    for (const key of names) keys.push(key.slice(META_PREFIX.length));
    const more = keys.length > limit;
    const page = keys.slice(0, limit);
    return { keys: page, next: more ? page[page.length - 1]! : null };
  }

  /** Secrets whose current version expires before `now + withinMs` (already expired included). */
  async expiring(
    withinMs: number,
  ): Promise<{ path: string; version: number; type: SecretType; expires_at: string; expired: boolean }[]> {
    const now = this.options.now();
    const out = [];
    for (const [path, meta] of await this.meta.scan()) {
      const info = meta.versions.find((v) => v.version === meta.current_version);
      if (!info || info.expires_at === null || info.deleted_at !== null || info.destroyed) continue;
      if (info.expires_at <= now + withinMs) {
        out.push({
          path,
          version: info.version,
          type: info.type,
          expires_at: iso(info.expires_at)!,
          expired: info.expires_at <= now,
        });
      }
    }
    return out.sort((a, b) => a.expires_at.localeCompare(b.expires_at) || a.path.localeCompare(b.path));
  }

  private async changeVersions(
    path: string,
    versions: number[] | undefined,
    change: (info: VersionInfo, now: number, tx: Tx) => void,
  ): Promise<boolean> {
    return this.store.mutate((tx) => {
      const meta = this.meta.read(tx, path);
      if (!meta) return false;
      const wanted = versions ?? [meta.current_version];
      const infos = wanted.map((v) => meta.versions.find((i) => i.version === v));
      const missing = wanted.filter((_, i) => !infos[i]);
      if (missing.length > 0) throw new CofferError('not_found', `secret ${path} has no version ${missing.join(', ')}`);
      const now = this.options.now();
      for (const info of infos) change(info!, now, tx);
      meta.updated_at = now;
      this.meta.write(tx, path, meta);
      return true;
    });
  }

  /** How many versions of this secret are kept: its own `max_versions`, else the engine's. */
  versionLimit(meta: Pick<SecretMeta, 'max_versions'>): number {
    return meta.max_versions ?? this.options.maxVersions;
  }

  private pruneVersions(tx: Tx, path: string, meta: SecretMeta): void {
    while (meta.versions.length > this.versionLimit(meta)) {
      const oldest = meta.versions.shift()!;
      tx.del(versionKey(path, oldest.version));
    }
  }

  private address(clusterId: string, path: string, version: number): VersionAddress {
    return { clusterId, namespace: namespaceOf(path), path, version };
  }
}

function checkCas(meta: SecretMeta | undefined, cas: number | undefined): void {
  if (cas === undefined) return;
  const current = meta?.current_version ?? 0;
  if (cas !== current) {
    throw new CofferError(
      'cas_mismatch',
      cas === 0
        ? 'check-and-set failed: the secret already exists'
        : `check-and-set failed: current version is ${current}, not ${cas}`,
    );
  }
}

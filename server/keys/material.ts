import { CofferError } from '../errors.js';
import { z } from 'zod';
import { decodeStored, jsonCodec } from '../store/codec.js';
import type { KeyValueStore, Tx } from '../store/db.js';
import { masterMetaKey as metaKey } from '../store/keys.js';
import type { HsmImport, MasterKeyProvider } from './provider.js';
import { changeMasterVersions } from './version-lock.js';

/** Usage rights of imported master key material (like AWS KMS's import parameters). */
export interface MaterialRights {
  /** Whether a quorum may export it again (`POST /v1/sys/byok/export`). */
  exportable: boolean;
  /** When the material stops working (ISO 8601), or null for never. */
  valid_to: string | null;
}

/** Stored (clear) under `sys/master-meta/<v>`: the provider checks it before it unwraps a keyring. */
const materialCodec = jsonCodec(
  z.looseObject({ exportable: z.boolean(), valid_to: z.string().nullable(), imported_at: z.string() }),
);
type MaterialRecord = MaterialRights & { imported_at: string };

export interface MasterKeyStatus {
  version: number;
  imported: boolean;
  exportable: boolean;
  valid_to: string | null;
  expired: boolean;
}

/** Records the rights of an imported version, in the caller's mutation. */
export function stageMaterialRights(tx: Tx, version: number, rights: MaterialRights, now: number): void {
  tx.put(
    metaKey(version),
    materialCodec.encode({ ...rights, imported_at: new Date(now).toISOString() } satisfies MaterialRecord),
  );
}

/**
 * A provider that honours the rights of imported material: past `valid_to` a version neither
 * wraps nor unwraps (`key_expired`), and a version imported as non-exportable is never
 * exported. Versions the vault generated itself have no record and no limits.
 */
export class GovernedProvider implements MasterKeyProvider {
  constructor(
    /** The provider holding the key (for its own counters and health). */
    readonly inner: MasterKeyProvider,
    private readonly store: KeyValueStore,
    private readonly now: () => number,
  ) {}

  get kind(): string {
    return this.inner.kind;
  }

  get hsmImport(): HsmImport | undefined {
    return this.inner.hsmImport;
  }

  currentVersion(): number {
    return this.inner.currentVersion();
  }

  async wrap(key: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
    this.checkUsable(this.inner.currentVersion());
    return this.inner.wrap(key, context);
  }

  async unwrap(wrapped: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
    this.checkUsable(this.inner.versionOf(wrapped));
    return this.inner.unwrap(wrapped, context);
  }

  versionOf(wrapped: Uint8Array): number {
    return this.inner.versionOf(wrapped);
  }

  /** A generated version has no limits: drop rights a failed import may have left for its number. */
  rotate(): Promise<number> {
    return changeMasterVersions(async () => {
      const version = await this.inner.rotate();
      if (this.record(version)) await this.store.mutate((tx) => tx.del(metaKey(version)));
      return version;
    });
  }

  importVersion(material: Uint8Array): Promise<number> {
    return this.inner.importVersion(material);
  }

  exportCurrent(): { version: number; material: Uint8Array } {
    const record = this.record(this.inner.currentVersion());
    if (record && !record.exportable)
      throw new CofferError(
        'not_exportable',
        'the current master key was imported as non-exportable: it cannot be exported',
      );
    // Past its valid_to the material is retired: it no longer wraps or unwraps, nor leaves the vault.
    if (record && isExpired(record, this.now()))
      throw new CofferError(
        'key_expired',
        `the current master key expired at ${record.valid_to} (its BYOK valid_to): it cannot be exported`,
      );
    return this.inner.exportCurrent();
  }

  close(): void {
    this.inner.close();
  }

  status(): MasterKeyStatus {
    const version = this.inner.currentVersion();
    const record = this.record(version);
    return {
      version,
      imported: record !== undefined,
      exportable: this.inner.kind !== 'pkcs11' && (record?.exportable ?? true),
      valid_to: record?.valid_to ?? null,
      expired: record ? isExpired(record, this.now()) : false,
    };
  }

  private checkUsable(version: number): void {
    const record = this.record(version);
    if (record && isExpired(record, this.now())) {
      throw new CofferError(
        'key_expired',
        `master key version ${version} expired at ${record.valid_to} (its BYOK valid_to): what it wraps stays unreadable`,
      );
    }
  }

  private record(version: number): MaterialRecord | undefined {
    const raw = this.store.get(metaKey(version));
    return raw ? decodeStored(materialCodec, raw, 'master key usage record', metaKey(version)) : undefined;
  }
}

const isExpired = (record: MaterialRecord, now: number) =>
  record.valid_to !== null && Date.parse(record.valid_to) <= now;

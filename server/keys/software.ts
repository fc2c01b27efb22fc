import { encodeContext, zeroize } from '../crypto/bytes.js';
import { envelopeKeyVersion, openEnvelope, sealEnvelope } from '../crypto/envelope.js';
import { KEY_LENGTH } from '../crypto/aead.js';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { CofferError, isCofferError } from '../errors.js';
import type { KeyValueStore } from '../store/db.js';
import { MASTER_PREFIX, masterKey } from '../store/keys.js';
import type { MasterKeyProvider } from './provider.js';

/**
 * Software master-key provider. Master versions are random 256-bit keys stored in the database
 * wrapped by the root key (from a key file, an env var, a passphrase or Shamir shares). The root
 * key never reaches the disk through Coffer; rotation adds a new random master version.
 */
export class SoftwareProvider implements MasterKeyProvider {
  readonly kind = 'software';
  private readonly versions = new Map<number, Uint8Array>();
  private current = 0;
  private closed = false;

  private constructor(
    private readonly store: KeyValueStore,
    private rootKey: Uint8Array,
    private readonly clusterId: string,
    private readonly random: RandomSource,
  ) {}

  /** First start: creates master version 1. The provider takes ownership of `rootKey`. */
  static async create(
    store: KeyValueStore,
    rootKey: Uint8Array,
    clusterId: string,
    random = systemRandom,
  ): Promise<SoftwareProvider> {
    const provider = new SoftwareProvider(store, rootKey, clusterId, random);
    await provider.rotate();
    return provider;
  }

  /**
   * Loads every master version. A wrong root key fails on the first version, before anything
   * is loaded or written: `unseal_failed`.
   */
  static async open(
    store: KeyValueStore,
    rootKey: Uint8Array,
    clusterId: string,
    random = systemRandom,
  ): Promise<SoftwareProvider> {
    const provider = new SoftwareProvider(store, rootKey, clusterId, random);
    const rows = await store.scanPrefix(MASTER_PREFIX);
    if (rows.length === 0) throw new CofferError('internal', 'no master key versions found in the data directory');
    try {
      for (const [, wrapped] of rows) {
        const version = envelopeKeyVersion(wrapped);
        provider.versions.set(version, openEnvelope(rootKey, wrapped, provider.masterContext(version)));
        provider.current = Math.max(provider.current, version);
      }
    } catch (e) {
      provider.close();
      if (isCofferError(e, 'decryption_failed'))
        throw new CofferError('unseal_failed', 'the key does not open this vault');
      throw e;
    }
    return provider;
  }

  currentVersion(): number {
    return this.current;
  }

  async wrap(key: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
    return sealEnvelope(this.versionKey(this.current), this.current, key, context, this.random);
  }

  async unwrap(wrapped: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
    return openEnvelope(this.versionKey(envelopeKeyVersion(wrapped)), wrapped, context);
  }

  versionOf(wrapped: Uint8Array): number {
    return envelopeKeyVersion(wrapped);
  }

  async rotate(): Promise<number> {
    return this.install(this.random(KEY_LENGTH));
  }

  async importVersion(material: Uint8Array): Promise<number> {
    if (material.length !== KEY_LENGTH)
      throw new CofferError('invalid_request', 'imported key material must be 256 bits');
    return this.install(Uint8Array.from(material));
  }

  exportCurrent(): { version: number; material: Uint8Array } {
    return { version: this.current, material: Uint8Array.from(this.versionKey(this.current)) };
  }

  /** Persists `key` (owned from here on) as the next version, then makes it current. */
  private async install(key: Uint8Array): Promise<number> {
    this.checkOpen();
    const version = this.current + 1;
    const wrapped = sealEnvelope(this.rootKey, version, key, this.masterContext(version), this.random);
    try {
      await this.store.mutate((tx) => tx.put(masterKey(version), wrapped));
    } catch (e) {
      zeroize(key);
      throw e;
    }
    this.versions.set(version, key);
    this.current = version;
    return version;
  }

  close(): void {
    this.closed = true;
    for (const key of this.versions.values()) zeroize(key);
    this.versions.clear();
    zeroize(this.rootKey);
  }

  private versionKey(version: number): Uint8Array {
    this.checkOpen();
    const key = this.versions.get(version);
    if (!key) throw new CofferError('decryption_failed', 'decryption failed');
    return key;
  }

  private masterContext(version: number): Uint8Array {
    return encodeContext('coffer/master', this.clusterId, version);
  }

  private checkOpen(): void {
    if (this.closed) throw new CofferError('sealed', 'vault is sealed');
  }
}

import { encodeContext, fromBase64, toBase64, zeroize } from '../crypto/bytes.js';
import { KEY_LENGTH, open, seal } from '../crypto/aead.js';
import { envelopeKeyVersion, openEnvelope, sealEnvelope } from '../crypto/envelope.js';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { CofferError, isCofferError } from '../errors.js';
import { z } from 'zod';
import type { UnsealedKeys, VaultStore } from '../keys/seal.js';
import type { Table, Tx } from '../store/barrier.js';
import { jsonCodec } from '../store/codec.js';
import { KEY_USAGES as USAGES, type KeyUsage as Usage } from '../../sdk/wire/constants.js';
import type { TransitKeyInfo } from '../../sdk/wire/types.js';
import { TRANSIT_KEY_PREFIX as KEY_PREFIX } from '../store/keys.js';

/**
 * Encryption as a service: named keys with versions, for services that encrypt on their own.
 * Key material never leaves the vault (keys are sealed under the `transit` keyring); callers
 * get ciphertexts `coffer:v<version>:<base64>` that name the key version, bound to the key name
 * and an optional caller context as AAD. Data keys follow AWS KMS GenerateDataKey.
 */
export { USAGES, type Usage };
const CIPHERTEXT = /^coffer:v([1-9][0-9]{0,9}):([A-Za-z0-9+/]+={0,2})$/;
export const MAX_PLAINTEXT = 64 * 1024;

const transitKey = z.object({
  name: z.string(),
  latest: z.number().int().nonnegative(),
  min_decryption_version: z.number().int().positive(),
  exportable: z.boolean(),
  usage: z.array(z.enum(USAGES)),
  created_at: z.number(),
  /** version -> key material sealed under the transit keyring */
  versions: z.record(z.string(), z.object({ sealed: z.string(), created_at: z.number() })),
});
type TransitKey = z.infer<typeof transitKey>;

/** What `GET /v1/keys/{name}` answers (sdk/wire/types.ts). */
export type KeyInfo = TransitKeyInfo;

const materialContext = (clusterId: string, name: string, version: number) =>
  encodeContext('coffer/transit-key', clusterId, name, version);
const dataContext = (clusterId: string, name: string, version: number, context: Uint8Array) =>
  encodeContext('coffer/transit-data', clusterId, name, version, Buffer.from(context).toString('base64'));
const unusable = () => new CofferError('invalid_request', 'ciphertext is not valid for this key');

export class TransitEngine {
  private readonly keys: Table<TransitKey, UnsealedKeys>;

  constructor(
    private readonly store: VaultStore,
    private readonly now: () => number = Date.now,
    private readonly random: RandomSource = systemRandom,
  ) {
    this.keys = store.table(KEY_PREFIX, jsonCodec(transitKey), 'transit key');
  }

  async create(
    name: string,
    options: { exportable?: boolean | undefined; usage?: Usage[] | undefined },
  ): Promise<KeyInfo> {
    const keys = this.store.keys();
    return this.store.mutate(async (tx) => {
      if (tx.get(this.keys.key(name))) throw new CofferError('already_exists', `key ${name} already exists`);
      const key: TransitKey = {
        name,
        latest: 0,
        min_decryption_version: 1,
        exportable: options.exportable ?? false,
        usage: [...new Set(options.usage ?? [...USAGES])],
        created_at: this.now(),
        versions: {},
      };
      await this.addVersion(tx, keys, key);
      this.keys.write(tx, name, key);
      return describe(key);
    });
  }

  async info(name: string): Promise<KeyInfo | undefined> {
    const key = await this.keys.get(name);
    return key && describe(key);
  }

  async rotate(name: string): Promise<KeyInfo> {
    const keys = this.store.keys();
    return this.store.mutate(async (tx) => {
      const key = this.requireIn(tx, name);
      await this.addVersion(tx, keys, key);
      this.keys.write(tx, name, key);
      return describe(key);
    });
  }

  /** Versions below `min` stop decrypting (after a compromise); `min` cannot pass the latest. */
  async configure(name: string, minDecryptionVersion: number): Promise<KeyInfo> {
    return this.store.mutate((tx) => {
      const key = this.requireIn(tx, name);
      if (minDecryptionVersion > key.latest)
        throw new CofferError(
          'invalid_request',
          `min_decryption_version cannot exceed the latest version ${key.latest}`,
        );
      key.min_decryption_version = minDecryptionVersion;
      this.keys.write(tx, name, key);
      return describe(key);
    });
  }

  async encrypt(name: string, plaintext: Uint8Array, context: Uint8Array = new Uint8Array()): Promise<string> {
    const keys = this.store.keys();
    return this.encryptWith(keys, await this.require(keys, name, 'encrypt'), plaintext, context);
  }

  async decrypt(name: string, ciphertext: string, context: Uint8Array = new Uint8Array()): Promise<Uint8Array> {
    const keys = this.store.keys();
    return this.decryptWith(keys, await this.require(keys, name, 'decrypt'), ciphertext, context);
  }

  /** A fresh 256-bit data key: plaintext for immediate use, and the same encrypted for storage. */
  async dataKey(
    name: string,
    context: Uint8Array = new Uint8Array(),
  ): Promise<{ plaintext: Uint8Array; ciphertext: string }> {
    const keys = this.store.keys();
    const key = await this.require(keys, name, 'datakey');
    const plaintext = this.random(KEY_LENGTH);
    return { plaintext, ciphertext: await this.encryptWith(keys, key, plaintext, context) };
  }

  /** Re-encrypts under the latest version; the plaintext never leaves the server. */
  async rewrap(name: string, ciphertext: string, context: Uint8Array = new Uint8Array()): Promise<string> {
    const keys = this.store.keys();
    // A rewrap decrypts and encrypts: a key that does not allow both does not rewrap (its answer
    // would tell a caller that may not decrypt whether a ciphertext and context are valid).
    const key = checkUsage(name, await this.require(keys, name, 'decrypt'), 'encrypt');
    const plaintext = await this.decryptWith(keys, key, ciphertext, context);
    try {
      return await this.encryptWith(keys, key, plaintext, context);
    } finally {
      zeroize(plaintext);
    }
  }

  private async encryptWith(
    keys: UnsealedKeys,
    key: TransitKey,
    plaintext: Uint8Array,
    context: Uint8Array,
  ): Promise<string> {
    if (plaintext.length > MAX_PLAINTEXT)
      throw new CofferError('too_large', `plaintext exceeds ${MAX_PLAINTEXT} bytes`);
    const material = await this.material(keys, key, key.latest);
    try {
      return `coffer:v${key.latest}:${toBase64(seal(material, plaintext, dataContext(keys.clusterId, key.name, key.latest, context), this.random))}`;
    } finally {
      zeroize(material);
    }
  }

  private async decryptWith(
    keys: UnsealedKeys,
    key: TransitKey,
    ciphertext: string,
    context: Uint8Array,
  ): Promise<Uint8Array> {
    const m = CIPHERTEXT.exec(ciphertext);
    const version = m ? Number(m[1]) : 0;
    const body = m ? fromBase64(m[2]!) : undefined;
    if (!body || !key.versions[String(version)]) throw unusable();
    if (version < key.min_decryption_version)
      throw new CofferError(
        'invalid_request',
        `version ${version} of key ${key.name} is below its min_decryption_version`,
      );
    const material = await this.material(keys, key, version);
    try {
      return open(material, body, dataContext(keys.clusterId, key.name, version, context));
    } catch (e) {
      if (isCofferError(e, 'decryption_failed')) throw unusable();
      throw e;
    } finally {
      zeroize(material);
    }
  }

  /**
   * After a rotation of the `transit` keyring (`POST /v1/sys/keyrings/transit/rotate` with
   * `rewrap`): every key version's material sealed under an older keyring version is sealed
   * again under the current one, a key per batch, so the older versions can be retired. The
   * material is opened and wiped in the same turn; what it encrypts is untouched.
   */
  async rewrapKeys(): Promise<{ total: number; rewrapped: number }> {
    const keys = this.store.keys();
    let total = 0;
    let rewrapped = 0;
    for (const name of await this.keys.ids()) {
      await this.store.mutate(async (tx) => {
        const key = this.keys.read(tx, name);
        if (!key) return;
        const ring = await keys.keyrings.encryptionKey(tx, 'transit');
        let changed = false;
        for (const [version, entry] of Object.entries(key.versions)) {
          total++;
          if (envelopeKeyVersion(fromBase64(entry.sealed)!) === ring.version) continue;
          const material = await this.material(keys, key, Number(version));
          try {
            entry.sealed = this.sealMaterial(ring, keys.clusterId, key.name, Number(version), material);
          } finally {
            zeroize(material);
          }
          changed = true;
          rewrapped++;
        }
        if (changed) this.keys.write(tx, name, key);
      });
    }
    return { total, rewrapped };
  }

  private async addVersion(tx: Tx, keys: UnsealedKeys, key: TransitKey): Promise<void> {
    const version = key.latest + 1;
    const material = this.random(KEY_LENGTH);
    const ring = await keys.keyrings.encryptionKey(tx, 'transit');
    key.versions[String(version)] = {
      sealed: this.sealMaterial(ring, keys.clusterId, key.name, version, material),
      created_at: this.now(),
    };
    key.latest = version;
    zeroize(material);
  }

  /** A key version's material sealed under a transit keyring version, bound to the key and version. */
  private sealMaterial(
    ring: { version: number; key: Uint8Array },
    clusterId: string,
    name: string,
    version: number,
    material: Uint8Array,
  ): string {
    return toBase64(
      sealEnvelope(ring.key, ring.version, material, materialContext(clusterId, name, version), this.random),
    );
  }

  private async material(keys: UnsealedKeys, key: TransitKey, version: number): Promise<Uint8Array> {
    const sealed = fromBase64(key.versions[String(version)]!.sealed)!;
    const ringKey = await keys.keyrings.decryptionKey('transit', envelopeKeyVersion(sealed));
    return openEnvelope(ringKey, sealed, materialContext(keys.clusterId, key.name, version));
  }

  private async require(keys: UnsealedKeys, name: string, usage?: Usage): Promise<TransitKey> {
    return checkUsage(name, await this.keys.get(name, keys), usage);
  }

  private requireIn(tx: Tx, name: string): TransitKey {
    return checkUsage(name, this.keys.read(tx, name));
  }
}

function checkUsage(name: string, key: TransitKey | undefined, usage?: Usage): TransitKey {
  if (!key) throw new CofferError('not_found', `key ${name} not found`);
  if (usage && !key.usage.includes(usage)) throw new CofferError('forbidden', `key ${name} does not allow ${usage}`);
  return key;
}

function describe(key: TransitKey): KeyInfo {
  return {
    name: key.name,
    latest_version: key.latest,
    min_decryption_version: key.min_decryption_version,
    exportable: key.exportable,
    usage: key.usage,
    versions: Object.entries(key.versions).map(([v, e]) => ({
      version: Number(v),
      created_at: new Date(e.created_at).toISOString(),
    })),
  };
}

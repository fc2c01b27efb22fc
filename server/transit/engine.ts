import { encodeContext, fromBase64, toBase64, zeroize } from '../crypto/bytes.js';
import { KEY_LENGTH, open, seal } from '../crypto/aead.js';
import { envelopeKeyVersion, openEnvelope, sealEnvelope } from '../crypto/envelope.js';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { CofferError, isCofferError } from '../errors.js';
import type { SealManager, UnsealedKeys } from '../keys/seal.js';
import type { Store } from '../store/db.js';
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

interface TransitKey {
  name: string;
  latest: number;
  min_decryption_version: number;
  exportable: boolean;
  usage: Usage[];
  created_at: number;
  /** version -> key material sealed under the transit keyring */
  versions: Record<string, { sealed: string; created_at: number }>;
}

/** What `GET /v1/keys/{name}` answers (sdk/wire/types.ts). */
export type KeyInfo = TransitKeyInfo;

const materialContext = (clusterId: string, name: string, version: number) => encodeContext('coffer/transit-key', clusterId, name, version);
const dataContext = (clusterId: string, name: string, version: number, context: Uint8Array) =>
  encodeContext('coffer/transit-data', clusterId, name, version, Buffer.from(context).toString('base64'));
const unusable = () => new CofferError('invalid_request', 'ciphertext is not valid for this key');

export class TransitEngine {
  constructor(
    private readonly store: Store,
    private readonly seal: SealManager,
    private readonly now: () => number = Date.now,
    private readonly random: RandomSource = systemRandom,
  ) {}

  async create(name: string, options: { exportable?: boolean; usage?: Usage[] }): Promise<KeyInfo> {
    const keys = this.seal.keys();
    return this.store.mutate(async (tx) => {
      if (tx.get(KEY_PREFIX + name)) throw new CofferError('already_exists', `key ${name} already exists`);
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
      tx.put(KEY_PREFIX + name, Buffer.from(JSON.stringify(key)));
      return describe(key);
    });
  }

  info(name: string): KeyInfo | undefined {
    this.seal.keys();
    const key = this.read(name);
    return key && describe(key);
  }

  async rotate(name: string): Promise<KeyInfo> {
    const keys = this.seal.keys();
    return this.store.mutate(async (tx) => {
      const key = this.require(name);
      await this.addVersion(tx, keys, key);
      tx.put(KEY_PREFIX + name, Buffer.from(JSON.stringify(key)));
      return describe(key);
    });
  }

  /** Versions below `min` stop decrypting (after a compromise); `min` cannot pass the latest. */
  async configure(name: string, minDecryptionVersion: number): Promise<KeyInfo> {
    return this.store.mutate((tx) => {
      const key = this.require(name);
      if (minDecryptionVersion > key.latest) throw new CofferError('invalid_request', `min_decryption_version cannot exceed the latest version ${key.latest}`);
      key.min_decryption_version = minDecryptionVersion;
      tx.put(KEY_PREFIX + name, Buffer.from(JSON.stringify(key)));
      return describe(key);
    });
  }

  async encrypt(name: string, plaintext: Uint8Array, context: Uint8Array = new Uint8Array()): Promise<string> {
    const key = this.require(name, 'encrypt');
    return this.encryptWith(key, plaintext, context);
  }

  async decrypt(name: string, ciphertext: string, context: Uint8Array = new Uint8Array()): Promise<Uint8Array> {
    return this.decryptWith(this.require(name, 'decrypt'), ciphertext, context);
  }

  /** A fresh 256-bit data key: plaintext for immediate use, and the same encrypted for storage. */
  async dataKey(name: string, context: Uint8Array = new Uint8Array()): Promise<{ plaintext: Uint8Array; ciphertext: string }> {
    const key = this.require(name, 'datakey');
    const plaintext = this.random(KEY_LENGTH);
    return { plaintext, ciphertext: await this.encryptWith(key, plaintext, context) };
  }

  /** Re-encrypts under the latest version; the plaintext never leaves the server. */
  async rewrap(name: string, ciphertext: string, context: Uint8Array = new Uint8Array()): Promise<string> {
    const key = this.require(name);
    const plaintext = await this.decryptWith(key, ciphertext, context);
    try {
      return await this.encryptWith(key, plaintext, context);
    } finally {
      zeroize(plaintext);
    }
  }

  private async encryptWith(key: TransitKey, plaintext: Uint8Array, context: Uint8Array): Promise<string> {
    if (plaintext.length > MAX_PLAINTEXT) throw new CofferError('too_large', `plaintext exceeds ${MAX_PLAINTEXT} bytes`);
    const keys = this.seal.keys();
    const material = await this.material(keys, key, key.latest);
    try {
      return `coffer:v${key.latest}:${toBase64(seal(material, plaintext, dataContext(keys.clusterId, key.name, key.latest, context), this.random))}`;
    } finally {
      zeroize(material);
    }
  }

  private async decryptWith(key: TransitKey, ciphertext: string, context: Uint8Array): Promise<Uint8Array> {
    const keys = this.seal.keys();
    const m = CIPHERTEXT.exec(ciphertext);
    const version = m ? Number(m[1]) : 0;
    const body = m ? fromBase64(m[2]!) : undefined;
    if (!body || !key.versions[String(version)]) throw unusable();
    if (version < key.min_decryption_version) throw new CofferError('invalid_request', `version ${version} of key ${key.name} is below its min_decryption_version`);
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

  private async addVersion(tx: Parameters<Parameters<Store['mutate']>[0]>[0], keys: UnsealedKeys, key: TransitKey): Promise<void> {
    const version = key.latest + 1;
    const material = this.random(KEY_LENGTH);
    const { version: ringVersion, key: ringKey } = await keys.keyrings.encryptionKey(tx, 'transit');
    key.versions[String(version)] = { sealed: toBase64(sealEnvelope(ringKey, ringVersion, material, materialContext(keys.clusterId, key.name, version), this.random)), created_at: this.now() };
    key.latest = version;
    zeroize(material);
  }

  private async material(keys: UnsealedKeys, key: TransitKey, version: number): Promise<Uint8Array> {
    const sealed = fromBase64(key.versions[String(version)]!.sealed)!;
    const ringKey = await keys.keyrings.decryptionKey('transit', envelopeKeyVersion(sealed));
    return openEnvelope(ringKey, sealed, materialContext(keys.clusterId, key.name, version));
  }

  private read(name: string): TransitKey | undefined {
    const raw = this.store.get(KEY_PREFIX + name);
    return raw ? (JSON.parse(Buffer.from(raw).toString()) as TransitKey) : undefined;
  }

  private require(name: string, usage?: Usage): TransitKey {
    this.seal.keys();
    const key = this.read(name);
    if (!key) throw new CofferError('not_found', `key ${name} not found`);
    if (usage && !key.usage.includes(usage)) throw new CofferError('forbidden', `key ${name} does not allow ${usage}`);
    return key;
  }
}

function describe(key: TransitKey): KeyInfo {
  return {
    name: key.name,
    latest_version: key.latest,
    min_decryption_version: key.min_decryption_version,
    exportable: key.exportable,
    usage: key.usage,
    versions: Object.entries(key.versions).map(([v, e]) => ({ version: Number(v), created_at: new Date(e.created_at).toISOString() })),
  };
}

import { createHash } from 'node:crypto';
import { unwrapImport, wrapForExport } from '../crypto/keywrap.js';
import { zeroize } from '../crypto/bytes.js';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { CofferError } from '../errors.js';
import type { Store } from '../store/db.js';
import type { SealManager } from './seal.js';
import { createSealedKeyPair, openSealedKeyPair, type SealedKeyPairRecord } from './sealed-keypair.js';

const WRAPPING_KEY = 'byok/wrapping-key';
const TOKEN_PREFIX = 'byok/token/';
const PURPOSE = 'byok-wrapping';
export const IMPORT_TOKEN_TTL_MS = 24 * 3600_000;

interface TokenRecord {
  expires_at: number;
  used: boolean;
}

const digest = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * Bring your own key: the vault publishes an RSA-4096 wrapping key (stored sealed) with a
 * single-use import token valid 24 hours; the customer wraps 256-bit key material to it
 * (RSA-OAEP + AES-KWP, sdk/byok.ts or their HSM); the import unwraps it, installs it as the
 * new master version and re-wraps every keyring under it.
 */
export class ByokService {
  constructor(
    private readonly store: Store,
    private readonly seal: SealManager,
    private readonly now: () => number = Date.now,
    private readonly random: RandomSource = systemRandom,
  ) {}

  async wrappingKey(): Promise<{ public_key_pem: string; import_token: string; expires_at: string; oaep_hashes: string[] }> {
    const keys = this.seal.keys();
    const token = `cof_imp_${Buffer.from(this.random(32)).toString('base64url')}`;
    const expires = this.now() + IMPORT_TOKEN_TTL_MS;
    const existing = this.record();
    const generated = existing ? undefined : await this.store.mutate(async (tx) => (await createSealedKeyPair(tx, keys, PURPOSE, this.now(), this.random, 'rsa-4096')).record);
    const record = existing ?? generated!;
    await this.store.mutate((tx) => {
      if (generated) tx.put(WRAPPING_KEY, Buffer.from(JSON.stringify(generated)));
      tx.put(TOKEN_PREFIX + digest(token), Buffer.from(JSON.stringify({ expires_at: expires, used: false } satisfies TokenRecord)));
    });
    return { public_key_pem: record.public_pem, import_token: token, expires_at: new Date(expires).toISOString(), oaep_hashes: ['sha256', 'sha1'] };
  }

  /** Imports wrapped key material as the new master version; the token is spent even on failure. */
  async import(token: string, wrappedKey: string, oaepHash: 'sha256' | 'sha1'): Promise<{ master_version: number; keyrings_rewrapped: number }> {
    const keys = this.seal.keys();
    const key = TOKEN_PREFIX + digest(token);
    const valid = await this.store.mutate((tx) => {
      const raw = tx.get(key);
      const record = raw ? (JSON.parse(Buffer.from(raw).toString()) as TokenRecord) : undefined;
      if (!record || record.used || record.expires_at <= this.now()) return false;
      tx.put(key, Buffer.from(JSON.stringify({ ...record, used: true })));
      return true;
    });
    if (!valid) throw new CofferError('forbidden', 'the import token is unknown, used or expired: get a new one from GET /v1/sys/byok/wrapping-key');
    const record = this.record();
    if (!record) throw new CofferError('internal', 'wrapping key missing');
    const pair = await openSealedKeyPair(keys, record, PURPOSE);
    const material = unwrapImport(pair.privateKey, wrappedKey, oaepHash);
    try {
      const version = await keys.provider.importVersion(material);
      const rewrapped = await keys.keyrings.rewrapUnderCurrentMaster();
      return { master_version: version, keyrings_rewrapped: rewrapped };
    } finally {
      zeroize(material);
    }
  }

  /** Wraps the current master key to a customer key; needs a quorum of shares. */
  async export(publicKeyPem: string, shares: string[], oaepHash: 'sha256' | 'sha1'): Promise<{ bundle: string; master_version: number }> {
    const keys = this.seal.keys();
    await this.seal.verifyQuorum(shares);
    const { version, material } = keys.provider.exportCurrent();
    try {
      return { bundle: wrapForExport(publicKeyPem, material, oaepHash), master_version: version };
    } finally {
      zeroize(material);
    }
  }

  private record(): SealedKeyPairRecord | undefined {
    const raw = this.store.get(WRAPPING_KEY);
    return raw ? (JSON.parse(Buffer.from(raw).toString()) as SealedKeyPairRecord) : undefined;
  }
}

import { createHash, createPublicKey } from 'node:crypto';
import { unwrapImport, wrapForExport } from '../crypto/keywrap.js';
import { fromBase64, zeroize } from '../crypto/bytes.js';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { CofferError } from '../errors.js';
import { z } from 'zod';
import { jsonCodec } from '../store/codec.js';
import { BYOK_TOKEN_PREFIX as TOKEN_PREFIX, BYOK_WRAPPING_KEY as WRAPPING_KEY } from '../store/keys.js';
import type { SealManager, UnsealedKeys, VaultStore } from './seal.js';
import { createSealedKeyPair, openSealedKeyPair, sealedKeyPairCodec } from './sealed-keypair.js';
import { stageMaterialRights, type MaterialRights } from './material.js';
import type { HsmImport } from './provider.js';
import { changeMasterVersions } from './version-lock.js';

const PURPOSE = 'byok-wrapping';
export const IMPORT_TOKEN_TTL_MS = 24 * 3600_000;

const tokenCodec = jsonCodec(
  z.object({
    expires_at: z.number(),
    used: z.boolean(),
    /** The usage rights the import must carry: fixed when the token is issued. */
    rights: z.object({ exportable: z.boolean(), valid_to: z.string().nullable() }).optional(),
  }),
);

export const DEFAULT_RIGHTS: MaterialRights = { exportable: false, valid_to: null };

const digest = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * Bring your own key: the vault publishes an RSA-4096 wrapping key (stored sealed) with a
 * single-use import token valid 24 hours; the customer wraps 256-bit key material to it
 * (RSA-OAEP + AES-KWP, sdk/byok.ts or their HSM); the import unwraps it, installs it as the
 * new master version and re-wraps every keyring under it. With an HSM the wrapping key pair is
 * generated in the token and the import is unwrapped there, so the material never reaches
 * this process. Usage rights (exportable, valid_to) are bound to the import token.
 */
export class ByokService {
  private readonly wrapping;
  private readonly tokens;

  constructor(
    private readonly store: VaultStore,
    private readonly seal: SealManager,
    private readonly now: () => number = Date.now,
    private readonly random: RandomSource = systemRandom,
  ) {
    this.wrapping = store.table(WRAPPING_KEY, sealedKeyPairCodec, 'BYOK wrapping key');
    this.tokens = store.table(TOKEN_PREFIX, tokenCodec, 'BYOK import token');
  }

  async wrappingKey(
    rights: MaterialRights = DEFAULT_RIGHTS,
  ): Promise<
    { public_key_pem: string; import_token: string; expires_at: string; oaep_hashes: string[] } & MaterialRights
  > {
    const keys = this.store.keys();
    checkRights(rights, this.now());
    const token = `cof_imp_${Buffer.from(this.random(32)).toString('base64url')}`;
    const expires = this.now() + IMPORT_TOKEN_TTL_MS;
    const hsm = keys.provider.hsmImport;
    const existing = hsm ? undefined : await this.record();
    const generated =
      hsm || existing
        ? undefined
        : await this.store.mutate(
            async (tx) => (await createSealedKeyPair(tx, keys, PURPOSE, this.now(), this.random, 'rsa-4096')).record,
          );
    const publicPem = hsm ? await hsm.wrappingPublicKeyPem() : (existing ?? generated!).public_pem;
    await this.store.mutate((tx) => {
      if (generated) this.wrapping.write(tx, '', generated);
      this.tokens.write(tx, digest(token), { expires_at: expires, used: false, rights });
    });
    return {
      public_key_pem: publicPem,
      import_token: token,
      expires_at: new Date(expires).toISOString(),
      oaep_hashes: ['sha256', 'sha1'],
      ...rights,
    };
  }

  /**
   * Imports wrapped key material as the new master version. The token is spent even on failure,
   * and usage rights given here must equal those bound to it (else the import is refused).
   * The rights are recorded before the material is installed: a crash in between leaves the
   * stricter state, never an imported key without its limits.
   */
  import(
    token: string,
    wrappedKey: string,
    oaepHash: 'sha256' | 'sha1',
    claimed: Partial<MaterialRights> = {},
  ): Promise<{ master_version: number; keyrings_rewrapped: number } & MaterialRights> {
    // The version is computed, its rights recorded and the material installed with no other
    // master version change in between (version-lock.ts).
    return changeMasterVersions(() => this.importNow(token, wrappedKey, oaepHash, claimed));
  }

  private async importNow(
    token: string,
    wrappedKey: string,
    oaepHash: 'sha256' | 'sha1',
    claimed: Partial<MaterialRights>,
  ): Promise<{ master_version: number; keyrings_rewrapped: number } & MaterialRights> {
    const keys = this.store.keys();
    const id = digest(token);
    const version = keys.provider.currentVersion() + 1;
    const outcome = await this.store.mutate((tx) => {
      const record = this.tokens.read(tx, id);
      if (!record || record.used || record.expires_at <= this.now()) return 'invalid' as const;
      this.tokens.write(tx, id, { ...record, used: true });
      const rights = record.rights ?? DEFAULT_RIGHTS;
      if (
        (claimed.exportable !== undefined && claimed.exportable !== rights.exportable) ||
        (claimed.valid_to !== undefined && !sameInstant(claimed.valid_to, rights.valid_to))
      ) {
        return 'tampered' as const;
      }
      stageMaterialRights(tx, version, rights, this.now());
      return rights;
    });
    if (outcome === 'invalid')
      throw new CofferError(
        'forbidden',
        'the import token is unknown, used or expired: get a new one from GET /v1/sys/byok/wrapping-key',
      );
    if (outcome === 'tampered')
      throw new CofferError(
        'invalid_request',
        'the usage rights differ from those bound to the import token: the token is spent, request a new one with the rights you want',
      );
    const installed = keys.provider.hsmImport
      ? await this.importInHsm(keys.provider.hsmImport, wrappedKey, oaepHash)
      : await this.importInSoftware(keys, wrappedKey, oaepHash);
    if (installed !== version)
      throw new CofferError('internal', `imported as master version ${installed}, expected ${version}`);
    const rewrapped = await keys.keyrings.rewrapUnderCurrentMaster();
    return { master_version: installed, keyrings_rewrapped: rewrapped, ...outcome };
  }

  private async importInSoftware(keys: UnsealedKeys, wrappedKey: string, oaepHash: 'sha256' | 'sha1'): Promise<number> {
    const record = await this.record();
    if (!record) throw new CofferError('internal', 'wrapping key missing');
    const pair = await openSealedKeyPair(keys, record, PURPOSE);
    const material = unwrapImport(pair.privateKey, wrappedKey, oaepHash);
    try {
      return await keys.provider.importVersion(material);
    } finally {
      zeroize(material);
    }
  }

  /** Splits the bundle at the wrapping key's modulus size; the HSM unwraps both parts. */
  private async importInHsm(hsm: HsmImport, wrappedKey: string, oaepHash: 'sha256' | 'sha1'): Promise<number> {
    const bundle = fromBase64(wrappedKey);
    const modulusBytes =
      (createPublicKey(await hsm.wrappingPublicKeyPem()).asymmetricKeyDetails?.modulusLength ?? 0) / 8;
    if (!bundle || bundle.length < modulusBytes + 24 || (bundle.length - modulusBytes) % 8 !== 0) {
      throw new CofferError(
        'invalid_request',
        'wrapped_key is not an RSA-OAEP + AES-KWP bundle for this vault’s wrapping key',
      );
    }
    return hsm.importWrapped(bundle.subarray(0, modulusBytes), bundle.subarray(modulusBytes), oaepHash);
  }

  /** Wraps the current master key to a customer key; needs a quorum of shares. */
  async export(
    publicKeyPem: string,
    shares: string[],
    oaepHash: 'sha256' | 'sha1',
  ): Promise<{ bundle: string; master_version: number }> {
    const keys = this.store.keys();
    await this.seal.verifyQuorum(shares);
    const { version, material } = keys.provider.exportCurrent();
    try {
      return { bundle: wrapForExport(publicKeyPem, material, oaepHash), master_version: version };
    } finally {
      zeroize(material);
    }
  }

  private record() {
    return this.wrapping.get('');
  }
}

function checkRights(rights: MaterialRights, now: number): void {
  if (rights.valid_to !== null) {
    const at = Date.parse(rights.valid_to);
    if (!Number.isFinite(at) || at <= now)
      throw new CofferError('invalid_request', 'valid_to must be a time in the future (ISO 8601)');
  }
}

const sameInstant = (a: string | null, b: string | null) =>
  a === null || b === null ? a === b : Date.parse(a) === Date.parse(b);

import { createPublicKey } from 'node:crypto';
import * as graphene from 'graphene-pk11';
import { CofferError } from '../../errors.js';
import type { Pkcs11Library } from './library.js';

/** PKCS#11 return values this module reacts to (pkcs11t.h). */
const CKR = {
  GENERAL_ERROR: 0x05,
  ARGUMENTS_BAD: 0x07,
  ENCRYPTED_DATA_INVALID: 0x40,
  ENCRYPTED_DATA_LEN_RANGE: 0x41,
  MECHANISM_PARAM_INVALID: 0x71,
  PIN_INCORRECT: 0xa0,
  PIN_INVALID: 0xa1,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  USER_ALREADY_LOGGED_IN: 0x100,
  WRAPPED_KEY_INVALID: 0x110,
  WRAPPED_KEY_LEN_RANGE: 0x112,
} as const;

const PIN_ERRORS: number[] = [CKR.PIN_INCORRECT, CKR.PIN_INVALID, CKR.PIN_EXPIRED, CKR.PIN_LOCKED];
/** What a token answers when the data (not the token) is bad; SoftHSM2 says GENERAL_ERROR for a failed GCM tag. */
const DATA_ERRORS: number[] = [
  CKR.GENERAL_ERROR,
  CKR.ENCRYPTED_DATA_INVALID,
  CKR.ENCRYPTED_DATA_LEN_RANGE,
  CKR.WRAPPED_KEY_INVALID,
  CKR.WRAPPED_KEY_LEN_RANGE,
];

export const GCM_IV_LENGTH = 12;
export const GCM_TAG_LENGTH = 16;
/** AES-KWP output for 32 bytes of key material. */
const KWP_256_LENGTH = 40;

export function pkcs11Code(e: unknown): number | undefined {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** A PIN the token refused: never retried by itself, so a bad configuration cannot lock the token. */
export class PinRefused extends Error {}

const versionId = (version: number) => {
  const id = Buffer.alloc(4);
  id.writeUInt32BE(version);
  return id;
};

/**
 * One token holding master key versions: a logged-in session kept open and reused (the calls
 * are synchronous and Node runs one at a time, so one session per token is the whole pool), and
 * the key handles indexed by version (CKA_ID, u32 big-endian) under one CKA_LABEL.
 *
 * Nothing here reads CKA_VALUE: master key versions are created non-extractable and sensitive,
 * and every AES operation runs inside the token.
 */
export class HsmToken {
  private session: graphene.Session | undefined;
  private generation = -1;
  private keys = new Map<number, graphene.SecretKey>();

  constructor(
    readonly library: Pkcs11Library,
    readonly label: string,
    private readonly keyLabel: string,
    private readonly readPin: () => string,
  ) {}

  get isOpen(): boolean {
    return this.session !== undefined && this.generation === this.library.generation;
  }

  /** Opens a session, logs in and indexes the key versions; throws `PinRefused` for a bad PIN. */
  open(): void {
    this.close();
    const slot = this.library.findSlot(this.label);
    if (!slot)
      throw new CofferError('hsm_unavailable', `HSM token "${this.label}" is not present in ${this.library.path}`);
    const session = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    try {
      session.login(this.readPin(), graphene.UserType.USER);
    } catch (e) {
      const code = pkcs11Code(e);
      if (code !== CKR.USER_ALREADY_LOGGED_IN) {
        session.close();
        if (code !== undefined && PIN_ERRORS.includes(code))
          throw new PinRefused(`HSM token "${this.label}" refused the PIN (${(e as Error).message})`);
        throw e;
      }
    }
    const keys = new Map<number, graphene.SecretKey>();
    const found = session.find({ class: graphene.ObjectClass.SECRET_KEY, label: this.keyLabel });
    for (let i = 0; i < found.length; i++) {
      const key = found.items(i).toType<graphene.SecretKey>();
      const attrs = key.getAttribute({
        id: null,
        keyType: null,
        extractable: null,
        sensitive: null,
        valueLen: null,
        local: null,
        neverExtractable: null,
        wrap: null,
        decrypt: null,
      });
      const id = attrs.id as Buffer | undefined;
      if (!id || id.length !== 4 || id.readUInt32BE() < 1) continue;
      // SoftHSM2 leaves CKA_VALUE_LEN at 0 on keys made by C_UnwrapKey; their length was checked at import.
      if (attrs.keyType !== graphene.KeyType.AES || (attrs.valueLen !== 32 && attrs.valueLen !== 0)) {
        session.close();
        throw new CofferError(
          'invalid_request',
          `key "${this.keyLabel}" in HSM token "${this.label}" is not an AES-256 key`,
        );
      }
      // A key generated in the token (CKA_LOCAL) must never have been extractable; an imported
      // one cannot claim that. A key that both wraps and decrypts could export its siblings.
      const unsafe =
        attrs.extractable !== false ||
        attrs.sensitive !== true ||
        (attrs.local === true && attrs.neverExtractable !== true) ||
        (attrs.wrap === true && attrs.decrypt === true);
      if (unsafe) {
        session.close();
        throw new CofferError(
          'invalid_request',
          `key "${this.keyLabel}" in HSM token "${this.label}" has an unsafe template (extractable, not sensitive, or both wrap and decrypt): refusing it as a master key`,
        );
      }
      keys.set(id.readUInt32BE(), key);
    }
    this.session = session;
    this.keys = keys;
    this.generation = this.library.generation;
  }

  versions(): number[] {
    return [...this.keys.keys()].sort((a, b) => a - b);
  }

  supportsGcm(): boolean {
    const mechanisms = this.requireSession().slot.getMechanisms();
    for (let i = 0; i < mechanisms.length; i++)
      if (mechanisms.items(i).type === graphene.MechanismEnum.AES_GCM) return true;
    return false;
  }

  encrypt(version: number, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Buffer {
    const params = new graphene.AesGcm240Params(Buffer.from(iv), Buffer.from(aad), GCM_TAG_LENGTH * 8);
    const cipher = this.requireSession().createCipher({ name: 'AES_GCM', params }, this.key(version));
    return cipher.once(Buffer.from(plaintext), Buffer.alloc(plaintext.length + GCM_TAG_LENGTH));
  }

  /** Decrypts; a token that is fine but refuses the data answers `decryption_failed`. */
  decrypt(version: number, iv: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Buffer {
    const params = new graphene.AesGcm240Params(Buffer.from(iv), Buffer.from(aad), GCM_TAG_LENGTH * 8);
    const key = this.key(version);
    try {
      const decipher = this.requireSession().createDecipher({ name: 'AES_GCM', params }, key);
      return decipher.once(Buffer.from(ciphertext), Buffer.alloc(ciphertext.length));
    } catch (e) {
      const code = pkcs11Code(e);
      if (code !== undefined && DATA_ERRORS.includes(code) && this.responsive(key))
        throw new CofferError('decryption_failed', 'decryption failed');
      throw e;
    }
  }

  /** Generates a new non-extractable AES-256 version inside the token. */
  generate(version: number): void {
    this.requireSession().generateKey(graphene.KeyGenMechanism.AES, { ...this.masterTemplate(version), valueLen: 32 });
    this.open();
  }

  /**
   * Creates a version from given material (seeding a cluster member with the same key). The
   * object is non-extractable from birth; the caller zeroizes its copy.
   */
  create(version: number, material: Uint8Array): void {
    const value = Buffer.from(material);
    try {
      this.requireSession().create({ ...this.masterTemplate(version), class: graphene.ObjectClass.SECRET_KEY, value });
    } finally {
      value.fill(0);
    }
    this.open();
  }

  /** The BYOK wrapping key pair (RSA-4096, private half non-extractable), generated on first use. */
  wrappingPublicKeyPem(): string {
    const session = this.requireSession();
    const label = `${this.keyLabel}.byok`;
    let pub = session.find({ class: graphene.ObjectClass.PUBLIC_KEY, label });
    if (pub.length === 0 || session.find({ class: graphene.ObjectClass.PRIVATE_KEY, label }).length === 0) {
      session.destroy({ label });
      session.generateKeyPair(
        graphene.KeyGenMechanism.RSA,
        {
          keyType: graphene.KeyType.RSA,
          token: true,
          label,
          modulusBits: 4096,
          publicExponent: Buffer.from([1, 0, 1]),
          encrypt: true,
          wrap: true,
          verify: false,
        },
        {
          keyType: graphene.KeyType.RSA,
          token: true,
          label,
          private: true,
          sensitive: true,
          extractable: false,
          decrypt: false,
          unwrap: true,
          sign: false,
        },
      );
      pub = session.find({ class: graphene.ObjectClass.PUBLIC_KEY, label });
    }
    const { modulus, publicExponent } = pub.items(0).getAttribute({ modulus: null, publicExponent: null }) as {
      modulus: Buffer;
      publicExponent: Buffer;
    };
    const jwk = { kty: 'RSA', n: modulus.toString('base64url'), e: publicExponent.toString('base64url') };
    return createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
  }

  /**
   * BYOK inside the token, in the two steps SoftHSM2 and most HSMs offer instead of
   * CKM_RSA_AES_KEY_WRAP: RSA-OAEP unwraps the ephemeral AES key into a session object, which
   * then AES-KWP-unwraps the material straight into a non-extractable token key.
   */
  unwrapImport(
    version: number,
    wrappedEphemeral: Uint8Array,
    wrappedMaterial: Uint8Array,
    oaepHash: 'sha256' | 'sha1',
  ): void {
    const session = this.requireSession();
    const found = session.find({ class: graphene.ObjectClass.PRIVATE_KEY, label: `${this.keyLabel}.byok` });
    if (found.length === 0)
      throw new CofferError(
        'invalid_request',
        'no BYOK wrapping key in the HSM: get one from GET /v1/sys/byok/wrapping-key first',
      );
    const hash =
      oaepHash === 'sha1'
        ? [graphene.MechanismEnum.SHA1, graphene.RsaMgf.MGF1_SHA1]
        : [graphene.MechanismEnum.SHA256, graphene.RsaMgf.MGF1_SHA256];
    const oaep = {
      name: 'RSA_PKCS_OAEP',
      params: new graphene.RsaOaepParams(hash[0] as graphene.MechanismEnum, hash[1] as graphene.RsaMgf),
    };
    const bad = () =>
      new CofferError(
        'invalid_request',
        'the wrapped key does not unwrap with this vault’s wrapping key (wrong key, wrong OAEP hash, or damaged)',
      );
    let ephemeral: graphene.SecretKey;
    try {
      ephemeral = session
        .unwrapKey(oaep, found.items(0).toType<graphene.PrivateKey>(), Buffer.from(wrappedEphemeral), {
          class: graphene.ObjectClass.SECRET_KEY,
          keyType: graphene.KeyType.AES,
          token: false,
          sensitive: true,
          extractable: false,
          unwrap: true,
        })
        .toType<graphene.SecretKey>();
    } catch (e) {
      const code = pkcs11Code(e);
      if (code === CKR.ARGUMENTS_BAD || code === CKR.MECHANISM_PARAM_INVALID) {
        throw new CofferError(
          'invalid_request',
          `this HSM does not support RSA-OAEP with ${oaepHash.toUpperCase()}: wrap the key with oaep_hash sha1`,
        );
      }
      if (code !== undefined && DATA_ERRORS.includes(code)) throw bad();
      throw e;
    }
    try {
      // AES-KWP of 25..32 bytes is 40 bytes; AES accepts only 32 of those lengths, which the
      // self-test below proves without reading the value (CKA_VALUE_LEN is not reliable here).
      if (wrappedMaterial.length !== KWP_256_LENGTH)
        throw new CofferError('invalid_request', 'imported key material must be 256 bits');
      const key = session
        .unwrapKey(
          { name: 'AES_KEY_WRAP_PAD', params: null },
          ephemeral,
          Buffer.from(wrappedMaterial),
          this.unwrapTemplate(version),
        )
        .toType<graphene.SecretKey>();
      if (!this.selfTest(session, key)) {
        session.destroy(key);
        throw new CofferError('invalid_request', 'imported key material must be 256 bits');
      }
    } catch (e) {
      const code = pkcs11Code(e);
      if (code !== undefined && DATA_ERRORS.includes(code)) throw bad();
      throw e;
    } finally {
      session.destroy(ephemeral);
    }
    this.open();
  }

  close(): void {
    const session = this.session;
    this.session = undefined;
    this.keys = new Map();
    if (!session || this.generation !== this.library.generation) return;
    try {
      session.close();
    } catch {
      // the token is gone; nothing to close
    }
  }

  private masterTemplate(version: number): graphene.ITemplate {
    return {
      class: graphene.ObjectClass.SECRET_KEY,
      keyType: graphene.KeyType.AES,
      token: true,
      private: true,
      sensitive: true,
      extractable: false,
      modifiable: false,
      label: this.keyLabel,
      id: versionId(version),
      encrypt: true,
      decrypt: true,
      wrap: false,
      unwrap: false,
      derive: false,
    };
  }

  /** Encrypts and decrypts one block with `key`: false when the token cannot use it as AES. */
  private selfTest(session: graphene.Session, key: graphene.SecretKey): boolean {
    try {
      const params = new graphene.AesGcm240Params(Buffer.alloc(GCM_IV_LENGTH, 1), Buffer.alloc(0), GCM_TAG_LENGTH * 8);
      const probe = Buffer.alloc(16, 0x5a);
      const sealed = session.createCipher({ name: 'AES_GCM', params }, key).once(probe, Buffer.alloc(32));
      return session.createDecipher({ name: 'AES_GCM', params }, key).once(sealed, Buffer.alloc(32)).equals(probe);
    } catch {
      return false;
    }
  }

  /** SoftHSM2 refuses CKA_MODIFIABLE in an unwrap template (CKR_ATTRIBUTE_READ_ONLY). */
  private unwrapTemplate(version: number): graphene.ITemplate {
    const { modifiable: _, ...template } = this.masterTemplate(version);
    return template;
  }

  private key(version: number): graphene.SecretKey {
    const key = this.keys.get(version);
    if (!key) throw new CofferError('decryption_failed', 'decryption failed');
    return key;
  }

  /** Whether the token still answers for this key (tells bad data from a failing token). */
  private responsive(key: graphene.SecretKey): boolean {
    try {
      key.getAttribute({ label: null });
      return true;
    } catch {
      return false;
    }
  }

  private requireSession(): graphene.Session {
    if (!this.isOpen) throw new CofferError('hsm_unavailable', `HSM token "${this.label}" has no open session`);
    return this.session!;
  }
}

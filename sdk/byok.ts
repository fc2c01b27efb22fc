import { constants, createCipheriv, createPublicKey, publicEncrypt, randomBytes } from 'node:crypto';
import type { OaepHash } from './wire/constants.js';

/**
 * Customer-side BYOK wrapping, in the format HSMs, AWS KMS and Vault transit already speak
 * (CKM_RSA_AES_KEY_WRAP): RSA-OAEP(ephemeral AES-256 key) || AES-KWP(ephemeral, key material),
 * base64. For those without an HSM tool; `openssl pkeyutl` + `openssl enc -id-aes256-wrap-pad`
 * build the same bundle.
 */
export type { OaepHash };
/** RFC 5649 alternative initial value, as OpenSSL's id-aes256-wrap-pad expects it. */
export const KWP_IV = Buffer.from('a65959a6', 'hex');

export function wrapForImport(publicKeyPem: string, material: Uint8Array, oaepHash: OaepHash = 'sha256'): string {
  if (material.length !== 32) throw new RangeError('key material must be 32 bytes (AES-256)');
  const key = createPublicKey(publicKeyPem);
  if (key.asymmetricKeyType !== 'rsa' || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 3072) {
    throw new RangeError('the wrapping key must be RSA with at least 3072 bits');
  }
  const ephemeral = randomBytes(32);
  try {
    const wrappedEphemeral = publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, ephemeral);
    const kwp = createCipheriv('id-aes256-wrap-pad', ephemeral, KWP_IV);
    const wrappedMaterial = Buffer.concat([kwp.update(material), kwp.final()]);
    return Buffer.concat([wrappedEphemeral, wrappedMaterial]).toString('base64');
  } finally {
    ephemeral.fill(0);
  }
}

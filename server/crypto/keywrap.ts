import { constants, createDecipheriv, privateDecrypt, type KeyObject } from 'node:crypto';
import { CofferError } from '../errors.js';
import { fromBase64, zeroize } from './bytes.js';

/**
 * Server-side BYOK unwrap of `RSA-OAEP(ephemeral) || AES-KWP(ephemeral, material)` (base64).
 * The RSA part is exactly the modulus length; the KWP part of a 32-byte key is 40 bytes. AES
 * runs in OpenSSL (AES-KWP's integrity check value rejects a wrong key). Every failure is one
 * opaque error.
 */
const KWP_IV = Buffer.from('a65959a6', 'hex');
const KWP_LENGTH_FOR_32 = 40;

export function unwrapImport(privateKey: KeyObject, bundleB64: string, oaepHash: 'sha256' | 'sha1'): Uint8Array {
  const invalid = () => new CofferError('invalid_request', 'the wrapped key could not be unwrapped: check the wrapping key, the import token and the OAEP hash');
  const bundle = typeof bundleB64 === 'string' ? fromBase64(bundleB64) : undefined;
  const rsaBytes = (privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8;
  if (!bundle || rsaBytes === 0 || bundle.length !== rsaBytes + KWP_LENGTH_FOR_32) throw invalid();
  let ephemeral: Buffer | undefined;
  try {
    ephemeral = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, bundle.subarray(0, rsaBytes));
    if (ephemeral.length !== 32) throw invalid();
    const kwp = createDecipheriv('id-aes256-wrap-pad', ephemeral, KWP_IV);
    const material = Buffer.concat([kwp.update(bundle.subarray(rsaBytes)), kwp.final()]);
    if (material.length !== 32) {
      material.fill(0);
      throw invalid();
    }
    return new Uint8Array(material);
  } catch {
    throw invalid();
  } finally {
    zeroize(ephemeral);
  }
}

import {
  constants,
  createCipheriv,
  createDecipheriv,
  createPublicKey,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { CofferError } from '../errors.js';
import { fromBase64, offHeapBytes, zeroize } from './bytes.js';

/**
 * Server-side BYOK unwrap of `RSA-OAEP(ephemeral) || AES-KWP(ephemeral, material)` (base64).
 * The RSA part is exactly the modulus length; the KWP part of a 32-byte key is 40 bytes. AES
 * runs in OpenSSL (AES-KWP's integrity check value rejects a wrong key). Every failure is one
 * opaque error.
 */
const KWP_IV = Buffer.from('a65959a6', 'hex');
const KWP_LENGTH_FOR_32 = 40;

export function unwrapImport(privateKey: KeyObject, bundleB64: string, oaepHash: 'sha256' | 'sha1'): Uint8Array {
  const invalid = () =>
    new CofferError(
      'invalid_request',
      'the wrapped key could not be unwrapped: check the wrapping key, the import token and the OAEP hash',
    );
  const bundle = typeof bundleB64 === 'string' ? fromBase64(bundleB64) : undefined;
  const rsaBytes = (privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8;
  if (!bundle || rsaBytes === 0 || bundle.length !== rsaBytes + KWP_LENGTH_FOR_32) throw invalid();
  let ephemeral: Buffer | undefined;
  try {
    ephemeral = privateDecrypt(
      { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash },
      bundle.subarray(0, rsaBytes),
    );
    if (ephemeral.length !== 32) throw invalid();
    const kwp = createDecipheriv('id-aes256-wrap-pad', ephemeral, KWP_IV);
    const head = kwp.update(bundle.subarray(rsaBytes));
    const tail = kwp.final();
    // The key in a buffer of its own outside the heap (offHeapBytes); every copy node made on the
    // way (the pieces, which may sit in node's shared pool) is wiped.
    const material = offHeapBytes(head.length + tail.length);
    try {
      if (material.length !== 32) throw invalid();
      material.set(head);
      material.set(tail, head.length);
      return material;
    } catch (e) {
      material.fill(0);
      throw e;
    } finally {
      zeroize(head, tail);
    }
  } catch {
    throw invalid();
  } finally {
    zeroize(ephemeral);
  }
}

/**
 * The reverse, for quorum export: wraps `material` to a customer RSA key (≥ 3072 bits) in the
 * same format, so the customer's HSM (or another Coffer) can import it.
 */
export function wrapForExport(publicKeyPem: string, material: Uint8Array, oaepHash: 'sha256' | 'sha1'): string {
  let key: KeyObject;
  try {
    key = createPublicKey(publicKeyPem);
  } catch {
    throw new CofferError('invalid_request', 'public_key_pem is not a PEM public key');
  }
  if (key.asymmetricKeyType !== 'rsa' || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 3072) {
    throw new CofferError('invalid_request', 'the export key must be RSA with at least 3072 bits');
  }
  const ephemeral = randomBytes(32);
  try {
    const head = publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, ephemeral);
    const kwp = createCipheriv('id-aes256-wrap-pad', ephemeral, KWP_IV);
    return Buffer.concat([head, kwp.update(material), kwp.final()]).toString('base64');
  } finally {
    ephemeral.fill(0);
  }
}

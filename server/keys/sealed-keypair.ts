import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { encodeContext, fromBase64, toBase64 } from '../crypto/bytes.js';
import { envelopeKeyVersion, openEnvelope, sealEnvelope } from '../crypto/envelope.js';
import { systemRandom, type RandomSource } from '../crypto/random.js';
import { CofferError } from '../errors.js';
import { z } from 'zod';
import { jsonCodec } from '../store/codec.js';
import type { Tx } from '../store/barrier.js';
import type { UnsealedKeys } from './seal.js';

/**
 * An Ed25519 key pair whose private half is stored sealed under the `sys` keyring. `purpose`
 * is bound into the seal, so a token-signing key can never be opened as the audit key (or the
 * reverse): key separation by construction.
 */
export const sealedKeyPairShape = {
  kid: z.string(),
  purpose: z.string(),
  created_at: z.number(),
  public_pem: z.string(),
  sealed_private: z.string(),
};
export type SealedKeyPairRecord = z.infer<z.ZodObject<typeof sealedKeyPairShape>>;
/** The stored record of a key pair (audit and BYOK keys; token-signing keys extend it). */
export const sealedKeyPairCodec = jsonCodec(z.object(sealedKeyPairShape));

export interface KeyPair {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

const context = (keys: UnsealedKeys, purpose: string, kid: string) =>
  encodeContext('coffer/keypair', keys.clusterId, purpose, kid);

/**
 * The generation job returns the pair encoded (SPKI PEM, PKCS#8 DER), and the KeyObjects are
 * parsed from that: node 20 can deadlock the event loop when a key the job returned as a
 * KeyObject is exported as a JWK (the token JWKS does) while the garbage collector frees the
 * job, whose destructor takes the lock the export holds (docs/testing.md, "Key pairs in
 * tests"). A parsed key shares no lock with any job.
 */
const generate = promisify(generateKeyPair) as (
  type: string,
  options: object,
) => Promise<{ privateKey: Buffer; publicKey: string }>;
const ENCODED = {
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'der' },
};

/** Ed25519 for signing; RSA-4096 for the BYOK wrapping key (generated off the event loop). */
export type KeyPairType = 'ed25519' | 'rsa-4096';

export async function createSealedKeyPair(
  tx: Tx,
  keys: UnsealedKeys,
  purpose: string,
  now: number,
  random: RandomSource = systemRandom,
  type: KeyPairType = 'ed25519',
): Promise<{ record: SealedKeyPairRecord; pair: KeyPair }> {
  const encoded =
    type === 'ed25519'
      ? await generate('ed25519', ENCODED)
      : await generate('rsa', { modulusLength: 4096, ...ENCODED });
  const der = encoded.privateKey;
  try {
    const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    const publicKey = createPublicKey(encoded.publicKey);
    const kid = Buffer.from(random(12)).toString('base64url');
    const { version, key } = await keys.keyrings.encryptionKey(tx, 'sys');
    const sealed = sealEnvelope(key, version, der, context(keys, purpose, kid), random);
    const record: SealedKeyPairRecord = {
      kid,
      purpose,
      created_at: now,
      public_pem: encoded.publicKey,
      sealed_private: toBase64(sealed),
    };
    return { record, pair: { kid, privateKey, publicKey } };
  } finally {
    der.fill(0);
  }
}

export async function openSealedKeyPair(
  keys: UnsealedKeys,
  record: SealedKeyPairRecord,
  purpose: string,
): Promise<KeyPair> {
  if (record.purpose !== purpose) throw new CofferError('decryption_failed', 'decryption failed');
  const sealed = fromBase64(record.sealed_private);
  if (!sealed) throw new CofferError('decryption_failed', 'decryption failed');
  const key = await keys.keyrings.decryptionKey('sys', envelopeKeyVersion(sealed));
  const der = openEnvelope(key, sealed, context(keys, purpose, record.kid));
  try {
    const privateKey = createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' });
    return { kid: record.kid, privateKey, publicKey: createPublicKey(privateKey) };
  } finally {
    der.fill(0);
  }
}

import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

export interface TestKeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

type Options = { rsa: { modulusLength: number }; ec: { namedCurve: string }; ed25519: Record<string, never> };

const SPKI = { type: 'spki', format: 'pem' } as const;
const PKCS8 = { type: 'pkcs8', format: 'pem' } as const;

/**
 * A key pair for tests, as `generateKeyPairSync(type, options)` returns it, but made of keys
 * parsed from the job's PEM output. node 20 can deadlock when a key that key generation
 * returned is exported as a JWK while the garbage collector frees the generation job: the
 * job's destructor takes the key's lock, which the export holds (docs/testing.md, "Key pairs
 * in tests"). A parsed key shares no lock with any job.
 */
export function keyPair<T extends keyof Options>(
  type: T,
  ...options: T extends 'ed25519' ? [] : [Options[T]]
): TestKeyPair {
  const pem: { publicKey: string; privateKey: string } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', {
          ...(options[0] as Options['rsa']),
          publicKeyEncoding: SPKI,
          privateKeyEncoding: PKCS8,
        })
      : type === 'ec'
        ? generateKeyPairSync('ec', {
            ...(options[0] as Options['ec']),
            publicKeyEncoding: SPKI,
            privateKeyEncoding: PKCS8,
          })
        : generateKeyPairSync('ed25519', { publicKeyEncoding: SPKI, privateKeyEncoding: PKCS8 });
  return { publicKey: createPublicKey(pem.publicKey), privateKey: createPrivateKey(pem.privateKey) };
}

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { randomInt, type RandomSource } from '../crypto/random.js';
import { CofferError } from '../errors.js';
import type { PasswordCharset } from '../../sdk/wire/constants.js';

export { SECRET_TYPES, type SecretType } from '../../sdk/wire/constants.js';

export const CHARSETS = {
  alphanumeric: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
  symbols: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+,-./:=@^_~',
  hex: '0123456789abcdef',
  digits: '0123456789',
} as const satisfies Record<PasswordCharset, string>;
export type Charset = keyof typeof CHARSETS;

/** A uniformly random password (rejection sampling, no modulo bias). */
export function generatePassword(length: number, charset: Charset, random: RandomSource): string {
  const alphabet = CHARSETS[charset];
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet.charAt(randomInt(alphabet.length, random));
  return out;
}

export interface CertificateFacts {
  not_after: string;
  subject: string;
  sans: string;
  fingerprint_sha256: string;
}

/** The metadata keys a certificate secret's facts take (inspectCertificate). */
export const CERTIFICATE_FACTS = [
  'not_after',
  'subject',
  'sans',
  'fingerprint_sha256',
] as const satisfies readonly (keyof CertificateFacts)[];

const PEM_CERT = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

/**
 * Checks a `certificate` secret: `certificate` is one PEM certificate, `chain` (optional) one
 * or more, `private_key` (optional) must be the certificate's key. Returns what goes into the
 * metadata. Error messages name the field, never its content.
 */
export function inspectCertificate(data: Record<string, string>): CertificateFacts {
  const pem = data.certificate;
  if (pem === undefined) throw new CofferError('invalid_request', 'a certificate secret needs data.certificate (PEM)');
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length !== 1)
    throw new CofferError(
      'invalid_request',
      'data.certificate must hold exactly one PEM certificate (put intermediates in data.chain)',
    );
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(blocks[0]);
  } catch {
    throw new CofferError('invalid_request', 'data.certificate is not a valid PEM certificate');
  }
  if (data.chain !== undefined) {
    const chain = data.chain.match(PEM_CERT) ?? [];
    if (chain.length === 0) throw new CofferError('invalid_request', 'data.chain must hold PEM certificates');
    for (const c of chain) {
      try {
        new X509Certificate(c);
      } catch {
        throw new CofferError('invalid_request', 'data.chain holds an invalid PEM certificate');
      }
    }
  }
  if (data.private_key !== undefined) {
    let matches = false;
    try {
      matches = cert.checkPrivateKey(createPrivateKey(data.private_key));
    } catch {
      throw new CofferError('invalid_request', 'data.private_key is not a valid PEM private key');
    }
    if (!matches) throw new CofferError('invalid_request', 'data.private_key does not match data.certificate');
  }
  return {
    not_after: new Date(cert.validTo).toISOString(),
    subject: cert.subject.replace(/\n/g, ', '),
    sans: cert.subjectAltName ?? '',
    fingerprint_sha256: cert.fingerprint256,
  };
}

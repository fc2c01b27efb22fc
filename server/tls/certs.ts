import 'reflect-metadata'; // @peculiar/x509 2.x resolves its ASN.1 providers through tsyringe, which needs it
import * as x509 from '@peculiar/x509';
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';

/**
 * Certificates made without a network or an `openssl` binary: the throw-away CA and server
 * certificate of `coffer server --dev-tls`, and the CAs the tests make. ECDSA P-256 with SHA-256:
 * key generation is instant and every TLS stack accepts it. Loaded only by --dev-tls and tests
 * (main.ts imports it lazily), so a production start never pulls in the ASN.1 code.
 */
x509.cryptoProvider.set(webcrypto as never);

type KeyPair = webcrypto.CryptoKeyPair;

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface Issued {
  /** PEM of the certificate. */
  certPem: string;
  /** PKCS#8 PEM of its private key. */
  keyPem: string;
  /**
   * For issuing further certificates (a CA); never written anywhere by --dev-tls. These are the
   * generation job's own keys: export them only through `webcrypto.subtle` jobs (as `keyPem`
   * does), never as a JWK or through `KeyObject.from` (docs/testing.md, "Key pairs in tests").
   */
  keys: KeyPair;
  cert: x509.X509Certificate;
}

export interface CertOptions {
  /** Common name of the subject. */
  commonName: string;
  /** Defaults: now minus one minute (clock skew), and `days` (default 1) after that. */
  notBefore?: Date;
  notAfter?: Date;
  days?: number;
}

export interface LeafOptions extends CertOptions {
  /** DNS names and IP addresses for the subjectAltName (a server certificate). */
  dns?: string[];
  ips?: string[];
  /** serverAuth (default) or clientAuth (mTLS client certificate). */
  usage?: 'server' | 'client';
}

function validity(o: CertOptions): { notBefore: Date; notAfter: Date } {
  const notBefore = o.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = o.notAfter ?? new Date(notBefore.getTime() + (o.days ?? 1) * 86_400_000);
  return { notBefore, notAfter };
}

// Positive 16-byte serial numbers (RFC 5280 4.1.2.2: at most 20 octets, not negative).
const serial = () => {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  return bytes.toString('hex');
};

/**
 * Exported by WebCrypto's own job, then parsed, instead of exported from the generated key on
 * the event loop: such a key shares its lock with the generation job, which node 20 can
 * deadlock on (docs/testing.md, "Key pairs in tests").
 */
async function keyPem(keys: KeyPair): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
      .export({ type: 'pkcs8', format: 'pem' })
      .toString();
  } finally {
    der.fill(0);
  }
}

/** A self-signed CA that may sign leaf certificates only (pathLen 0). */
export async function createCa(o: CertOptions): Promise<Issued> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [o.commonName] }],
    ...validity(o),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyPem(keys), keys, cert };
}

/** A leaf certificate signed by `ca`. */
export async function issueCert(ca: Issued, o: LeafOptions): Promise<Issued> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const names = [
    ...(o.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(o.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [o.commonName] }],
    issuer: ca.cert.subject,
    ...validity(o),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        o.usage === 'client' ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth,
      ]),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyPem(keys), keys, cert };
}

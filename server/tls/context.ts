import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import { CofferError } from '../errors.js';

/** What `tls_*` config keys name (README "Operate: TLS and timeouts"). */
export interface TlsSettings {
  certFile: string;
  keyFile: string;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  clientCaFile?: string;
  requireClientCert: boolean;
  /** Start (and reload) with a server certificate past its not-after. */
  allowExpired: boolean;
}

/** The checked material: what `https.createServer` and `setSecureContext` take. */
export interface TlsMaterial {
  context: SecureContextOptions;
  /** The leaf (first) certificate of `tls_cert_file`. */
  leaf: X509Certificate;
  notAfter: Date;
}

const refuse = (message: string) => new CofferError('invalid_request', message);

async function readPem(file: string, key: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw refuse(`${key} ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Every PEM certificate block of `text`, in order (the leaf first, then its chain). */
function certificates(text: string, file: string, key: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw refuse(`${key} ${file} holds no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw refuse(`${key} ${file}: certificate ${i + 1} is not a valid X.509 certificate`);
    }
  });
}

/**
 * Reads and checks the certificate, key and client CA before any of them is used, so a bad pair
 * refuses the start (or, on SIGHUP, the reload) with a message that names the file. Never puts
 * key material into a message.
 */
export async function loadTls(settings: TlsSettings, now = new Date()): Promise<TlsMaterial> {
  const [certPem, keyPem, caPem] = await Promise.all([
    readPem(settings.certFile, 'tls_cert_file'),
    readPem(settings.keyFile, 'tls_key_file'),
    settings.clientCaFile ? readPem(settings.clientCaFile, 'tls_client_ca_file') : undefined,
  ]);
  const [leaf] = certificates(certPem, settings.certFile, 'tls_cert_file') as [X509Certificate];
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    const encrypted = /ENCRYPTED/.test(keyPem) || /passphrase/i.test((e as Error).message);
    throw refuse(
      `tls_key_file ${settings.keyFile} ${encrypted ? 'is encrypted: give an unencrypted PEM key (mode 0600)' : 'holds no readable PEM private key'}`,
    );
  }
  if (key.type !== 'private') throw refuse(`tls_key_file ${settings.keyFile} holds no private key`);
  if (!leaf.checkPrivateKey(key)) {
    throw refuse(
      `tls_key_file ${settings.keyFile} does not match the certificate in tls_cert_file ${settings.certFile}`,
    );
  }
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() < now.getTime() && !settings.allowExpired) {
    throw refuse(
      `tls_cert_file ${settings.certFile} expired on ${notAfter.toISOString()}: renew it (or start with --allow-expired-cert)`,
    );
  }
  if (new Date(leaf.validFrom).getTime() > now.getTime() + 5 * 60_000) {
    throw refuse(
      `tls_cert_file ${settings.certFile} is not valid before ${new Date(leaf.validFrom).toISOString()}: check the clock or the certificate`,
    );
  }
  if (caPem !== undefined) {
    for (const ca of certificates(caPem, settings.clientCaFile!, 'tls_client_ca_file')) {
      if (!ca.ca)
        throw refuse(
          `tls_client_ca_file ${settings.clientCaFile} holds a certificate that is not a CA (${ca.subject.replace(/\n/g, ', ')})`,
        );
    }
  }
  const context: SecureContextOptions = {
    cert: certPem,
    key: keyPem,
    minVersion: settings.minVersion,
    ...(caPem !== undefined ? { ca: caPem } : {}),
  };
  try {
    createSecureContext(context); // what OpenSSL itself says about the set, before a listener sees it
  } catch (e) {
    throw refuse(`tls_cert_file ${settings.certFile} / tls_key_file ${settings.keyFile}: ${(e as Error).message}`);
  }
  return { context, leaf, notAfter };
}

/** Server options for `https.createServer`: mTLS asks for a client certificate, and refuses the handshake without one when required. */
export function serverTlsOptions(settings: TlsSettings, material: TlsMaterial) {
  return {
    ...material.context,
    requestCert: settings.clientCaFile !== undefined,
    rejectUnauthorized: settings.requireClientCert,
    // A connection that never finishes its handshake holds a socket: 10 s is ample on any network.
    handshakeTimeout: 10_000,
  };
}

export interface ClientCertificate {
  /** Subject DN, e.g. "CN=ci-runner, O=Acme". */
  subject: string;
  /** SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it (AA:BB:…). */
  sha256: string;
}

const seen = new WeakMap<TLSSocket, ClientCertificate | null>();

/**
 * The verified client certificate of a TLS connection (mTLS), for the audit line. Only one
 * that chained to `tls_client_ca_file` counts: an unverified one (tls_require_client_cert off)
 * proves nothing. Cached per socket: keep-alive requests ask again.
 */
export function verifiedClientCertificate(socket: TLSSocket): ClientCertificate | undefined {
  let found = seen.get(socket);
  if (found === undefined) {
    found = null;
    if (socket.authorized) {
      const peer = socket.getPeerCertificate();
      if (peer?.raw) {
        const cert = new X509Certificate(peer.raw);
        found = { subject: cert.subject.split('\n').join(', '), sha256: cert.fingerprint256 };
      }
    }
    seen.set(socket, found);
  }
  return found ?? undefined;
}

/** The subset of the server config that decides TLS (see config.ts). */
export interface TlsConfig {
  dev: boolean;
  listen: string;
  tls_cert_file?: string | undefined;
  tls_key_file?: string | undefined;
  tls_min_version: 'TLSv1.2' | 'TLSv1.3';
  tls_client_ca_file?: string | undefined;
  tls_require_client_cert: boolean;
  allow_expired_cert: boolean;
  insecure_no_tls: boolean;
}

/** Host part of a `listen` value, without IPv6 brackets. */
export const listenHost = (listen: string): string => listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');

/** Loopback only: `localhost`, 127.0.0.0/8, ::1. A name or a wildcard (0.0.0.0, ::) is not. */
export function isLoopbackHost(host: string): boolean {
  return (
    host === 'localhost' ||
    host === '::1' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) ||
    /^::ffff:127\./i.test(host)
  );
}

/**
 * What the config asks for: TLS settings, or undefined for plain HTTP. Refuses half a pair,
 * mTLS settings without TLS, and plain HTTP on a non-loopback address unless `insecure_no_tls`
 * (tokens and secrets would cross the network in the clear).
 */
export function tlsSettingsFromConfig(config: TlsConfig): TlsSettings | undefined {
  const { tls_cert_file: certFile, tls_key_file: keyFile } = config;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw refuse(
      `configuration: tls_cert_file and tls_key_file go together: ${certFile === undefined ? 'tls_cert_file' : 'tls_key_file'} is missing`,
    );
  }
  if (config.tls_require_client_cert && config.tls_client_ca_file === undefined) {
    throw refuse(
      'configuration: tls_require_client_cert needs tls_client_ca_file (the CA that signs client certificates)',
    );
  }
  if (certFile === undefined || keyFile === undefined) {
    if (config.tls_client_ca_file !== undefined)
      throw refuse('configuration: tls_client_ca_file needs tls_cert_file and tls_key_file (mTLS is TLS)');
    const host = listenHost(config.listen);
    if (!config.dev && !config.insecure_no_tls && !isLoopbackHost(host)) {
      throw refuse(
        `refusing to serve plain HTTP on ${config.listen}: tokens and secrets would cross the network unencrypted. ` +
          'Set tls_cert_file and tls_key_file (--tls-cert-file, --tls-key-file), listen on 127.0.0.1, ' +
          'or, only behind a TLS-terminating proxy, start with --insecure-no-tls',
      );
    }
    return undefined;
  }
  return {
    certFile,
    keyFile,
    minVersion: config.tls_min_version,
    ...(config.tls_client_ca_file !== undefined ? { clientCaFile: config.tls_client_ca_file } : {}),
    requireClientCert: config.tls_require_client_cert,
    allowExpired: config.allow_expired_cert,
  };
}

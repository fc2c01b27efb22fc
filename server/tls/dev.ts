import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadTls } from './context.js';

export interface DevTlsFiles {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** False when a still-valid set from an earlier start was reused. */
  created: boolean;
}

/** The dev certificate lives 30 days; a set with less than a day left is replaced at start. */
const LIFETIME_DAYS = 30;
const MIN_LEFT_MS = 86_400_000;

/**
 * `coffer server --dev-tls`: a throw-away CA and a server certificate for 127.0.0.1, ::1 and
 * localhost in `<data_dir>/tls/` (the key 0600). The CA's private key is never written: it signs
 * this one certificate and is gone, so the CA a developer trusts through COFFER_CACERT can vouch
 * for nothing else. A valid set from an earlier start is kept, so a COFFER_CACERT that a
 * long-running client already loaded stays right across restarts.
 */
export async function ensureDevTls(dataDir: string): Promise<DevTlsFiles> {
  const dir = join(dataDir, 'tls');
  const files = {
    dir,
    caFile: join(dir, 'ca.pem'),
    certFile: join(dir, 'server.pem'),
    keyFile: join(dir, 'server-key.pem'),
  };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (await reusable(files)) return { ...files, created: false };

  const { createCa, issueCert } = await import('./certs.js');
  const ca = await createCa({ commonName: 'Coffer dev CA (throw-away)', days: LIFETIME_DAYS });
  const server = await issueCert(ca, {
    commonName: 'coffer dev server',
    dns: ['localhost'],
    ips: ['127.0.0.1', '::1'],
    days: LIFETIME_DAYS,
  });
  // The key first and 0600 from its first byte; a rename so a reader never sees half a file.
  await writeAtomic(files.keyFile, server.keyPem, 0o600);
  await writeAtomic(files.certFile, server.certPem, 0o644);
  await writeAtomic(files.caFile, ca.certPem, 0o644);
  return { ...files, created: true };
}

async function reusable(files: { caFile: string; certFile: string; keyFile: string }): Promise<boolean> {
  try {
    const material = await loadTls({
      certFile: files.certFile,
      keyFile: files.keyFile,
      minVersion: 'TLSv1.2',
      requireClientCert: false,
      allowExpired: false,
    });
    if (material.notAfter.getTime() - Date.now() < MIN_LEFT_MS) return false;
    const ca = new X509Certificate(await readFile(files.caFile, 'utf8'));
    return material.leaf.verify(ca.publicKey) && material.leaf.checkIP('127.0.0.1') !== undefined;
  } catch {
    return false; // missing, broken or foreign: make a new set
  }
}

async function writeAtomic(path: string, content: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await rm(temp, { force: true });
  await writeFile(temp, content, { mode, flag: 'wx' });
  await chmod(temp, mode);
  await rename(temp, path);
}

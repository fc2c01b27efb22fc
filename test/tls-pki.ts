import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCa, issueCert, type Issued } from '../server/tls/certs.js';

/** Files of one certificate and its key. */
export interface Pair {
  cert: string;
  key: string;
  issued: Issued;
}

export interface Pki {
  /** The CA that signs the server certificates (what COFFER_CACERT names). */
  caFile: string;
  ca: Issued;
  /** Server certificate for 127.0.0.1, localhost and vault.internal. */
  server: Pair;
  /** Makes another pair in `dir` under `name`, signed by `ca` (or `by`). */
  issue(
    name: string,
    options?: { usage?: 'server' | 'client'; commonName?: string; notBefore?: Date; notAfter?: Date; by?: Issued },
  ): Promise<Pair>;
}

/** A test PKI made on the spot (no network, no fixtures checked in): CA, server pair, more on demand. */
export async function makePki(dir: string): Promise<Pki> {
  const ca = await createCa({ commonName: 'Coffer test CA' });
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, ca.certPem);
  const issue: Pki['issue'] = async (name, o = {}) => {
    const issued = await issueCert(o.by ?? ca, {
      commonName: o.commonName ?? name,
      usage: o.usage ?? 'server',
      ...(o.usage === 'client' ? {} : { dns: ['localhost', 'vault.internal'], ips: ['127.0.0.1'] }),
      ...(o.notBefore ? { notBefore: o.notBefore } : {}),
      ...(o.notAfter ? { notAfter: o.notAfter } : {}),
    });
    const cert = join(dir, `${name}.pem`);
    const key = join(dir, `${name}-key.pem`);
    await writeFile(cert, issued.certPem);
    await writeFile(key, issued.keyPem, { mode: 0o600 });
    return { cert, key, issued };
  };
  return { caFile, ca, server: await issue('server'), issue };
}

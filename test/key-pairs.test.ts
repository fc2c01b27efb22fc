import { strict as assert } from 'node:assert';
import { sign, verify } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keyPair } from './key-pairs.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(join(REPO, dir), { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(REPO, join(e.parentPath, e.name)));
}

/**
 * node 20 deadlocks when a key that key generation returned as a KeyObject is exported as a JWK
 * while the garbage collector frees the generation job (docs/testing.md, "Key pairs in tests"):
 * a test run hung on it once. So keys are generated encoded and parsed, and these rules say
 * where generation may happen.
 */
describe('key pairs: generated encoded, then parsed', () => {
  it('keyPair gives working, exportable KeyObjects of each type the tests use', () => {
    for (const [pair, alg] of [
      [keyPair('rsa', { modulusLength: 2048 }), 'sha256'],
      [keyPair('ec', { namedCurve: 'P-256' }), 'sha256'],
      [keyPair('ed25519'), null],
    ] as const) {
      const signature = sign(alg, Buffer.from('m'), pair.privateKey);
      assert.ok(verify(alg, Buffer.from('m'), pair.publicKey, signature));
      assert.equal(pair.publicKey.type, 'public');
      assert.equal(pair.privateKey.type, 'private');
      assert.ok(typeof pair.publicKey.export({ format: 'jwk' }).kty === 'string');
    }
    assert.equal(keyPair('rsa', { modulusLength: 2048 }).publicKey.asymmetricKeyDetails?.modulusLength, 2048);
  });

  it('tests generate key pairs only through test/key-pairs.ts', async () => {
    const offenders: string[] = [];
    for (const file of await sources('test')) {
      if (file === join('test', 'key-pairs.ts') || file === join('test', 'key-pairs.test.ts')) continue;
      const text = await readFile(join(REPO, file), 'utf8');
      // node:crypto's and jose's generators; a PKCS#11 session's (graphene) is called as a method.
      if (/(?<![.\w])generateKeyPair(Sync)?\s*\(|\bgenerateKeyPair\b[^;]*from 'jose'/.test(text)) offenders.push(file);
    }
    assert.deepEqual(offenders, []);
  });

  it('the server generates key pairs only in sealed-keypair.ts, and there encoded', async () => {
    const offenders: string[] = [];
    for (const file of await sources('server')) {
      const text = await readFile(join(REPO, file), 'utf8');
      if (/\bgenerateKeyPairSync\b|\bsubtle\.generateKey\b/.test(text) && file !== join('server', 'tls', 'certs.ts'))
        offenders.push(file);
      if (/(?<![.\w])generateKeyPair\b/.test(text) && file !== join('server', 'keys', 'sealed-keypair.ts'))
        offenders.push(file);
    }
    assert.deepEqual(offenders, []);
    const sealed = await readFile(join(REPO, 'server', 'keys', 'sealed-keypair.ts'), 'utf8');
    assert.match(sealed, /publicKeyEncoding: \{ type: 'spki', format: 'pem' \}/);
    assert.match(sealed, /privateKeyEncoding: \{ type: 'pkcs8', format: 'der' \}/);
    assert.doesNotMatch(sealed, /\.export\(/, 'no export from a key the job returned');
  });
});

import { strict as assert } from 'node:assert';
import { sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { keyPair } from './key-pairs.js';
import { repoRoot, tsSources } from './server/http/route-list.js';

const REPO = repoRoot();
/** The TypeScript sources under the repository's `dir`, relative to the repository. */
const sources = (dir: string) => tsSources(join(REPO, dir)).map((f) => relative(REPO, f));

/**
 * A call of node:crypto's or jose's key generation, bare or through a namespace, or WebCrypto's.
 * A PKCS#11 session's generateKeyPair (graphene) makes the key in the HSM, not in node.
 */
const GENERATES =
  /(?<!session\.)\bgenerateKeyPair(Sync)?\s*\(|\bpromisify\(\s*generateKeyPair\b|\bsubtle\.generateKey\s*\(|import\s*\{[^}]*\bgenerateKeyPair\b[^}]*\}\s*from\s*'jose'/;

/** The code of a file without its comments (a comment may name what the code must not call). */
const code = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
const readCode = (file: string) => code(readFileSync(join(REPO, file), 'utf8'));

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

  it('tests generate key pairs only through test/key-pairs.ts', () => {
    const own = [join('test', 'key-pairs.ts'), join('test', 'key-pairs.test.ts')];
    const offenders = sources('test').filter((file) => !own.includes(file) && GENERATES.test(readCode(file)));
    assert.deepEqual(offenders, []);
  });

  it('the server, CLI and SDK generate key pairs only in sealed-keypair.ts, encoded, and certs.ts', () => {
    const allowed = [join('server', 'keys', 'sealed-keypair.ts'), join('server', 'tls', 'certs.ts')];
    const offenders = [...sources('server'), ...sources('cli'), ...sources('sdk')].filter(
      (file) => !allowed.includes(file) && GENERATES.test(readCode(file)),
    );
    assert.deepEqual(offenders, []);

    const sealed = readCode(allowed[0]!);
    assert.match(sealed, /publicKeyEncoding: \{ type: 'spki', format: 'pem' \}/);
    assert.match(sealed, /privateKeyEncoding: \{ type: 'pkcs8', format: 'der' \}/);
    const calls = sealed.match(/\bgenerate\([^)]*\)/g) ?? [];
    assert.ok(
      calls.length > 0 && calls.every((c) => c.includes('ENCODED')),
      `every generation encoded: ${calls.join('; ')}`,
    );
    assert.doesNotMatch(sealed, /\.export\(/, 'no export from a key the job returned');

    // The dev-TLS keys stay WebCrypto keys (x509 signs with them, through thread-pool jobs); their
    // private key leaves them only through WebCrypto's own export job, and is parsed before use.
    const certs = readCode(allowed[1]!);
    assert.match(certs, /subtle\.exportKey\('pkcs8', keys\.privateKey\)/);
    assert.doesNotMatch(certs, /KeyObject\.from\(|exportKey\('jwk'/);
  });
});

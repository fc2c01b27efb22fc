import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { constants, createCipheriv, createPublicKey, publicEncrypt, randomBytes } from 'node:crypto';
import { cp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { KWP_IV, wrapForImport } from '../../../sdk/byok.js';
import { openVault, tempDir, type TestVault } from '../../helpers.js';
import { createToken, describeHsm, hsmEnv, kekUri, openHsmVault } from '../../hsm.js';
import { initHsmKey } from '../../../server/keys/pkcs11/init.js';
import { parsePkcs11Uri } from '../../../server/keys/pkcs11/uri.js';
import { keyPair } from '../../key-pairs.js';

const run = promisify(execFile);

/** RSA-OAEP(ephemeral) || AES-KWP(material) for any material length (the SDK refuses non-32-byte keys). */
function wrapRaw(pem: string, material: Uint8Array, oaepHash: 'sha1' | 'sha256'): string {
  const ephemeral = randomBytes(32);
  const kwp = createCipheriv('id-aes256-wrap-pad', ephemeral, KWP_IV);
  return Buffer.concat([
    publicEncrypt({ key: createPublicKey(pem), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, ephemeral),
    kwp.update(material),
    kwp.final(),
  ]).toString('base64');
}

describeHsm('BYOK into the HSM (two-step unwrap inside SoftHSM2)', function (this: Mocha.Suite) {
  this.timeout(120_000);
  let vault: TestVault & { kek: string };
  before(async () => {
    vault = await openHsmVault();
  });
  after(() => vault.cleanup());

  const wrappingKey = async () => {
    const res = await request(vault.app).get('/v1/sys/byok/wrapping-key').set(vault.auth);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as { public_key_pem: string; import_token: string };
  };
  const importKey = (body: object) => request(vault.app).post('/v1/sys/byok/import').set(vault.auth).send(body);
  const masterVersion = async () =>
    (await request(vault.app).get('/v1/sys/seal-status')).body.master_key.version as number;

  it('the wrapping key is RSA-4096 generated in the token, and stays the same across requests', async () => {
    const a = await wrappingKey();
    const b = await wrappingKey();
    assert.equal(createPublicKey(a.public_key_pem).asymmetricKeyDetails?.modulusLength, 4096);
    assert.equal(a.public_key_pem, b.public_key_pem);
    assert.notEqual(a.import_token, b.import_token);
    assert.equal(vault.store.get('byok/wrapping-key'), undefined, 'no software key pair was made');
  });

  it('round trip: material made outside, wrapped with `coffer byok wrap` (SHA-1 OAEP), imported; old secrets read; export refused', async () => {
    await request(vault.app)
      .put('/v1/secrets/team/db')
      .set(vault.auth)
      .send({ data: { password: 'written-before-import' } })
      .expect(200);
    const { public_key_pem, import_token } = await wrappingKey();
    const dir = await tempDir();
    const material = randomBytes(32);
    await writeFile(join(dir, 'wrap.pem'), public_key_pem);
    await writeFile(join(dir, 'master.key'), material.toString('base64'), { mode: 0o600 });
    const cli = await run(process.execPath, [
      'dist/cli/main.js',
      'byok',
      'wrap',
      '--public-key',
      join(dir, 'wrap.pem'),
      '--key-file',
      join(dir, 'master.key'),
      '--oaep-hash',
      'sha1',
    ]);
    const res = await importKey({ import_token, wrapped_key: cli.stdout.trim(), oaep_hash: 'sha1' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.master_version, 2);
    assert.ok(res.body.keyrings_rewrapped >= 1);
    const read = await request(vault.app).get('/v1/secrets/team/db').set(vault.auth);
    assert.equal(read.body.data.password, 'written-before-import');
    const status = (await request(vault.app).get('/v1/sys/seal-status')).body;
    assert.deepEqual(status.master_key, {
      version: 2,
      imported: true,
      exportable: false,
      valid_to: null,
      expired: false,
    });
    const exported = await request(vault.app)
      .post('/v1/sys/byok/export')
      .set(vault.auth)
      .send({
        public_key_pem: keyPair('rsa', { modulusLength: 3072 }).publicKey.export({
          type: 'spki',
          format: 'pem',
        }),
        shares: vault.shares.slice(0, 2),
      });
    assert.equal(exported.status, 409);
    assert.equal(exported.body.error.code, 'not_exportable');
  });

  it('refuses SHA-256 OAEP where the token lacks it (naming sha1), a 16-byte key, a bundle for another key, garbage; nothing is installed', async () => {
    const before = await masterVersion();
    const cases: [string, (pem: string) => string, string, RegExp][] = [
      [
        'sha256 on SoftHSM2',
        (pem) => wrapForImport(pem, new Uint8Array(randomBytes(32)), 'sha256'),
        'sha256',
        /oaep_hash sha1/,
      ],
      ['a 16-byte key', (pem) => wrapRaw(pem, randomBytes(16), 'sha1'), 'sha1', /256 bits/],
      [
        'another wrapping key',
        () =>
          wrapRaw(
            keyPair('rsa', { modulusLength: 4096 }).publicKey.export({ type: 'spki', format: 'pem' }).toString(),
            randomBytes(32),
            'sha1',
          ),
        'sha1',
        /does not unwrap/,
      ],
      [
        'a truncated bundle',
        (pem) => wrapRaw(pem, randomBytes(32), 'sha1').slice(0, 600),
        'sha1',
        /not an RSA-OAEP \+ AES-KWP bundle|does not unwrap/,
      ],
    ];
    for (const [what, make, hash, why] of cases) {
      const { public_key_pem, import_token } = await wrappingKey();
      const res = await importKey({ import_token, wrapped_key: make(public_key_pem), oaep_hash: hash });
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
      assert.match(res.body.error.message, why, what);
      assert.equal(await masterVersion(), before, `${what}: no version added`);
    }
    assert.equal((await request(vault.app).get('/v1/secrets/team/db').set(vault.auth)).status, 200);
  });

  it('a second vault holding the same imported material opens an exported copy of the first vault’s data', async () => {
    const material = randomBytes(32);
    const first = await openHsmVault();
    const second = await openHsmVault();
    try {
      for (const v of [first, second]) {
        const wk = (await request(v.app).get('/v1/sys/byok/wrapping-key').set(v.auth)).body;
        const res = await request(v.app)
          .post('/v1/sys/byok/import')
          .set(v.auth)
          .send({
            import_token: wk.import_token,
            wrapped_key: wrapForImport(wk.public_key_pem, material, 'sha1'),
            oaep_hash: 'sha1',
          });
        assert.equal(res.status, 200, JSON.stringify(res.body));
      }
      await request(first.app)
        .put('/v1/secrets/shared/app')
        .set(first.auth)
        .send({ data: { v: 'from the first vault' } })
        .expect(200);
      const dump = await tempDir();
      await first.seal.seal(); // a consistent copy: nothing is writing
      await cp(join(first.dir, 'db'), join(dump, 'db'), { recursive: true });
      const restored = await openVault({
        dir: dump,
        source: { kind: 'pkcs11', uri: second.kek },
        env: hsmEnv(),
        init: false,
      });
      try {
        await restored.seal.autoUnsealNow();
        assert.equal((await restored.secrets.get('shared/app'))?.data.v, 'from the first vault');
      } finally {
        await restored.cleanup();
      }
    } finally {
      await first.cleanup();
      await second.cleanup();
    }
  });

  it('an HSM cluster refuses BYOK and rotation (its members would diverge) and says how to seed it', async () => {
    const a = createToken();
    const b = createToken();
    const uri = kekUri([a.label, b.label]);
    initHsmKey(parsePkcs11Uri(uri), hsmEnv(), randomBytes(32));
    const cluster = await openVault({
      source: { kind: 'pkcs11', uri },
      env: hsmEnv(),
      init: { shares: 1, threshold: 1 },
    });
    try {
      const wk = await request(cluster.app).get('/v1/sys/byok/wrapping-key').set(cluster.auth);
      assert.equal(wk.status, 400);
      assert.match(wk.body.error.message, /coffer hsm init --key-file/);
      const rotate = await request(cluster.app).post('/v1/sys/rotate').set(cluster.auth).send({});
      assert.equal(rotate.status, 400);
      assert.match(rotate.body.error.message, /cluster/);
    } finally {
      await cluster.cleanup();
    }
  });
});

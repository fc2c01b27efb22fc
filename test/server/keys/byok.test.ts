import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { wrapForImport } from '../../../sdk/byok.js';
import { unwrapImport } from '../../../server/crypto/keywrap.js';
import { openVault, type TestVault } from '../../helpers.js';
import { keyPair } from '../../key-pairs.js';

const kek = { source: { kind: 'env' as const, variable: 'K' }, env: { K: Buffer.alloc(32, 5).toString('base64') } };

describe('BYOK import', function () {
  this.timeout(60_000);
  let vault: TestVault;
  let now: number;
  before(async () => {
    now = Date.now();
    vault = await openVault({ ...kek, now: () => now });
    for (const p of ['app/a', 'db/b'])
      await request(vault.app)
        .put(`/v1/secrets/${p}`)
        .set(vault.auth)
        .send({ data: { v: p } });
  });
  after(() => vault.cleanup());

  const wrappingKey = async () => {
    const res = await request(vault.app).get('/v1/sys/byok/wrapping-key').set(vault.auth);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as { public_key_pem: string; import_token: string; expires_at: string };
  };

  it('installs imported material as the new master version; everything still reads', async () => {
    const { public_key_pem, import_token, expires_at } = await wrappingKey();
    assert.match(public_key_pem, /BEGIN PUBLIC KEY/);
    assert.ok(Math.abs(Date.parse(expires_at) - now - 24 * 3600_000) < 5_000, 'the token lives 24 hours');
    const material = new Uint8Array(randomBytes(32));
    const res = await request(vault.app)
      .post('/v1/sys/byok/import')
      .set(vault.auth)
      .send({ import_token, wrapped_key: wrapForImport(public_key_pem, material) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.master_version, 2);
    assert.ok(res.body.keyrings_rewrapped >= 2);
    for (const p of ['app/a', 'db/b'])
      assert.equal((await request(vault.app).get(`/v1/secrets/${p}`).set(vault.auth)).body.data.v, p);
    const keyring = await request(vault.app).get('/v1/sys/keyrings/app').set(vault.auth);
    assert.ok(keyring.body.versions.every((v: { master_version: number }) => v.master_version === 2));
  });

  it('spends the token once, even when the bundle is bad, and refuses expired tokens', async () => {
    const { public_key_pem, import_token } = await wrappingKey();
    const bad = await request(vault.app)
      .post('/v1/sys/byok/import')
      .set(vault.auth)
      .send({ import_token, wrapped_key: Buffer.alloc(552).toString('base64') });
    assert.equal(bad.status, 400, 'the bundle does not unwrap');
    const bundle = wrapForImport(public_key_pem, new Uint8Array(randomBytes(32)));
    assert.equal(
      (await request(vault.app).post('/v1/sys/byok/import').set(vault.auth).send({ import_token, wrapped_key: bundle }))
        .status,
      403,
      'the token was spent',
    );
    const fresh = await wrappingKey();
    now += 24 * 3600_000 + 1;
    try {
      assert.equal(
        (
          await request(vault.app)
            .post('/v1/sys/byok/import')
            .set(vault.auth)
            .send({
              import_token: fresh.import_token,
              wrapped_key: wrapForImport(fresh.public_key_pem, new Uint8Array(randomBytes(32))),
            })
        ).status,
        403,
      );
    } finally {
      now -= 24 * 3600_000 + 1;
    }
  });

  it('refuses a bundle for another wrapping key or with the wrong OAEP hash, changing nothing', async () => {
    const before = (await request(vault.app).get('/v1/sys/keyrings/app').set(vault.auth)).body.master_version;
    const { public_key_pem, import_token } = await wrappingKey();
    const sha1 = wrapForImport(public_key_pem, new Uint8Array(randomBytes(32)), 'sha1');
    const res = await request(vault.app)
      .post('/v1/sys/byok/import')
      .set(vault.auth)
      .send({ import_token, wrapped_key: sha1, oaep_hash: 'sha256' });
    assert.equal(res.status, 400);
    assert.match(res.body.error.message, /could not be unwrapped/);
    assert.equal((await request(vault.app).get('/v1/sys/keyrings/app').set(vault.auth)).body.master_version, before);
    const second = await wrappingKey();
    const ok = await request(vault.app)
      .post('/v1/sys/byok/import')
      .set(vault.auth)
      .send({
        import_token: second.import_token,
        wrapped_key: wrapForImport(second.public_key_pem, new Uint8Array(randomBytes(32)), 'sha1'),
        oaep_hash: 'sha1',
      });
    assert.equal(ok.status, 200, 'SHA-1 OAEP is accepted when named');
  });

  it('needs admin, and survives a restart with the imported master key', async () => {
    const plain = (await request(vault.app).post('/v1/auth/token/create').set(vault.auth).send({ identity: 'svc:x' }))
      .body.token;
    assert.equal(
      (
        await request(vault.app)
          .get('/v1/sys/byok/wrapping-key')
          .set({ Authorization: `Bearer ${plain}` })
      ).status,
      403,
    );
    const { dir, auth } = vault;
    await vault.cleanup(true);
    vault = await openVault({ ...kek, dir, init: false, now: () => now });
    await vault.seal.autoUnsealNow();
    assert.equal((await request(vault.app).get('/v1/secrets/db/b').set(auth)).body.data.v, 'db/b');
  });
});

describe('BYOK quorum export', function () {
  this.timeout(30_000);
  const customer = keyPair('rsa', { modulusLength: 3072 });
  const customerPem = customer.publicKey.export({ type: 'spki', format: 'pem' }).toString();

  for (const [label, options] of [
    ['shamir vault', {}],
    ['key-file vault (recovery shares)', kek],
  ] as const) {
    it(`${label}: exports the current master key only with a quorum of its own shares`, async () => {
      const vault = await openVault({ ...options, init: { shares: 3, threshold: 2 } });
      const other = await openVault({ init: { shares: 3, threshold: 2 } });
      try {
        const exportWith = (shares: string[], pem = customerPem) =>
          request(vault.app).post('/v1/sys/byok/export').set(vault.auth).send({ public_key_pem: pem, shares });
        assert.equal((await exportWith([vault.shares[0]!])).status, 403, 'below the threshold');
        assert.equal((await exportWith([vault.shares[0]!, vault.shares[0]!])).status, 403, 'the same share twice');
        assert.equal((await exportWith([vault.shares[0]!, other.shares[1]!])).status, 403, 'a share of another vault');
        assert.equal((await exportWith(['junk', vault.shares[1]!])).status, 400, 'a malformed share');
        const weak = keyPair('rsa', { modulusLength: 2048 })
          .publicKey.export({ type: 'spki', format: 'pem' })
          .toString();
        assert.equal((await exportWith([vault.shares[0]!, vault.shares[2]!], weak)).status, 400, 'a weak customer key');
        const ok = await exportWith([vault.shares[2]!, vault.shares[0]!]);
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        const material = unwrapImport(customer.privateKey, ok.body.bundle, 'sha256');
        const { version, material: expected } = vault.seal.keys().provider.exportCurrent();
        assert.equal(ok.body.master_version, version);
        assert.deepEqual(material, expected);
      } finally {
        await vault.cleanup();
        await other.cleanup();
      }
    });
  }
});

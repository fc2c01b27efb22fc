import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { wrapForImport } from '../../../sdk/byok.js';
import { openVault, type TestVault } from '../../helpers.js';
import { keyPair } from '../../key-pairs.js';

/** Usage rights bound to the import token, non-exportable imports, and expiring key material. */
describe('BYOK usage rights and key material expiry', function () {
  this.timeout(30_000);
  let vault: TestVault;
  const customerPem = keyPair('rsa', { modulusLength: 3072 })
    .publicKey.export({ type: 'spki', format: 'pem' })
    .toString();

  beforeEach(async () => {
    vault = await openVault({ keyring: { cacheTtlMs: 50 } });
  });
  afterEach(() => vault.cleanup());

  const wrappingKey = async (query = '') => {
    const res = await request(vault.app).get(`/v1/sys/byok/wrapping-key${query}`).set(vault.auth);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as { public_key_pem: string; import_token: string; exportable: boolean; valid_to: string | null };
  };
  const importKey = (body: object) => request(vault.app).post('/v1/sys/byok/import').set(vault.auth).send(body);
  const exportKey = () =>
    request(vault.app)
      .post('/v1/sys/byok/export')
      .set(vault.auth)
      .send({ public_key_pem: customerPem, shares: vault.shares.slice(0, 3) });
  const material = () => new Uint8Array(randomBytes(32));

  it('imported material is not exportable unless the token said so; then a quorum may export it', async () => {
    assert.equal((await exportKey()).status, 200, 'a generated master key exports under quorum');
    const plain = await wrappingKey();
    assert.deepEqual([plain.exportable, plain.valid_to], [false, null]);
    assert.equal(
      (
        await importKey({
          import_token: plain.import_token,
          wrapped_key: wrapForImport(plain.public_key_pem, material()),
        })
      ).status,
      200,
    );
    const refused = await exportKey();
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'not_exportable');
    assert.equal((await request(vault.app).get('/v1/sys/seal-status')).body.master_key.exportable, false);

    const exportable = await wrappingKey('?exportable=true');
    const res = await importKey({
      import_token: exportable.import_token,
      wrapped_key: wrapForImport(exportable.public_key_pem, material()),
      exportable: true,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.exportable, true);
    assert.equal((await exportKey()).status, 200);
  });

  it('rights that differ from those bound to the token are refused, the token is spent and nothing is installed', async () => {
    const validTo = new Date(Date.now() + 86_400_000).toISOString();
    const before = (await request(vault.app).get('/v1/sys/seal-status')).body.master_key.version;
    const cases: object[] = [
      { exportable: true },
      { valid_to: null },
      { valid_to: new Date(Date.now() + 2 * 86_400_000).toISOString() },
    ];
    for (const tampered of cases) {
      const wk = await wrappingKey(`?valid_to=${encodeURIComponent(validTo)}`);
      const bundle = wrapForImport(wk.public_key_pem, material());
      const res = await importKey({ import_token: wk.import_token, wrapped_key: bundle, ...tampered });
      assert.equal(res.status, 400, JSON.stringify(tampered));
      assert.match(res.body.error.message, /differ from those bound to the import token/);
      assert.equal(
        (await importKey({ import_token: wk.import_token, wrapped_key: bundle })).status,
        403,
        'the token was spent',
      );
    }
    assert.equal((await request(vault.app).get('/v1/sys/seal-status')).body.master_key.version, before);
    const same = await wrappingKey(`?valid_to=${encodeURIComponent(validTo)}`);
    const ok = await importKey({
      import_token: same.import_token,
      wrapped_key: wrapForImport(same.public_key_pem, material()),
      valid_to: validTo,
      exportable: false,
    });
    assert.equal(ok.status, 200, 'restating the bound rights is accepted');
  });

  it('refuses bad rights: a past or malformed valid_to, a usage without wrap, unknown fields', async () => {
    for (const q of ['?valid_to=2001-01-01T00:00:00Z', '?valid_to=tomorrow', '?exportable=yes', '?other=1']) {
      assert.equal((await request(vault.app).get(`/v1/sys/byok/wrapping-key${q}`).set(vault.auth)).status, 400, q);
    }
    const wk = await wrappingKey();
    const res = await importKey({
      import_token: wk.import_token,
      wrapped_key: wrapForImport(wk.public_key_pem, material()),
      usage: ['unwrap'],
    });
    assert.equal(res.status, 400);
    assert.match(res.body.error.message, /wrap.*unwrap/);
  });

  it('two imports at once, and an import beside a rotation, each keep their own rights: none leaves material unbounded', async () => {
    const validTo = new Date(Date.now() + 3_600_000).toISOString();
    const [a, b] = [
      await wrappingKey(`?valid_to=${encodeURIComponent(validTo)}`),
      await wrappingKey(`?valid_to=${encodeURIComponent(validTo)}`),
    ];
    const [ra, rb, rotated] = await Promise.all([
      importKey({ import_token: a.import_token, wrapped_key: wrapForImport(a.public_key_pem, material()) }),
      importKey({ import_token: b.import_token, wrapped_key: wrapForImport(b.public_key_pem, material()) }),
      request(vault.app).post('/v1/sys/rotate').set(vault.auth).send({}),
    ]);
    assert.equal(ra.status, 200, JSON.stringify(ra.body));
    assert.equal(rb.status, 200, JSON.stringify(rb.body));
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    const versions = [ra.body.master_version, rb.body.master_version, rotated.body.master_version].sort();
    assert.deepEqual(versions, [2, 3, 4], 'three distinct versions');
    const status = (await request(vault.app).get('/v1/sys/seal-status')).body.master_key;
    const current = status.version as number;
    if (current === rotated.body.master_version) assert.equal(status.imported, false);
    else
      assert.deepEqual(
        { imported: status.imported, exportable: status.exportable },
        { imported: true, exportable: false },
      );
    // Whichever import is current, it is not exportable; and the newest version is the rotation's or an import's with its rights.
    if (current !== rotated.body.master_version) assert.equal((await exportKey()).status, 409);
  });

  it('material past its valid_to cannot be exported either (409 key_expired)', async () => {
    await wrappingKey();
    const validTo = new Date(Date.now() + 1_500).toISOString();
    const wk = await wrappingKey(`?exportable=true&valid_to=${encodeURIComponent(validTo)}`);
    const res = await importKey({
      import_token: wk.import_token,
      wrapped_key: wrapForImport(wk.public_key_pem, material()),
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(validTo) - Date.now()) + 200));
    const exported = await exportKey();
    assert.equal(exported.status, 409, JSON.stringify(exported.body));
    assert.equal(exported.body.error.code, 'key_expired');
    assert.equal(exported.body.bundle, undefined);
  });

  it('material past valid_to stops unwrapping: reads answer 409 key_expired, seal-status and health say so', async () => {
    await request(vault.app)
      .put('/v1/secrets/exp/a')
      .set(vault.auth)
      .send({ data: { v: 'before' } })
      .expect(200);
    await wrappingKey(); // the RSA-4096 wrapping key is generated once, before the clock starts
    const validTo = new Date(Date.now() + 2_000).toISOString();
    const wk = await wrappingKey(`?valid_to=${encodeURIComponent(validTo)}`);
    const res = await importKey({
      import_token: wk.import_token,
      wrapped_key: wrapForImport(wk.public_key_pem, material()),
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(
      (await request(vault.app).get('/v1/secrets/exp/a').set(vault.auth)).body.data.v,
      'before',
      'readable until valid_to',
    );
    const health = await request(vault.app).get('/v1/sys/health');
    assert.equal(health.body.warnings, undefined);

    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(validTo) - Date.now()) + 200)); // past valid_to, and past the keyring cache
    const read = await request(vault.app).get('/v1/secrets/exp/a').set(vault.auth);
    assert.equal(read.status, 409, JSON.stringify(read.body));
    assert.equal(read.body.error.code, 'key_expired');
    const status = (await request(vault.app).get('/v1/sys/seal-status')).body;
    assert.deepEqual(
      { ...status.master_key, valid_to: Date.parse(status.master_key.valid_to) },
      { version: 2, imported: true, exportable: false, valid_to: Date.parse(validTo), expired: true },
    );
    const after = await request(vault.app).get('/v1/sys/health');
    assert.equal(after.status, 200);
    assert.match(after.body.warnings[0], /master key version 2 expired/);
  });
});

import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import request from 'supertest';
import { vaultSettings } from '../../../../server/http/vault/mounts.js';
import { createCa } from '../../../../server/tls/certs.js';
import { openVault, tokenWith, type TestVault } from '../../../helpers.js';

/**
 * What a Vault request may not do beyond what it says (SECURITY-CASES B and C): erase history
 * through a metadata write, get a secret back when it asked for a wrapped answer, slip a path
 * past the path rule under a prefixed mount, or read a native error body where a Vault client
 * reads `errors`. And what the vault CLI sends is taken: versions as strings.
 */
describe('Vault API: KV v2 guards', function () {
  this.timeout(30_000);
  let v: TestVault;
  const app = () => request(v.app);
  const write = async (path: string, value: string) => {
    const res = await app()
      .post(`/v1/secret/data/${path}`)
      .set(v.auth)
      .send({ data: { v: value } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  };
  const versionsOf = async (path: string) => {
    const res = await app().get(`/v1/secret/metadata/${path}`).set(v.auth);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.data.versions as Record<string, { deletion_time: string; destroyed: boolean }>;
  };

  before(async () => {
    v = await openVault({
      vault: vaultSettings(['secret', 'team=ci/team/a/b/c/d/e/f'], []),
      audit: { timeoutMs: 200 },
    });
  });
  after(() => v.cleanup());

  describe('a lower max_versions erases versions, so it needs destroy', () => {
    let writer: Record<string, string>;
    let destroyer: Record<string, string>;
    before(async () => {
      writer = await tokenWith(v, 'kv-writer', [
        { path: 'secret/data/app/*', capabilities: ['read', 'create', 'update'] },
      ]);
      destroyer = await tokenWith(v, 'kv-destroyer', [
        { path: 'secret/data/app/*', capabilities: ['read', 'create', 'update'] },
        { path: 'secret/destroy/app/*', capabilities: ['update'] },
      ]);
      for (const value of ['1', '2', '3']) await write('app/db', value);
    });

    it('refuses a writer without destroy, by POST and by PATCH, and keeps every version', async () => {
      const post = await app().post('/v1/secret/metadata/app/db').set(writer).send({ max_versions: 1 });
      assert.equal(post.status, 403);
      assert.deepEqual(post.body, { errors: ['permission denied: destroy on app/db'] });
      const patch = await app()
        .patch('/v1/secret/metadata/app/db')
        .set(writer)
        .set('Content-Type', 'application/merge-patch+json')
        .send(JSON.stringify({ max_versions: 2, custom_metadata: { team: 'api' } }));
      assert.equal(patch.status, 403);
      assert.deepEqual(Object.keys(await versionsOf('app/db')), ['1', '2', '3']);
      const meta = (await app().get('/v1/secret/metadata/app/db').set(v.auth)).body.data;
      assert.equal(meta.max_versions, 0, 'the refused writes changed the limit');
      assert.deepEqual(meta.custom_metadata, null, 'the refused PATCH changed the metadata');
      const first = await app().get('/v1/secret/data/app/db?version=1').set(v.auth);
      assert.equal(first.body.data.data.v, '1');
    });

    it('lets the writer raise the limit or set custom_metadata, which erase nothing', async () => {
      const raise = await app().post('/v1/secret/metadata/app/db').set(writer).send({ max_versions: 200 });
      assert.equal(raise.status, 204, JSON.stringify(raise.body));
      const back = await app().post('/v1/secret/metadata/app/db').set(writer).send({ max_versions: 0 });
      assert.equal(back.status, 403, 'back to the engine default (100) is a lower limit than 200');
      const custom = await app()
        .post('/v1/secret/metadata/app/db')
        .set(writer)
        .send({ custom_metadata: { team: 'api' } });
      assert.equal(custom.status, 204, JSON.stringify(custom.body));
      assert.deepEqual(Object.keys(await versionsOf('app/db')), ['1', '2', '3']);
    });

    it('lets a token that may destroy lower it: the oldest versions go at once', async () => {
      const lower = await app().post('/v1/secret/metadata/app/db').set(destroyer).send({ max_versions: 1 });
      assert.equal(lower.status, 204, JSON.stringify(lower.body));
      assert.deepEqual(Object.keys(await versionsOf('app/db')), ['3']);
    });

    it('needs no destroy on a secret that keeps no version yet (metadata written first)', async () => {
      const first = await app().post('/v1/secret/metadata/app/new').set(writer).send({ max_versions: 1 });
      assert.equal(first.status, 204, JSON.stringify(first.body));
    });
  });

  it('a Vault write over a certificate secret stores a kv version, and its facts leave the metadata', async () => {
    const { certPem } = await createCa({ commonName: 'facts.example.com' });
    const native = await app()
      .put('/v1/secrets/certs/web')
      .set(v.auth)
      .send({ type: 'certificate', data: { certificate: certPem }, metadata: { owner: 'web' } });
    assert.equal(native.status, 200, JSON.stringify(native.body));
    const before = (await app().get('/v1/metadata/certs/web').set(v.auth)).body;
    assert.equal(before.type, 'certificate');
    assert.ok(before.metadata.fingerprint_sha256, 'the certificate facts are there to begin with');
    await write('certs/web', 'not a certificate');
    const after = (await app().get('/v1/metadata/certs/web').set(v.auth)).body;
    assert.equal(after.type, 'kv');
    assert.deepEqual(after.metadata, { owner: 'web' });
    const vault = await app().get('/v1/secret/metadata/certs/web').set(v.auth);
    assert.deepEqual(vault.body.data.custom_metadata, { owner: 'web' });
  });

  it('refuses X-Vault-Wrap-TTL with 400 instead of answering with the secret', async () => {
    await write('wrap/me', 'wrap-canary-value');
    const wrapped = await app().get('/v1/secret/data/wrap/me').set(v.auth).set('X-Vault-Wrap-TTL', '60s');
    assert.equal(wrapped.status, 400);
    assert.deepEqual(wrapped.body, {
      errors: [
        'response wrapping is not supported: send no X-Vault-Wrap-TTL header (unset VAULT_WRAP_TTL, drop -wrap-ttl)',
      ],
    });
    assert.ok(!wrapped.text.includes('wrap-canary-value'));
    const written = await app()
      .post('/v1/secret/data/wrap/me')
      .set(v.auth)
      .set('X-Vault-Wrap-TTL', '5m')
      .send({ data: { v: 'other' } });
    assert.equal(written.status, 400);
    const plain = await app().get('/v1/secret/data/wrap/me').set(v.auth).set('X-Vault-Wrap-TTL', '');
    assert.equal(plain.status, 200, 'an empty header asks for nothing');
    assert.equal(plain.body.data.data.v, 'wrap-canary-value', 'the refused write wrote nothing');
  });

  it('takes versions as the vault CLI sends them (strings) on delete, undelete and destroy; refuses other strings', async () => {
    for (const value of ['1', '2']) await write('cli/s', value);
    const send = (action: string, body: string) =>
      app()
        .put(`/v1/secret/${action}/cli/s`)
        .set(v.auth)
        .set('X-Vault-Request', 'true')
        .type('application/json')
        .send(body);
    assert.equal((await send('delete', '{"versions":["1"]}\n')).status, 204);
    assert.notEqual((await versionsOf('cli/s'))['1']!.deletion_time, '');
    assert.equal((await send('undelete', '{"versions":["1"]}\n')).status, 204);
    assert.equal((await versionsOf('cli/s'))['1']!.deletion_time, '');
    assert.equal((await send('destroy', '{"versions":["1",2]}\n')).status, 204);
    const after = await versionsOf('cli/s');
    assert.equal(after['1']!.destroyed, true);
    assert.equal(after['2']!.destroyed, true);
    for (const bad of ['"0"', '"01"', '"1.0"', '" 1"', '"x"', '"99999999999"', 'true']) {
      const res = await send('delete', `{"versions":[${bad}]}`);
      assert.equal(res.status, 400, bad);
      assert.match(res.body.errors[0], /^versions\.0: /, bad);
    }
  });

  it('refuses a path under a prefixed mount that would break the path rule once the prefix is in front', async () => {
    const rest = Array.from({ length: 16 }, (_, i) => `s${i}`).join('/');
    const res = await app()
      .put(`/v1/team/data/${rest}`)
      .set(v.auth)
      .send({ data: { k: 'v' } });
    assert.equal(res.status, 400);
    assert.match(res.body.errors[0], /^path is invalid: use 1 to 16 segments/);
    const listed = await app().get('/v1/secrets?prefix=ci/team').set(v.auth);
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual(listed.body.secrets ?? listed.body.keys ?? [], [], 'nothing was written');
    const fits = await app()
      .put(`/v1/team/data/${rest.split('/').slice(0, 8).join('/')}`)
      .set(v.auth)
      .send({ data: { k: 'v' } });
    assert.equal(fits.status, 200, 'eight segments under the eight of the prefix fit');
  });

  it('answers a Vault route in Vault’s shape when the audit log cannot be written', async () => {
    await write('audit/x', 'v1');
    await rm(v.auditFile);
    await mkdir(v.auditFile); // a directory where the file was: every line fails
    try {
      const res = await app().get('/v1/secret/data/audit/x').set(v.auth);
      assert.equal(res.status, 503);
      assert.deepEqual(res.body, { errors: ['the audit log cannot be written: request refused'] });
      assert.ok(!res.text.includes('v1'));
      const native = await app().get('/v1/secrets/audit/x').set(v.auth);
      assert.equal(native.status, 503);
      assert.equal(native.body.error.code, 'audit_unavailable');
    } finally {
      await rm(v.auditFile, { recursive: true });
    }
  });
});

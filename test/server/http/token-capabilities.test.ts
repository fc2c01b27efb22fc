import assert from 'node:assert/strict';
import request from 'supertest';
import { openVault, type TestVault } from '../../helpers.js';

/** `GET /v1/auth/token/capabilities`: the caller's own grants at a path, deny respected, bad paths refused. */
describe('GET /v1/auth/token/capabilities', () => {
  let vault: TestVault;
  let token = '';
  before(async () => {
    vault = await openVault();
    const put = async (path: string, body: object) =>
      assert.equal((await request(vault.app).put(path).set(vault.auth).send(body)).status, 200, path);
    await put('/v1/policies/apps', {
      rules: [
        { path: 'app/**', capabilities: ['read', 'list', 'update'] },
        { path: 'app/secret/*', capabilities: ['deny'] },
        { path: 'sys/policies/apps', capabilities: ['admin'] },
      ],
    });
    token = (
      await request(vault.app)
        .post('/v1/auth/token/create')
        .set(vault.auth)
        .send({ identity: 'svc:caps', policies: ['apps'] })
    ).body.token;
  });
  after(() => vault.cleanup());
  const caps = (path: string, auth = `Bearer ${token}`) =>
    request(vault.app)
      .get(`/v1/auth/token/capabilities?path=${encodeURIComponent(path)}`)
      .set('Authorization', auth);

  it('lists what the token may do, an explicit deny leaving everything out, and admin paths by name only', async () => {
    assert.deepEqual((await caps('app/db')).body, { path: 'app/db', capabilities: ['read', 'list', 'update'] });
    assert.deepEqual((await caps('app/secret/x')).body.capabilities, []);
    assert.deepEqual((await caps('other/x')).body.capabilities, []);
    assert.deepEqual((await caps('sys/policies/apps')).body.capabilities, ['admin']);
    assert.deepEqual((await caps('sys/policies/other')).body.capabilities, []);
    assert.deepEqual(
      (await caps('app/db', vault.auth.Authorization)).body.capabilities,
      ['read', 'list', 'create', 'update', 'delete', 'destroy', 'admin'],
      'root may do everything',
    );
  });

  it('refuses a malformed path or query and a missing token', async () => {
    for (const query of ['', '?path=', '?path=a//b', '?path=%3Cscript%3E', `?path=${'a'.repeat(513)}`, '?path=a&x=1']) {
      const res = await request(vault.app)
        .get(`/v1/auth/token/capabilities${query}`)
        .set('Authorization', `Bearer ${token}`);
      assert.equal(res.status, 400, query);
      assert.equal(res.body.error.code, 'invalid_request');
      assert.ok(!res.text.includes('<script>'), 'the value is not echoed');
    }
    assert.equal((await request(vault.app).get('/v1/auth/token/capabilities?path=app/db')).status, 401);
  });
});

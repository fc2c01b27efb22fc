import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import request from 'supertest';
import { raw, rawRequests, vaultFixture, type VaultFixture } from './fixture.js';

/** KV v2 on the `secret` mount, answered as Vault answers (docs/vault-compatibility.md). */
describe('Vault API: KV v2', function () {
  this.timeout(30_000);
  let f: VaultFixture;
  let root: { 'X-Vault-Token': string };
  let ci: { 'X-Vault-Token': string };
  const app = () => request(f.vault.app);

  before(async () => {
    f = await vaultFixture();
    root = { 'X-Vault-Token': f.vault.rootToken };
    const login = await app()
      .post('/v1/auth/approle/login')
      .send({ role_id: f.roleId, secret_id: await f.secretId() });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    ci = { 'X-Vault-Token': login.body.auth.client_token };
  });
  after(() => f.close());

  it("writes, reads the current and an old version, with Vault's envelope and metadata", async () => {
    const w1 = await app()
      .post('/v1/secret/data/ci/app/db')
      .set(root)
      .send({ data: { password: 'one', port: 5432, tags: ['a', 'b'], nested: { x: true } } });
    assert.equal(w1.status, 200, JSON.stringify(w1.body));
    assert.deepEqual(Object.keys(w1.body).sort(), [
      'auth',
      'data',
      'lease_duration',
      'lease_id',
      'renewable',
      'request_id',
      'warnings',
      'wrap_info',
    ]);
    assert.equal(w1.body.data.version, 1);
    assert.equal(w1.body.data.deletion_time, '');
    assert.equal(w1.body.data.destroyed, false);
    assert.equal(w1.body.data.custom_metadata, null);
    assert.equal(w1.body.request_id, w1.headers['x-request-id']);
    const w2 = await app()
      .put('/v1/secret/data/ci/app/db')
      .set(root)
      .send({ data: { password: 'two' }, options: { cas: 1 } });
    assert.equal(w2.status, 200);
    assert.equal(w2.body.data.version, 2);

    const read = await app().get('/v1/secret/data/ci/app/db').set(ci);
    assert.equal(read.status, 200);
    assert.deepEqual(read.body.data.data, { password: 'two' });
    assert.equal(read.body.data.metadata.version, 2);
    assert.equal(read.body.lease_id, '');
    assert.equal(read.body.renewable, false);
    assert.equal(read.body.lease_duration, 0);
    assert.equal(read.body.wrap_info, null);
    assert.equal(read.body.auth, null);
    const old = await app().get('/v1/secret/data/ci/app/db?version=1').set(ci);
    assert.deepEqual(
      old.body.data.data,
      { password: 'one', port: 5432, tags: ['a', 'b'], nested: { x: true } },
      'values of any JSON come back as written',
    );
    // The native API gives a non-string value as its JSON text, and reads the same secret.
    const native = await app().get('/v1/secrets/ci/app/db?version=1').set(root);
    assert.deepEqual(native.body.data, { password: 'one', port: '5432', tags: '["a","b"]', nested: '{"x":true}' });
  });

  it("a check-and-set mismatch is 400 with Vault's errors and writes nothing", async () => {
    await app()
      .post('/v1/secret/data/ci/cas')
      .set(root)
      .send({ data: { v: '1' } });
    const res = await app()
      .post('/v1/secret/data/ci/cas')
      .set(root)
      .send({ data: { v: '2' }, options: { cas: 0 } });
    assert.equal(res.status, 400);
    assert.deepEqual(Object.keys(res.body), ['errors']);
    assert.match(res.body.errors[0], /check-and-set/);
    assert.equal((await app().get('/v1/secret/data/ci/cas').set(root)).body.data.metadata.version, 1);
  });

  it('PATCH merges (application/merge-patch+json only), keeping the other keys', async () => {
    await app()
      .post('/v1/secret/data/ci/patch')
      .set(root)
      .send({ data: { a: '1', b: '2', obj: { x: 1, y: 2 } } });
    const wrongType = await app()
      .patch('/v1/secret/data/ci/patch')
      .set(root)
      .send({ data: { a: 'x' } });
    assert.equal(wrongType.status, 415);
    assert.ok(wrongType.body.errors[0]);
    const res = await app()
      .patch('/v1/secret/data/ci/patch')
      .set(root)
      .set('Content-Type', 'application/merge-patch+json')
      .send(JSON.stringify({ data: { a: 'new', b: null, obj: { y: null, z: 3 } } }));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.data.version, 2);
    assert.deepEqual((await app().get('/v1/secret/data/ci/patch').set(root)).body.data.data, {
      a: 'new',
      obj: { x: 1, z: 3 },
    });
    const missing = await app()
      .patch('/v1/secret/data/ci/nothing-here')
      .set(root)
      .set('Content-Type', 'application/merge-patch+json')
      .send('{"data":{"a":"1"}}');
    assert.equal(missing.status, 404);
  });

  it('a soft-deleted and a destroyed version answer 404 with data null and their metadata; undelete brings one back', async () => {
    await app()
      .post('/v1/secret/data/ci/del')
      .set(root)
      .send({ data: { v: '1' } });
    await app()
      .post('/v1/secret/data/ci/del')
      .set(root)
      .send({ data: { v: '2' } });
    assert.equal((await app().delete('/v1/secret/data/ci/del').set(root)).status, 204);
    const deleted = await app().get('/v1/secret/data/ci/del').set(ci);
    assert.equal(deleted.status, 404);
    assert.equal(deleted.body.data.data, null);
    assert.equal(deleted.body.data.metadata.version, 2);
    assert.notEqual(deleted.body.data.metadata.deletion_time, '');
    assert.equal(
      (
        await app()
          .post('/v1/secret/undelete/ci/del')
          .set(root)
          .send({ versions: [2] })
      ).status,
      204,
    );
    assert.deepEqual((await app().get('/v1/secret/data/ci/del').set(ci)).body.data.data, { v: '2' });
    assert.equal(
      (
        await app()
          .post('/v1/secret/destroy/ci/del')
          .set(root)
          .send({ versions: [1] })
      ).status,
      204,
    );
    const destroyed = await app().get('/v1/secret/data/ci/del?version=1').set(ci);
    assert.equal(destroyed.status, 404);
    assert.equal(destroyed.body.data.metadata.destroyed, true);
    assert.equal(
      (
        await app()
          .post('/v1/secret/delete/ci/del')
          .set(root)
          .send({ versions: [2] })
      ).status,
      204,
    );
    assert.equal((await app().get('/v1/secret/data/ci/del').set(ci)).status, 404);
    const meta = await app().get('/v1/secret/metadata/ci/del').set(ci);
    assert.equal(meta.status, 200);
    assert.deepEqual(Object.keys(meta.body.data.versions), ['1', '2']);
    assert.equal(meta.body.data.versions['1'].destroyed, true);
    assert.equal(meta.body.data.current_version, 2);
  });

  it('a missing secret is 404 {"errors":[]}', async () => {
    const res = await app().get('/v1/secret/data/ci/none').set(ci);
    assert.equal(res.status, 404);
    assert.deepEqual(res.body, { errors: [] });
    assert.deepEqual((await app().get('/v1/secret/metadata/ci/none').set(ci)).body, { errors: [] });
  });

  it('metadata written before the first version (custom_metadata, max_versions, cas_required), kept by data writes', async () => {
    const put = await app()
      .post('/v1/secret/metadata/ci/eso')
      .set(root)
      .send({ custom_metadata: { 'managed-by': 'external-secrets' }, max_versions: 2, cas_required: true });
    assert.equal(put.status, 204, JSON.stringify(put.body));
    const meta = await app().get('/v1/secret/metadata/ci/eso').set(root);
    assert.deepEqual(meta.body.data.custom_metadata, { 'managed-by': 'external-secrets' });
    assert.equal(meta.body.data.current_version, 0);
    assert.equal(meta.body.data.max_versions, 2);
    assert.equal(meta.body.data.cas_required, true);
    const noCas = await app()
      .post('/v1/secret/data/ci/eso')
      .set(root)
      .send({ data: { v: '1' } });
    assert.equal(noCas.status, 400);
    assert.match(noCas.body.errors[0], /check-and-set is required/);
    for (let v = 0; v < 3; v++)
      assert.equal(
        (
          await app()
            .post('/v1/secret/data/ci/eso')
            .set(root)
            .send({ data: { v: String(v) }, options: { cas: v } })
        ).status,
        200,
      );
    const after = await app().get('/v1/secret/metadata/ci/eso').set(root);
    assert.deepEqual(Object.keys(after.body.data.versions), ['2', '3'], 'max_versions keeps the last two');
    assert.deepEqual(
      after.body.data.custom_metadata,
      { 'managed-by': 'external-secrets' },
      'a data write keeps custom_metadata',
    );
    const read = await app().get('/v1/secret/data/ci/eso').set(root);
    assert.deepEqual(read.body.data.metadata.custom_metadata, { 'managed-by': 'external-secrets' });
    const patch = await app()
      .patch('/v1/secret/metadata/ci/eso')
      .set(root)
      .set('Content-Type', 'application/merge-patch+json')
      .send('{"custom_metadata":{"managed-by":null,"team":"api"}}');
    assert.equal(patch.status, 204);
    assert.deepEqual((await app().get('/v1/secret/metadata/ci/eso').set(root)).body.data.custom_metadata, {
      team: 'api',
    });
    const refused = await app().post('/v1/secret/metadata/ci/eso').set(root).send({ delete_version_after: '1h' });
    assert.equal(refused.status, 400);
    assert.match(refused.body.errors[0], /delete_version_after is not supported \(only 0\)/);
    assert.equal((await app().delete('/v1/secret/metadata/ci/eso').set(root)).status, 204);
    assert.equal((await app().get('/v1/secret/metadata/ci/eso').set(root)).status, 404);
    assert.equal((await app().get('/v1/secrets/ci/eso').set(root)).status, 404, 'gone for the native API too');
  });

  it('lists with LIST (raw socket, keep-alive) and GET ?list=true|1, trailing slash or not, at the mount root too', async () => {
    for (const p of ['ci/list/a', 'ci/list/b/c', 'ci/list/b/d', 'other/x'])
      await app()
        .post(`/v1/secret/data/${p}`)
        .set(root)
        .send({ data: { v: '1' } });
    const token = f.vault.rootToken;
    const body = JSON.stringify({ data: { v: 'LIST /v1/secret/metadata/ci HTTP/1.1' } }); // a body that looks like a LIST is never rewritten
    const [list1, write, list2, list3, rootList, missing] = await rawRequests(f.port, [
      raw('LIST', '/v1/secret/metadata/ci/list/', { 'X-Vault-Token': token }),
      raw('POST', '/v1/secret/data/ci/list/e', { 'X-Vault-Token': token, 'X-Vault-Request': 'true' }, body),
      raw('LIST', '/v1/secret/metadata/ci/list', { 'X-Vault-Token': token }),
      raw('LIST', '/v1/secret/metadata/ci/list/?list=true', { 'X-Vault-Token': token }),
      raw('LIST', '/v1/secret/metadata', { 'X-Vault-Token': token }),
      raw('LIST', '/v1/secret/metadata/ci/nope/', { 'X-Vault-Token': token }),
    ]);
    assert.equal(list1!.status, 200, list1!.body);
    assert.deepEqual(list1!.json().data.keys, ['a', 'b/']);
    assert.equal(write!.status, 200, write!.body);
    assert.deepEqual(list2!.json().data.keys, ['a', 'b/', 'e']);
    assert.deepEqual(list3!.json().data.keys, ['a', 'b/', 'e']);
    assert.ok(rootList!.json().data.keys.includes('ci/') && rootList!.json().data.keys.includes('other/'));
    assert.equal(missing!.status, 404);
    assert.deepEqual(missing!.json(), { errors: [] });
    assert.deepEqual((await app().get('/v1/secret/data/ci/list/e').set(root)).body.data.data, {
      v: 'LIST /v1/secret/metadata/ci HTTP/1.1',
    });
    for (const q of ['list=true', 'list=1']) {
      const res = await app().get(`/v1/secret/metadata/ci/list/?${q}`).set(ci);
      assert.deepEqual(res.body.data.keys, ['a', 'b/', 'e']);
    }
    assert.deepEqual(
      (await app().get('/v1/secret/metadata/?list=true').set(root)).body.data.keys.filter((k: string) => k === 'ci/'),
      ['ci/'],
    );
    // Listing is filtered by policy as the native listing is: the ci token sees nothing of other/.
    assert.equal((await app().get('/v1/secret/metadata/other/?list=true').set(ci)).status, 403);
    const rootForCi = await app().get('/v1/secret/metadata?list=true').set(ci);
    assert.deepEqual(rootForCi.body.data.keys, ['ci/']);
  });

  it('the native listing accepts a trailing slash on prefix as the same listing', async () => {
    const a = await app().get('/v1/secrets?prefix=ci/list').set(root);
    const b = await app().get('/v1/secrets?prefix=ci/list/').set(root);
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.deepEqual(b.body, a.body);
  });

  it("refuses bad input in Vault's shape and changes nothing", async () => {
    const cases: [string, request.Test, number][] = [
      ['no token', app().get('/v1/secret/data/ci/app/db'), 403],
      ['bad token', app().get('/v1/secret/data/ci/app/db').set('X-Vault-Token', 'nope'), 403],
      ['denied path (another group)', app().get('/v1/secret/data/other/x').set(ci), 403],
      [
        'denied write',
        app()
          .post('/v1/secret/data/ci/app/db')
          .set(ci)
          .send({ data: { x: 'y' } }),
        403,
      ],
      ['dot segment', app().get('/v1/secret/data/ci/%2e%2e/x').set(root), 400],
      ['encoded slash', app().get('/v1/secret/data/ci%2Fapp/db').set(root), 400],
      ['reserved namespace', app().get('/v1/secret/data/sys/x').set(root), 400],
      ['unknown mount', app().get('/v1/nomount/data/x').set(root), 404],
      [
        'unknown field',
        app()
          .post('/v1/secret/data/ci/x')
          .set(root)
          .send({ data: { a: '1' }, extra: 1 }),
        400,
      ],
      ['no data', app().post('/v1/secret/data/ci/x').set(root).send({ data: {} }), 400],
      [
        'bad key',
        app()
          .post('/v1/secret/data/ci/x')
          .set(root)
          .send({ data: { 'a b': '1' } }),
        400,
      ],
      ['bad version', app().get('/v1/secret/data/ci/app/db?version=x').set(root), 400],
      ['unknown query', app().get('/v1/secret/data/ci/app/db?list=true').set(root), 400],
      ['unknown method', app().options('/v1/secret/data/ci/app/db').set(root), 405],
      ['namespace', app().get('/v1/secret/data/ci/app/db').set(root).set('X-Vault-Namespace', 'team'), 400],
      ['form body', app().post('/v1/secret/data/ci/x').set(root).type('form').send('a=b'), 400],
      [
        'xml body',
        app().post('/v1/secret/data/ci/x').set(root).set('Content-Type', 'application/xml').send('<a/>'),
        415,
      ],
      ['mount root without list', app().get('/v1/secret/metadata/').set(root), 400],
    ];
    for (const [name, req, status] of cases) {
      const res = await req;
      assert.equal(res.status, status, `${name}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.ok(Array.isArray(res.body.errors), `${name}: Vault's error shape`);
      if (name !== 'unknown mount') assert.equal(res.body.error, undefined, `${name}: no native error body`); // an unknown mount answers both shapes
      assert.ok(!JSON.stringify(res.body).includes('two'), `${name}: no value leaked`);
    }
    assert.equal((await app().get('/v1/secrets/ci/x').set(root)).status, 404, 'nothing was written');
    assert.deepEqual((await app().get('/v1/secret/data/ci/app/db').set(root)).body.data.metadata.version, 2);
  });

  it("a token of another group reads nothing of this group's secrets through the Vault routes (403, nothing leaked)", async () => {
    const admin = (path: string, body: object) => app().put(path).set(f.vault.auth).send(body);
    assert.equal(
      (await admin('/v1/policies/ops-read', { rules: [{ path: 'ops/**', capabilities: ['read', 'list'] }] })).status,
      200,
    );
    assert.equal((await admin('/v1/groups/ops', { policies: ['ops-read'] })).status, 200);
    assert.equal((await admin('/v1/secrets/ops/db', { data: { v: 'ops-value' } })).status, 200);
    const created = await app()
      .post('/v1/auth/token/create')
      .set(f.vault.auth)
      .send({ identity: 'svc:ops', groups: ['ops'] });
    const ops = { 'X-Vault-Token': created.body.token as string };
    assert.equal((await app().get('/v1/secret/data/ops/db').set(ops)).status, 200, 'its own group reads');
    const refused = await rawRequests(f.port, [
      raw('GET', '/v1/secret/data/ci/app/db', ops),
      raw('GET', '/v1/secret/data/ci/app/db?version=1', ops),
      raw('GET', '/v1/secret/metadata/ci/app/db', ops),
      raw('LIST', '/v1/secret/metadata/ci', ops),
      raw('POST', '/v1/secret/data/ci/app/db', ops, '{"data":{"password":"taken"}}'),
    ]);
    for (const res of refused) {
      assert.equal(res.status, 403, res.body);
      assert.deepEqual(Object.keys(res.json()), ['errors']);
      assert.ok(!/one|two|taken|version|created_time/.test(res.json().errors[0]), res.body);
    }
    // The ci group's token equally reads nothing of ops/.
    assert.equal((await app().get('/v1/secret/data/ops/db').set(ci)).status, 403);
    assert.deepEqual((await app().get('/v1/secret/data/ci/app/db').set(root)).body.data.data, { password: 'two' });
  });

  it('an oversized or non-JSON body without a Content-Type is refused clearly (raw)', async () => {
    const token = f.vault.rootToken;
    const big = JSON.stringify({ data: { v: 'x'.repeat(1024 * 1024 + 10) } });
    const [oversized] = await rawRequests(f.port, [
      raw('POST', '/v1/secret/data/ci/big', { 'X-Vault-Token': token }, big),
    ]);
    assert.equal(oversized!.status, 413);
    assert.match(oversized!.json().errors[0], /exceeds/);
    const [notJson, dup] = await rawRequests(f.port, [
      raw('POST', '/v1/secret/data/ci/bad', { 'X-Vault-Token': token }, 'data=1'),
      raw('POST', '/v1/secret/data/ci/bad', { 'X-Vault-Token': token }, '{"data":{"a":"1","a":"2"}}'),
    ]);
    assert.equal(notJson!.status, 400);
    assert.match(notJson!.json().errors[0], /JSON/);
    assert.equal(dup!.status, 400);
    assert.equal((await app().get('/v1/secret/data/ci/bad').set(root)).status, 404);
    assert.equal((await app().get('/v1/secret/data/ci/big').set(root)).status, 404);
  });

  it('the native routes keep their strict application/json rule', async () => {
    const res = await app()
      .put('/v1/secrets/ci/strict')
      .set(f.vault.auth)
      .set('Content-Type', 'text/plain')
      .send('{"data":{"a":"1"}}');
    assert.equal(res.status, 415);
    assert.equal(res.body.error.code, 'unsupported_media_type');
  });

  it('audit lines of Vault-route requests are the native lines but for the route: identity, groups, path, status, outcome, error code', async () => {
    const bearer = { Authorization: `Bearer ${ci['X-Vault-Token']}` };
    const lineOf = async (req: request.Test) => {
      const res = await req;
      const lines = (await readFile(f.vault.auditFile, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const line = lines.find((l) => l.request_id === res.headers['x-request-id']);
      assert.ok(line, 'the request has its audit line');
      return line;
    };
    // What differs between two requests whatever the API: the chain, the time, the request id; and the route.
    const comparable = (line: Record<string, unknown>) => {
      const { seq, prev, time, request_id, operation, ...rest } = line;
      return rest;
    };
    const vaultRead = await lineOf(app().get('/v1/secret/data/ci/app/db').set(ci));
    const nativeRead = await lineOf(app().get('/v1/secrets/ci/app/db').set(bearer));
    assert.equal(vaultRead.operation, 'GET /v1/secret/data/*path');
    assert.equal(nativeRead.operation, 'GET /v1/secrets/*path');
    assert.deepEqual(comparable(vaultRead), comparable(nativeRead));
    assert.match(vaultRead.identity, /^approle:builder/);
    assert.equal(vaultRead.path, 'ci/app/db');
    assert.equal(vaultRead.outcome, 'ok');

    const vaultDenied = await lineOf(app().get('/v1/secret/data/other/x').set(ci));
    const nativeDenied = await lineOf(app().get('/v1/secrets/other/x').set(bearer));
    assert.deepEqual(comparable(vaultDenied), comparable(nativeDenied));
    assert.equal(vaultDenied.outcome, 'denied');
    assert.equal(vaultDenied.status, 403);
    assert.equal(vaultDenied.error_code, 'forbidden');
    assert.equal(vaultDenied.path, 'other/x');
  });
});

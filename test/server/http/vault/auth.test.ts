import assert from 'node:assert/strict';
import request from 'supertest';
import { vaultSettings } from '../../../../server/http/vault/mounts.js';
import { raw, rawRequests, vaultFixture, type VaultFixture } from './fixture.js';

/** Logins on Vault's routes, token self-service with a renewable server-side expiry, sys/health and the mounts. */
describe('Vault API: auth, tokens, health, mounts', function () {
  this.timeout(30_000);
  let f: VaultFixture;
  let now = Date.now();
  const app = () => request(f.vault.app);

  before(async () => {
    now = Date.now(); // mocha loads every file first: a clock read at load time is minutes old by now
    f = await vaultFixture({ now: () => now });
  });
  after(() => f.close());

  it("jwt login (POST and PUT, a stale X-Vault-Token ignored) answers Vault's auth object beside Coffer's fields", async () => {
    for (const method of ['post', 'put'] as const) {
      const res = await app()
        [method]('/v1/auth/jwt/login')
        .set('X-Vault-Token', 'stale-token-from-a-previous-job')
        .send({ role: 'ci', jwt: await f.idp.sign() });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const { auth } = res.body;
      assert.equal(auth.client_token, res.body.token);
      assert.equal(typeof auth.accessor, 'string');
      assert.notEqual(auth.accessor, auth.client_token);
      assert.deepEqual(auth.metadata, { project_path: 'acme/api' });
      assert.ok(Number.isInteger(auth.lease_duration) && auth.lease_duration > 0 && auth.lease_duration <= 900);
      assert.equal(auth.renewable, true);
      assert.equal(auth.token_type, 'service');
      assert.ok(Array.isArray(auth.policies) && Array.isArray(auth.token_policies));
      assert.equal(typeof auth.entity_id, 'string');
      assert.equal(res.body.lease_id, '');
      assert.ok(res.body.expires_at && res.body.identity, "Coffer's own fields stay");
    }
  });

  it('approle login without a Content-Type (the Go client), and refusals in both shapes', async () => {
    const body = JSON.stringify({ role_id: f.roleId, secret_id: await f.secretId() });
    const [ok, bad] = await rawRequests(f.port, [
      raw('PUT', '/v1/auth/approle/login', { 'X-Vault-Request': 'true' }, body),
      raw(
        'PUT',
        '/v1/auth/approle/login',
        { 'X-Vault-Request': 'true' },
        JSON.stringify({ role_id: f.roleId, secret_id: 'wrong' }),
      ),
    ]);
    assert.equal(ok!.status, 200, ok!.body);
    assert.ok(ok!.json().auth.client_token);
    assert.equal(bad!.status, 401);
    assert.equal(bad!.json().error.code, 'unauthenticated');
    assert.ok(bad!.json().errors[0], "Vault's errors beside");
    assert.ok(!bad!.body.includes('wrong'));
  });

  it('configured mounts: a jwt alias logs in with the same roles, a KV mount stands for a Coffer prefix', async () => {
    const other = await vaultFixture({ vault: vaultSettings(['secret', 'team=ci/team'], ['github']) });
    try {
      const login = await request(other.vault.app)
        .post('/v1/auth/github/login')
        .send({ role: 'ci', jwt: await other.idp.sign() });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      const vt = { 'X-Vault-Token': login.body.auth.client_token };
      const root = { 'X-Vault-Token': other.vault.rootToken };
      assert.equal(
        (
          await request(other.vault.app)
            .post('/v1/team/data/app/db')
            .set(root)
            .send({ data: { pw: 'x' } })
        ).status,
        200,
      );
      assert.deepEqual(
        (await request(other.vault.app).get('/v1/secrets/ci/team/app/db').set(root)).body.data,
        { pw: 'x' },
        'team/data/app/db is the Coffer secret ci/team/app/db',
      );
      assert.deepEqual(
        (await request(other.vault.app).get('/v1/team/data/app/db').set(vt)).body.data.data,
        { pw: 'x' },
        'the policy on ci/** governs it',
      );
      assert.deepEqual((await request(other.vault.app).get('/v1/team/metadata/?list=true').set(vt)).body.data.keys, [
        'app/',
      ]);
      assert.equal(
        (
          await request(other.vault.app)
            .post('/v1/auth/gitlab/login')
            .send({ role: 'ci', jwt: await other.idp.sign() })
        ).status,
        401,
        'only configured aliases log in (elsewhere the token gate answers)',
      );
    } finally {
      await other.close();
    }
  });

  it('lookup-self, renew-self (the same token, its server-side expiry moved), revoke-self', async () => {
    const login = await app()
      .post('/v1/auth/jwt/login')
      .send({ role: 'ci', jwt: await f.idp.sign() });
    const token = login.body.auth.client_token as string;
    const vt = { 'X-Vault-Token': token };
    const look = await app().get('/v1/auth/token/lookup-self').set(vt);
    assert.equal(look.status, 200, JSON.stringify(look.body));
    assert.equal(look.body.data.type, 'service');
    assert.equal(look.body.data.accessor, login.body.auth.accessor);
    assert.deepEqual(look.body.data.meta, { project_path: 'acme/api' });
    assert.ok(look.body.data.ttl > 0);
    assert.equal(look.body.data.expire_time, login.body.expires_at);
    assert.ok(Array.isArray(look.body.data.policies));
    assert.ok(!JSON.stringify(look.body).includes(token), 'lookup-self never echoes the token');

    try {
      await renewAndRevoke(vt, token);
    } finally {
      now = Date.now();
    }
  });

  async function renewAndRevoke(vt: { 'X-Vault-Token': string }, token: string) {
    now += 10 * 60_000; // 10 of its 15 minutes pass
    const before = (await app().get('/v1/auth/token/lookup-self').set(vt)).body.data;
    assert.ok(before.ttl <= 5 * 60);
    // node-vault's renew: POST, form-urlencoded, empty body.
    const renew = await app()
      .post('/v1/auth/token/renew-self')
      .set(vt)
      .set('Content-Type', 'application/x-www-form-urlencoded');
    assert.equal(renew.status, 200, JSON.stringify(renew.body));
    assert.equal(renew.body.auth.client_token, token, 'the same token');
    assert.ok(renew.body.auth.lease_duration > before.ttl);
    const after = (await app().get('/v1/auth/token/lookup-self').set(vt)).body.data;
    assert.ok(Date.parse(after.expire_time) > Date.parse(before.expire_time), 'the expiry moved');
    now += 10 * 60_000; // past the original expiry: still valid, because renew moved it
    assert.equal((await app().get('/v1/auth/token/lookup-self').set(vt)).status, 200);

    const badRenew = await app().post('/v1/auth/token/renew-self').set(vt).send({ increment: 'soon' });
    assert.equal(badRenew.status, 400);
    assert.ok(badRenew.body.errors[0]);
    assert.equal((await app().put('/v1/auth/token/revoke-self').set(vt)).status, 204);
    const gone = await app().get('/v1/auth/token/lookup-self').set(vt);
    assert.equal(gone.status, 403);
    assert.match(gone.body.errors[0], /permission denied/);
    assert.equal((await app().post('/v1/auth/token/renew-self').set(vt)).status, 403, 'a revoked token is not renewed');
  }

  it('an expired token that was never renewed is refused (the expiry is checked on every use)', async () => {
    const login = await app()
      .post('/v1/auth/jwt/login')
      .send({ role: 'ci', jwt: await f.idp.sign() });
    const vt = { 'X-Vault-Token': login.body.auth.client_token };
    now += 16 * 60_000;
    try {
      assert.equal((await app().get('/v1/auth/token/lookup-self').set(vt)).status, 403);
      assert.equal((await app().post('/v1/auth/token/renew-self').set(vt)).status, 403);
    } finally {
      now = Date.now();
    }
  });

  it("sys/health: Vault's fields, GET and HEAD, the status flags; bad flags refused", async () => {
    const res = await app().get('/v1/sys/health');
    assert.equal(res.status, 200);
    for (const k of [
      'initialized',
      'sealed',
      'standby',
      'performance_standby',
      'replication_performance_mode',
      'replication_dr_mode',
      'server_time_utc',
      'version',
      'cluster_name',
    ])
      assert.ok(k in res.body, k);
    assert.equal((await app().head('/v1/sys/health')).status, 200);
    assert.equal((await app().get('/v1/sys/health?activecode=299')).status, 299);
    assert.equal((await app().head('/v1/sys/health?activecode=204')).status, 204);
    assert.equal((await app().get('/v1/sys/health?standbyok=true&sealedcode=200')).status, 200);
    const bad = await app().get('/v1/sys/health?activecode=abc');
    assert.equal(bad.status, 400);
    assert.ok(bad.body.errors && bad.body.error);
    assert.equal((await app().get('/v1/sys/health?unknownflag=1')).status, 400);
    await f.vault.seal.seal();
    try {
      assert.equal((await app().get('/v1/sys/health')).status, 503);
      assert.equal((await app().get('/v1/sys/health?sealedcode=200')).status, 200);
      const sealedRead = await app().get('/v1/secret/data/ci/x').set('X-Vault-Token', f.vault.rootToken);
      assert.equal(sealedRead.status, 503);
      assert.ok(Array.isArray(sealedRead.body.errors));
    } finally {
      for (const share of f.vault.shares.slice(0, 3)) if (f.vault.seal.sealed) await f.vault.seal.submitShare(share);
    }
  });

  it('sys/internal/ui/mounts (the CLI preflight) and sys/mounts describe the KV mounts', async () => {
    const root = { 'X-Vault-Token': f.vault.rootToken };
    const pre = await app().get('/v1/sys/internal/ui/mounts/secret/ci/app').set(root);
    assert.equal(pre.status, 200);
    assert.equal(pre.body.data.path, 'secret/');
    assert.equal(pre.body.data.type, 'kv');
    assert.equal(pre.body.data.options.version, '2');
    assert.equal((await app().get('/v1/sys/internal/ui/mounts/other/x').set(root)).status, 404);
    assert.equal((await app().get('/v1/sys/internal/ui/mounts/secret/x')).status, 403);
    const mounts = await app().get('/v1/sys/mounts').set(root);
    assert.equal(mounts.body['secret/'].type, 'kv');
    assert.equal(mounts.body.data['secret/'].options.version, '2');
  });
});

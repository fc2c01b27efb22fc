import assert from 'node:assert/strict';
import fc from 'fast-check';
import request from 'supertest';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { PolicySet, checkPattern, type Rule } from '../../../server/auth/policy.js';
import type { Capability } from '../../../server/auth/access.js';
import { openVault, type TestVault } from '../../helpers.js';

describe('policies (unit)', () => {
  const set = (rules: Rule[]) => new PolicySet([{ name: 'p', rules }]);

  it('C2: `*` is exactly one segment, `**` is zero or more trailing segments', () => {
    const one = set([{ path: 'secret/app/*', capabilities: ['read'] }]);
    assert.equal(one.allows('read', 'secret/app/x'), true);
    for (const p of ['secret/application/x', 'secret/app2/x', 'secret/ap', 'secret/app', 'secret/app/x/y']) assert.equal(one.allows('read', p), false, p);
    const tail = set([{ path: 'secret/app/**', capabilities: ['read'] }]);
    for (const p of ['secret/app', 'secret/app/x', 'secret/app/x/y/z']) assert.equal(tail.allows('read', p), true, p);
    assert.equal(tail.allows('read', 'secret/application'), false);
  });

  it('C14: an explicit deny wins in any order and across policies; grants add up', () => {
    const policies = new PolicySet([
      { name: 'a', rules: [{ path: 'secret/app/*', capabilities: ['read'] }] },
      { name: 'b', rules: [{ path: 'secret/app/admin', capabilities: ['deny'] }, { path: 'secret/app/*', capabilities: ['update'] }] },
    ]);
    assert.equal(policies.allows('read', 'secret/app/admin'), false);
    assert.equal(policies.allows('read', 'secret/app/x'), true);
    assert.equal(policies.allows('update', 'secret/app/x'), true);
    assert.equal(policies.allows('delete', 'secret/app/x'), false);
  });

  it('refuses bad patterns when they are written', () => {
    for (const bad of ['..', 'a/../b', 'a//b', 'a/**/b', 'a*', '*x', '', 'caf\u00e9', '%2e%2e', 'a/', '/a']) assert.throws(() => checkPattern(bad), /rule path|pattern/, bad);
    for (const good of ['a', 'a/*', 'a/**', '*/b', '**']) assert.equal(checkPattern(good), good);
  });

  it('P4: agrees with a reference evaluator, and deny never grants, allow never revokes', () => {
    const segment = fc.constantFrom('a', 'b', 'c');
    const pattern = fc.tuple(fc.array(fc.constantFrom('a', 'b', '*'), { minLength: 1, maxLength: 3 }), fc.boolean()).map(([s, tail]) => (tail ? [...s, '**'] : s).join('/'));
    const caps: Capability[] = ['read', 'update', 'deny'];
    const rule = fc.record({ path: pattern, capabilities: fc.subarray(caps, { minLength: 1 }) });
    const reference = (rules: Rule[], cap: Capability, path: string) => {
      const p = path.split('/');
      const match = (r: Rule) => {
        const s = r.path.split('/');
        const tail = s.at(-1) === '**';
        const fixed = tail ? s.slice(0, -1) : s;
        if (tail ? p.length < fixed.length : p.length !== fixed.length) return false;
        return fixed.every((x, i) => x === '*' || x === p[i]);
      };
      const hits = rules.filter(match);
      if (hits.some((r) => r.capabilities.includes('deny'))) return false;
      return hits.some((r) => r.capabilities.includes(cap));
    };
    fc.assert(
      fc.property(fc.array(rule, { maxLength: 6 }), fc.array(segment, { minLength: 1, maxLength: 4 }), rule, (rules, segs, extra) => {
        const path = segs.join('/');
        for (const cap of ['read', 'update'] as Capability[]) {
          const before = set(rules).allows(cap, path);
          assert.equal(before, reference(rules, cap, path));
          const withExtra = set([...rules, extra]).allows(cap, path);
          if (extra.capabilities.includes('deny')) assert.ok(!withExtra || before, 'adding a deny granted access');
          else assert.ok(withExtra || !before, 'adding an allow revoked access');
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe('tokens and access over HTTP', function () {
  this.timeout(20_000);
  let vault: TestVault;
  let now: number;
  const admin = () => request(vault.app);

  before(async () => {
    now = Date.now();
    vault = await openVault({ now: () => now, loginLimits: { perAddress: 1_000, perAccount: 10 } });
    await admin().put('/v1/policies/ci-read').set(vault.auth).send({ rules: [{ path: 'ci/api/*', capabilities: ['read', 'list'] }] });
    await admin().put('/v1/groups/ci').set(vault.auth).send({ policies: ['ci-read'] });
    for (const p of ['ci/api/db', 'ci/web/db', 'other/x']) await admin().put(`/v1/secrets/${p}`).set(vault.auth).send({ data: { v: p } });
  });
  after(() => vault.cleanup());

  const token = async (body: object) => {
    const res = await admin().post('/v1/auth/token/create').set(vault.auth).send(body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return { Authorization: `Bearer ${res.body.token}` };
  };

  it('C1: a token with no policies is denied every secret route', async () => {
    const none = await token({ identity: 'svc:none' });
    assert.equal((await admin().get('/v1/secrets/ci/api/db').set(none)).status, 403);
    assert.equal((await admin().put('/v1/secrets/ci/api/new').set(none).send({ data: { a: 'b' } })).status, 403);
    assert.equal((await admin().get('/v1/metadata/ci/api/db').set(none)).status, 403);
    assert.equal((await admin().get('/v1/secrets?prefix=ci').set(none)).status, 403);
    assert.equal((await admin().delete('/v1/secrets/ci/api/db').set(none)).status, 403);
    assert.equal((await admin().get('/v1/policies').set(none)).status, 403);
  });

  it('C18/C21: each verb is checked on its own, listing is filtered, and a denied path looks the same whether or not it exists', async () => {
    const ci = await token({ identity: 'svc:ci', groups: ['ci'] });
    assert.equal((await admin().get('/v1/secrets/ci/api/db').set(ci)).status, 200);
    assert.equal((await admin().get('/v1/metadata/ci/api/db').set(ci)).status, 200);
    for (const [method, path] of [['put', '/v1/secrets/ci/api/db'], ['delete', '/v1/secrets/ci/api/db'], ['post', '/v1/secrets/ci/api/db/destroy'], ['post', '/v1/secrets/ci/api/db/undelete']] as const) {
      assert.equal((await admin()[method](path).set(ci).send(method === 'post' ? { versions: [1] } : method === 'put' ? { data: { a: 'b' } } : undefined)).status, 403, `${method} ${path}`);
    }
    const list = await admin().get('/v1/secrets?prefix=ci').set(ci);
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.keys, ['ci/api/db']);
    assert.equal((await admin().get('/v1/secrets?prefix=other').set(ci)).status, 403);
    const exists = await admin().get('/v1/secrets/ci/web/db').set(ci);
    const missing = await admin().get('/v1/secrets/ci/web/nothing').set(ci);
    assert.equal(exists.status, 403);
    assert.equal(missing.status, 403);
    assert.equal(exists.body.error.code, missing.body.error.code);
  });

  it('B5: a policy change or a removed membership applies to the next request with the same token', async () => {
    await admin().put('/v1/policies/tmp-read').set(vault.auth).send({ rules: [{ path: 'other/*', capabilities: ['read'] }] });
    await admin().put('/v1/groups/tmp').set(vault.auth).send({ policies: ['tmp-read'], members: ['svc:member'] });
    const member = await token({ identity: 'svc:member' });
    assert.equal((await admin().get('/v1/secrets/other/x').set(member)).status, 200, 'static membership grants');
    await admin().put('/v1/policies/tmp-read').set(vault.auth).send({ rules: [{ path: 'other/*', capabilities: ['deny'] }] });
    assert.equal((await admin().get('/v1/secrets/other/x').set(member)).status, 403, 'policy change applies at once');
    await admin().put('/v1/policies/tmp-read').set(vault.auth).send({ rules: [{ path: 'other/*', capabilities: ['read'] }] });
    await admin().put('/v1/groups/tmp').set(vault.auth).send({ policies: ['tmp-read'], members: [] });
    assert.equal((await admin().get('/v1/secrets/other/x').set(member)).status, 403, 'membership removal applies at once');
  });

  it('B14/C20: reserved and look-alike names are refused and nothing is stored', async () => {
    for (const name of ['root', 'default', 'Root', 'admin%2F..', 'a%20b']) {
      assert.equal((await admin().put(`/v1/policies/${name}`).set(vault.auth).send({ rules: [{ path: 'a', capabilities: ['read'] }] })).status, 400, name);
    }
    assert.equal((await admin().put('/v1/groups/g1').set(vault.auth).send({ policies: ['root'] })).status, 400);
    assert.equal((await admin().put('/v1/policies/bad-rule').set(vault.auth).send({ rules: [{ path: 'a/../b', capabilities: ['read'] }] })).status, 400);
    assert.equal((await admin().get('/v1/policies/bad-rule').set(vault.auth)).status, 404);
  });

  it('B1/B15/B16: edited payloads, other vaults\' tokens and revoked tokens are refused', async () => {
    const ci = await token({ identity: 'svc:edit', groups: ['ci'] });
    const [h, p, s] = ci.Authorization.slice(7).split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    const edited = Buffer.from(JSON.stringify({ ...claims, root: true, groups: ['admin'] })).toString('base64url');
    assert.equal((await admin().get('/v1/secrets/other/x').set({ Authorization: `Bearer ${h}.${edited}.${s}` })).status, 401);
    const other = await openVault();
    try {
      assert.equal((await admin().get('/v1/auth/token/self').set(other.auth)).status, 401, 'a root token of another vault');
    } finally {
      await other.cleanup();
    }
    assert.equal((await admin().post('/v1/auth/token/revoke').set(ci).send({})).status, 204);
    assert.equal((await admin().get('/v1/secrets/ci/api/db').set(ci)).status, 401);
    assert.equal((await admin().post('/v1/auth/token/revoke').set(vault.auth).send({ token: ci.Authorization.slice(7) })).status, 204, 'revoke is idempotent');
  });

  it('B6: tokens expire at exp and renewal never passes the max TTL', async () => {
    const start = now;
    try {
      const short = await token({ identity: 'svc:ttl', ttl: 60, max_ttl: 150 });
      now = start + 59_000;
      assert.equal((await admin().get('/v1/auth/token/self').set(short)).status, 200);
      let current = short;
      const expiries: number[] = [];
      for (let i = 0; i < 4; i++) {
        const renewed = await admin().post('/v1/auth/token/renew').set(current).send({});
        if (renewed.status !== 200) break;
        expiries.push(Date.parse(renewed.body.expires_at));
        current = { Authorization: `Bearer ${renewed.body.token}` };
        now += 50_000;
      }
      assert.ok(expiries.length >= 2, `renewal worked ${expiries.length} times`);
      assert.ok(expiries.every((e) => e <= start + 150_000 + 1_000), 'no renewal passes max_ttl');
      now = start + 151_000;
      assert.equal((await admin().get('/v1/auth/token/self').set(current)).status, 401, 'dead after max_ttl');
      assert.equal((await admin().post('/v1/auth/token/renew').set(current).send({})).status, 401);
    } finally {
      now = start;
    }
  });

  it('B11: revoking another token needs admin', async () => {
    const a = await token({ identity: 'svc:a', groups: ['ci'] });
    const b = await token({ identity: 'svc:b', groups: ['ci'] });
    assert.equal((await admin().post('/v1/auth/token/revoke').set(a).send({ token: b.Authorization.slice(7) })).status, 403);
    assert.equal((await admin().get('/v1/secrets/ci/api/db').set(b)).status, 200);
  });

  it('publishes a JWKS that verifies Coffer tokens and holds no private key', async () => {
    const jwks = (await admin().get('/v1/auth/jwks')).body;
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0].d, undefined);
    assert.equal(jwks.keys[0].alg, 'EdDSA');
    const { payload } = await jwtVerify(vault.rootToken, createLocalJWKSet(jwks), { typ: 'coffer+jwt', currentDate: new Date(now) });
    assert.equal(payload.sub, 'root');
  });

  it('B17: while sealed, a valid token gets 503 and no token information', async () => {
    const other = await openVault();
    try {
      await other.seal.seal();
      const res = await request(other.app).get('/v1/auth/token/self').set(other.auth);
      assert.equal(res.status, 503);
      assert.equal(res.body.error.code, 'sealed');
    } finally {
      await other.cleanup();
    }
  });

  it('userpass: same answer for unknown users and wrong passwords; per-user limit without locking others out', async () => {
    for (const name of ['alice', 'bob']) await admin().put(`/v1/auth/userpass/users/${name}`).set(vault.auth).send({ password: 'correct horse battery', groups: ['ci'] });
    assert.equal((await admin().put('/v1/auth/userpass/users/Alice').set(vault.auth).send({ password: 'correct horse battery' })).status, 400);
    assert.equal((await admin().get('/v1/auth/userpass/users/alice').set(vault.auth)).body.password_hash, undefined);
    const wrong = await admin().post('/v1/auth/userpass/login').send({ username: 'alice', password: 'wrong password!' });
    const unknown = await admin().post('/v1/auth/userpass/login').send({ username: 'mallory', password: 'wrong password!' });
    assert.deepEqual([wrong.status, wrong.body.error.message], [unknown.status, unknown.body.error.message]);
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await admin().post('/v1/auth/userpass/login').send({ username: 'alice', password: `guess-${i}-xxxx` })).status);
    assert.ok(statuses.includes(429), 'brute force on one user is limited');
    assert.equal((await admin().post('/v1/auth/userpass/login').send({ username: 'bob', password: 'correct horse battery' })).status, 200, 'another user still logs in');
  });

  it('approle: one-use secret_id logs in exactly once under 20 concurrent logins; CIDR and expiry bind', async () => {
    await admin().put('/v1/auth/approle/roles/builder').set(vault.auth).send({ groups: ['ci'], secret_id_num_uses: 1 });
    const roleId = (await admin().get('/v1/auth/approle/roles/builder').set(vault.auth)).body.role_id;
    const sid = (await admin().post('/v1/auth/approle/roles/builder/secret-id').set(vault.auth).send({})).body.secret_id;
    const results = await Promise.all(Array.from({ length: 20 }, () => admin().post('/v1/auth/approle/login').send({ role_id: roleId, secret_id: sid })));
    assert.equal(results.filter((r) => r.status === 200).length, 1);
    await admin().put('/v1/auth/approle/roles/fenced').set(vault.auth).send({ groups: ['ci'], bound_cidrs: ['10.0.0.0/8'] });
    const fencedId = (await admin().get('/v1/auth/approle/roles/fenced').set(vault.auth)).body.role_id;
    const fencedSid = (await admin().post('/v1/auth/approle/roles/fenced/secret-id').set(vault.auth).send({})).body.secret_id;
    assert.equal((await admin().post('/v1/auth/approle/login').send({ role_id: fencedId, secret_id: fencedSid })).status, 401);
    assert.equal((await admin().put('/v1/auth/approle/roles/bad').set(vault.auth).send({ bound_cidrs: ['10.0.0.0/99'] })).status, 400);
    await admin().put('/v1/auth/approle/roles/brief').set(vault.auth).send({ groups: ['ci'], secret_id_ttl: '1m' });
    const briefId = (await admin().get('/v1/auth/approle/roles/brief').set(vault.auth)).body.role_id;
    const briefSid = (await admin().post('/v1/auth/approle/roles/brief/secret-id').set(vault.auth).send({})).body.secret_id;
    const start = now;
    now = start + 61_000;
    try {
      assert.equal((await admin().post('/v1/auth/approle/login').send({ role_id: briefId, secret_id: briefSid })).status, 401);
    } finally {
      now = start;
    }
  });
});

import assert from 'node:assert/strict';
import request from 'supertest';
import { TokenService } from '../../../server/auth/tokens.js';
import { openVault, type TestVault } from '../../helpers.js';

/**
 * Issue 10 items 2 and 3 (SECURITY-CASES B4, B6, B14, B16): token/create is bounded by what the
 * minter holds (policies, groups, remaining lifetime, token_max_ttl_s, no reserved identity);
 * minted tokens form a tree that revocation walks, persisted across a restart; renew extends
 * the same token in place (server-side expiry record, the JWT `exp` as the hard bound).
 */

type Headers = Record<string, string>;
const bearer = (token: string): Headers => ({ Authorization: `Bearer ${token}` });
const claimsOf = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
const kek = {
  source: { kind: 'env' as const, variable: 'COFFER_TEST_KEK' },
  env: { COFFER_TEST_KEK: Buffer.alloc(32, 0x17).toString('base64') },
};

function assertError(res: request.Response, status: number, code: string, what = ''): void {
  assert.equal(res.status, status, `${what} expected ${status} ${code}, got ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body?.error?.code, code, `${what} ${JSON.stringify(res.body)}`);
  assert.equal(res.body.token, undefined, `${what}: no token in a refusal`);
}

const create = (vault: TestVault, auth: Headers, body: object) =>
  request(vault.app).post('/v1/auth/token/create').set(auth).send(body);
const self = (vault: TestVault, token: string) => request(vault.app).get('/v1/auth/token/self').set(bearer(token));
const renew = (vault: TestVault, token: string) =>
  request(vault.app).post('/v1/auth/token/renew').set(bearer(token)).send({});
const revoke = (vault: TestVault, auth: Headers, body: object = {}) =>
  request(vault.app).post('/v1/auth/token/revoke').set(auth).send(body);

async function mint(vault: TestVault, auth: Headers, body: object): Promise<string> {
  const res = await create(vault, auth, body);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.token as string;
}

/** Everything the vault keeps under `auth/` (tokens, revocations, renewals, the tree). */
async function authState(vault: TestVault): Promise<string[]> {
  return (await vault.store.scanPrefix('auth/')).map(([k, v]) => `${k}=${Buffer.from(v).toString('base64')}`);
}

async function setup(vault: TestVault): Promise<void> {
  const put = async (path: string, body: object) =>
    assert.equal((await request(vault.app).put(path).set(vault.auth).send(body)).status, 200, path);
  await put('/v1/policies/token-maker', { rules: [{ path: 'sys/auth/token/create', capabilities: ['admin'] }] });
  await put('/v1/policies/app-read', { rules: [{ path: 'app/*', capabilities: ['read'] }] });
  await put('/v1/policies/everything', {
    rules: [{ path: '**', capabilities: ['read', 'list', 'create', 'update', 'delete', 'destroy', 'admin'] }],
  });
  await put('/v1/policies/orphan-maker', {
    rules: [{ path: 'sys/auth/token/create-orphan', capabilities: ['admin'] }],
  });
  await put('/v1/groups/ops', { policies: ['everything'] });
  await put('/v1/groups/alice-team', { policies: ['everything'], members: ['user:alice'] });
  await put('/v1/groups/svc-team', { policies: ['everything'], members: ['svc:member'] });
  await put('/v1/secrets/app/x', { data: { v: '1' } });
  await put('/v1/secrets/prod/db', { data: { v: 'prod' } });
}

describe('token/create: a minter grants at most what it holds (issue 10 item 2, B14)', () => {
  let vault: TestVault;
  const start = Math.floor(Date.now() / 1000) * 1000;
  let clock = start;
  let minter: Headers;
  before(async () => {
    vault = await openVault({ now: () => clock });
    await setup(vault);
    // The attacker's token: only admin on sys/auth/token/create (plus app-read and group ci to pass on).
    minter = bearer(
      await mint(vault, vault.auth, {
        identity: 'svc:minter',
        policies: ['token-maker', 'app-read'],
        groups: ['ci'],
        ttl: '2h',
      }),
    );
  });
  after(() => vault.cleanup());
  beforeEach(() => {
    clock = start;
  });

  it('cannot mint root, other policies or groups, a longer lifetime, or a group member identity: 403 naming what, nothing stored', async () => {
    const before = await authState(vault);
    for (const [body, mention] of [
      [{ identity: 'svc:x', policies: ['everything'], ttl: '365d' }, 'everything'],
      [{ identity: 'svc:x', policies: ['everything'] }, 'everything'],
      [{ identity: 'svc:x', policies: ['app-read', 'nonexistent'] }, 'nonexistent'],
      [{ identity: 'svc:x', groups: ['ops'] }, 'ops'],
      [{ identity: 'svc:x', groups: ['ci', 'alice-team'] }, 'alice-team'],
      [{ identity: 'svc:member' }, 'svc-team'],
      [{ identity: 'svc:x', ttl: '365d' }, 'lifetime'],
      [{ identity: 'svc:x', ttl: 7201 }, 'lifetime'],
      [{ identity: 'svc:x', ttl: '1h', max_ttl: '3h' }, 'lifetime'],
      [{ identity: 'svc:x', orphan: true }, 'create-orphan'],
    ] as const) {
      const res = await create(vault, minter, body);
      assertError(res, 403, 'forbidden', JSON.stringify(body));
      assert.ok(
        String(res.body.error.message).includes(mention),
        `${JSON.stringify(body)}: "${res.body.error.message}" names ${mention}`,
      );
    }
    assert.deepEqual(await authState(vault), before, 'a refused mint stores nothing');
  });

  it('never mints a reserved identity (root, user:*, approle:*, jwt:*, any case or separator): 400, nothing stored, not even for root', async () => {
    const before = await authState(vault);
    for (const identity of [
      'root',
      'Root',
      'ROOT',
      'root:x',
      'user:alice',
      'USER:alice',
      'User:alice',
      'user@alice',
      'user/alice',
      'user.alice',
      'approle:builder',
      'AppRole:builder',
      'jwt:github:repo',
      'JWT:x',
      'userpass:alice',
      ' root',
      'root ',
      'root\u200b',
      'ro\u200bot',
      'user:al\u0131ce',
    ]) {
      for (const auth of [minter, vault.auth]) {
        const res = await create(vault, auth, { identity });
        assertError(res, 400, 'invalid_request', JSON.stringify(identity));
      }
    }
    assert.deepEqual(await authState(vault), before);
  });

  it('the minted root-identity attack from the report fails and the minter still cannot read prod', async () => {
    const res = await create(vault, minter, { identity: 'root', policies: ['everything'], ttl: '365d' });
    assert.ok(res.status === 400 || res.status === 403, JSON.stringify(res.body));
    assert.equal((await request(vault.app).get('/v1/secrets/prod/db').set(minter)).status, 403);
  });

  it("a subset of the minter's policies and groups within its lifetime works, and the child holds exactly that", async () => {
    const child = await mint(vault, minter, {
      identity: 'svc:child',
      policies: ['app-read'],
      groups: ['ci'],
      ttl: '10m',
    });
    const me = await self(vault, child);
    assert.equal(me.status, 200);
    assert.deepEqual(me.body.policies, ['app-read']);
    assert.deepEqual(me.body.groups, ['ci']);
    assert.equal((await request(vault.app).get('/v1/secrets/app/x').set(bearer(child))).status, 200);
    assert.equal((await request(vault.app).get('/v1/secrets/prod/db').set(bearer(child))).status, 403);
    assertError(
      await create(vault, bearer(child), { identity: 'svc:grandchild' }),
      403,
      'forbidden',
      'no token-maker passed on',
    );
    // Exactly the minter's remaining lifetime is allowed; its default TTL never exceeds it.
    const full = await mint(vault, minter, { identity: 'svc:full', ttl: '2h' });
    assert.equal(Date.parse((await self(vault, full)).body.expires_at), start + 7_200_000);
    clock = start + 7_200_000 - 600_000;
    const late = await create(vault, minter, { identity: 'svc:late' });
    assert.equal(late.status, 200, JSON.stringify(late.body));
    assert.equal(
      Date.parse(late.body.expires_at),
      start + 7_200_000,
      "the default hour is cut to the minter's remaining 10 minutes",
    );
  });

  it('root may mint any policy or group, but not past token_max_ttl_s (default 32 days)', async () => {
    const wide = await mint(vault, vault.auth, {
      identity: 'svc:wide',
      policies: ['everything'],
      groups: ['ops'],
      ttl: '30d',
    });
    assert.equal((await request(vault.app).get('/v1/secrets/prod/db').set(bearer(wide))).status, 200);
    const before = await authState(vault);
    for (const body of [
      { identity: 'svc:forever', ttl: '40d' },
      { identity: 'svc:forever', ttl: '1d', max_ttl: '365d' },
    ]) {
      const res = await create(vault, vault.auth, body);
      assertError(res, 400, 'invalid_request', JSON.stringify(body));
      assert.match(res.body.error.message, /token_max_ttl_s/);
    }
    assert.deepEqual(await authState(vault), before);
  });
});

describe('token/create: a child is allowed nothing its minters are not, now or later (their denies and memberships)', () => {
  let vault: TestVault;
  const put = async (path: string, body: object) =>
    assert.equal((await request(vault.app).put(path).set(vault.auth).send(body)).status, 200, path);
  const read = async (token: string, path: string) =>
    (await request(vault.app).get(`/v1/secrets/${path}`).set(bearer(token))).status;
  before(async () => {
    vault = await openVault();
    await setup(vault);
    await put('/v1/policies/app-all', { rules: [{ path: 'app/**', capabilities: ['read', 'list'] }] });
    await put('/v1/policies/no-prod', { rules: [{ path: 'app/prod/**', capabilities: ['deny'] }] });
    await put('/v1/groups/restricted', { policies: ['no-prod'] });
    await put('/v1/groups/by-membership', { policies: ['no-prod'], members: ['svc:member-parent'] });
    await put('/v1/groups/later', { policies: [] });
    await put('/v1/secrets/app/prod/db', { data: { v: 'prod-password' } });
    await put('/v1/secrets/app/dev/db', { data: { v: 'dev' } });
  });
  after(() => vault.cleanup());

  it("a deny from a group the minter's token carries holds for a child minted without the group", async () => {
    const parent = await mint(vault, vault.auth, {
      identity: 'svc:parent',
      policies: ['app-all', 'token-maker', 'orphan-maker'],
      groups: ['restricted'],
    });
    assert.equal(await read(parent, 'app/prod/db'), 403);
    const child = await mint(vault, bearer(parent), { identity: 'svc:child', policies: ['app-all', 'token-maker'] });
    assert.equal(await read(child, 'app/prod/db'), 403, "the child escaped its minter's deny");
    assert.equal(await read(child, 'app/dev/db'), 200, 'what both are allowed still reads');
    const grandchild = await mint(vault, bearer(child), { identity: 'svc:grandchild', policies: ['app-all'] });
    assert.equal(await read(grandchild, 'app/prod/db'), 403, 'two levels down');
    assert.equal(await read(grandchild, 'app/dev/db'), 200);
    const orphan = await mint(vault, bearer(parent), { identity: 'svc:orphan', policies: ['app-all'], orphan: true });
    assert.equal(await read(orphan, 'app/prod/db'), 403, "an orphan leaves the tree, not its minter's bounds");
    assert.deepEqual(claimsOf(grandchild).within, [
      { sub: 'svc:child', groups: [], policies: ['app-all', 'token-maker'] },
      { sub: 'svc:parent', groups: ['restricted'], policies: ['app-all', 'token-maker', 'orphan-maker'] },
    ]);
    // The capabilities route and a listing answer from the same meet.
    const caps = await request(vault.app).get('/v1/auth/token/capabilities?path=app/prod/db').set(bearer(child));
    assert.equal(caps.status, 200, JSON.stringify(caps.body));
    assert.deepEqual(caps.body.capabilities, []);
    const dev = await request(vault.app).get('/v1/auth/token/capabilities?path=app/dev/db').set(bearer(child));
    assert.deepEqual(dev.body.capabilities, ['read', 'list']);
    const listed = await request(vault.app).get('/v1/secrets?prefix=app').set(bearer(child));
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.ok(!JSON.stringify(listed.body).includes('app/prod'), JSON.stringify(listed.body));
  });

  it('a deny from a group the minter is a member of holds for a child with another identity', async () => {
    const parent = await mint(vault, vault.auth, {
      identity: 'svc:member-parent',
      policies: ['app-all', 'token-maker'],
    });
    assert.equal(await read(parent, 'app/prod/db'), 403);
    const child = await mint(vault, bearer(parent), { identity: 'svc:elsewhere', policies: ['app-all'] });
    assert.equal(await read(child, 'app/prod/db'), 403);
    assert.equal(await read(child, 'app/dev/db'), 200);
  });

  it('a deny given to the minter after the child was minted reaches the child at its next request', async () => {
    const parent = await mint(vault, vault.auth, {
      identity: 'svc:later-parent',
      policies: ['app-all', 'token-maker'],
      groups: ['later'],
    });
    const child = await mint(vault, bearer(parent), { identity: 'svc:later-child', policies: ['app-all'] });
    assert.equal(await read(child, 'app/prod/db'), 200);
    await put('/v1/groups/later', { policies: ['no-prod'] });
    assert.equal(await read(child, 'app/prod/db'), 403);
    await put('/v1/groups/later', { policies: [] });
    assert.equal(await read(child, 'app/prod/db'), 200);
  });

  it('a token root minted carries no minter', async () => {
    const token = await mint(vault, vault.auth, { identity: 'svc:plain', policies: ['app-all'] });
    assert.equal(claimsOf(token).within, undefined);
    assert.equal(await read(token, 'app/prod/db'), 200);
  });
});

describe('token_max_ttl_s caps every token the TokenService issues, logins included', () => {
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
  });
  after(() => vault.cleanup());

  it('a login asking for a year gets at most the configured maximum', async () => {
    const tokens = new TokenService(vault.barrier, vault.seal, { maxTtlSeconds: 600 });
    await vault.seal.seal();
    for (const share of vault.shares.slice(0, 3)) await vault.seal.submitShare(share);
    const { claims } = await tokens.issue({
      sub: 'user:bob',
      groups: [],
      ttlSeconds: 366 * 86_400,
      maxTtlSeconds: 366 * 86_400,
      method: 'userpass',
    });
    const now = Math.floor(Date.now() / 1000);
    assert.ok(claims.exp <= now + 600, `exp ${claims.exp - now}s ahead`);
  });
});

describe('token tree: revoking a token revokes what it minted (B4, B16)', () => {
  let vault: TestVault;
  let maker: string;
  before(async () => {
    vault = await openVault();
    await setup(vault);
    maker = await mint(vault, vault.auth, {
      identity: 'svc:maker',
      policies: ['token-maker', 'app-read', 'orphan-maker'],
    });
  });
  after(() => vault.cleanup());

  async function family(): Promise<{ a: string; b: string; c: string; sibling: string }> {
    const a = await mint(vault, bearer(maker), { identity: 'svc:a', policies: ['token-maker', 'app-read'] });
    const b = await mint(vault, bearer(a), { identity: 'svc:b', policies: ['token-maker', 'app-read'] });
    const c = await mint(vault, bearer(b), { identity: 'svc:c', policies: ['app-read'] });
    const sibling = await mint(vault, bearer(maker), { identity: 'svc:sibling', policies: ['app-read'] });
    return { a, b, c, sibling };
  }

  it('each minted token names its parent', async () => {
    const { a, b } = await family();
    assert.equal(claimsOf(b).parent, claimsOf(a).jti);
    assert.equal(claimsOf(a).parent, claimsOf(maker).jti);
  });

  it('revoke-self of a parent kills its child and grandchild; a sibling and the minter live on; revoke stays idempotent', async () => {
    const { a, b, c, sibling } = await family();
    assert.equal((await revoke(vault, bearer(a))).status, 204);
    for (const [name, t] of [
      ['a', a],
      ['b', b],
      ['c', c],
    ] as const)
      assertError(await self(vault, t), 401, 'unauthenticated', name);
    assertError(
      await request(vault.app).get('/v1/secrets/app/x').set(bearer(c)),
      401,
      'unauthenticated',
      'grandchild reads',
    );
    assert.equal((await self(vault, sibling)).status, 200);
    assert.equal((await self(vault, maker)).status, 200);
    assert.equal((await revoke(vault, vault.auth, { token: a })).status, 204, 'again, by an admin');
    assert.equal(
      (await revoke(vault, vault.auth, { token: c })).status,
      204,
      'a child already revoked with its parent',
    );
    assertError(await revoke(vault, bearer(b)), 401, 'unauthenticated', 'a revoked child cannot act');
  });

  it('an admin revoking a middle token kills its subtree only', async () => {
    const { a, b, c } = await family();
    assert.equal((await revoke(vault, vault.auth, { token: b })).status, 204);
    assertError(await self(vault, b), 401, 'unauthenticated');
    assertError(await self(vault, c), 401, 'unauthenticated');
    assert.equal((await self(vault, a)).status, 200);
  });

  it('a child minted while its parent is being revoked never outlives it (the race is closed)', async () => {
    for (let i = 0; i < 20; i++) {
      const parent = await mint(vault, bearer(maker), {
        identity: `svc:racer-${i}`,
        policies: ['token-maker', 'app-read'],
      });
      const [, made] = await Promise.all([
        revoke(vault, bearer(parent)),
        create(vault, bearer(parent), { identity: `svc:racer-child-${i}` }),
      ]);
      if (made.status === 200)
        assertError(await self(vault, made.body.token), 401, 'unauthenticated', `child ${i} of a revoked parent`);
      else assertError(made, 401, 'unauthenticated', `mint ${i}`);
    }
  });

  it('an orphan needs admin on sys/auth/token/create-orphan and survives its minter', async () => {
    const orphan = await mint(vault, bearer(maker), { identity: 'svc:orphan', policies: ['app-read'], orphan: true });
    assert.equal(claimsOf(orphan).parent, undefined);
    const other = await mint(vault, vault.auth, {
      identity: 'svc:other-maker',
      policies: ['token-maker', 'orphan-maker'],
    });
    const orphan2 = await mint(vault, bearer(other), { identity: 'svc:orphan2', orphan: true });
    assert.equal((await revoke(vault, bearer(other))).status, 204);
    assert.equal((await self(vault, orphan2)).status, 200);
    assert.equal((await self(vault, orphan)).status, 200);
  });
});

describe("token tree and renewals survive a restart and reach a replica's reload", () => {
  let vault: TestVault;
  const start = Math.floor(Date.now() / 1000) * 1000;
  let clock = start;
  before(async () => {
    vault = await openVault({ ...kek, now: () => clock });
    await setup(vault);
  });
  after(() => vault.cleanup());

  it('a parent revoked after a restart still takes its children and grandchildren; a renewal made before it still counts', async () => {
    const a = await mint(vault, vault.auth, {
      identity: 'svc:a',
      policies: ['token-maker', 'app-read'],
      ttl: '1h',
      max_ttl: '4h',
    });
    const b = await mint(vault, bearer(a), { identity: 'svc:b', policies: ['token-maker', 'app-read'] });
    const c = await mint(vault, bearer(b), { identity: 'svc:c', policies: ['app-read'] });
    const kept = await mint(vault, vault.auth, { identity: 'svc:kept', ttl: '1h', max_ttl: '4h' });
    clock = start + 1_800_000;
    assert.equal((await renew(vault, kept)).status, 200);
    const { dir, rootToken } = vault;
    await vault.cleanup(true);
    vault = await openVault({ ...kek, dir, init: false, now: () => clock });
    await vault.seal.autoUnsealNow();
    vault.auth = { Authorization: `Bearer ${rootToken}` };
    assert.equal((await self(vault, c)).status, 200, 'the grandchild works after the restart');
    assert.equal((await revoke(vault, bearer(a))).status, 204);
    assertError(await self(vault, b), 401, 'unauthenticated', 'child after restart');
    assertError(await self(vault, c), 401, 'unauthenticated', 'grandchild after restart');
    clock = start + 3_900_000; // past kept's original hour, within its renewal
    assert.equal((await self(vault, kept)).status, 200, 'the renewal record was loaded');
    assert.equal(Date.parse((await self(vault, kept)).body.expires_at), start + 1_800_000 + 3_600_000);
  });

  it('another TokenService over the same store sees revocations and renewals on reload (the replica path)', async () => {
    const replica = new TokenService(vault.barrier, vault.seal, { now: () => clock });
    clock = start;
    await vault.seal.seal();
    await vault.seal.autoUnsealNow();
    const parent = await mint(
      vault,
      bearer(await mint(vault, vault.auth, { identity: 'svc:p0', policies: ['token-maker'], ttl: '3h' })),
      { identity: 'svc:p', policies: ['token-maker'], ttl: '1h', max_ttl: '2h' },
    );
    const child = await mint(vault, bearer(parent), { identity: 'svc:q', ttl: '10m' });
    assert.ok(await replica.verify(child));
    clock = start + 1_000_000;
    assert.equal((await renew(vault, parent)).status, 200);
    await replica.reload();
    clock = start + 3_700_000;
    assert.ok(await replica.verify(parent), 'the replica honours the renewal');
    clock = start + 60_000;
    assert.equal((await revoke(vault, bearer(parent))).status, 204);
    await replica.reload();
    assert.equal(await replica.verify(parent), undefined);
    assert.equal(await replica.verify(child), undefined, 'the child dies on the replica too');
  });
});

describe('renew extends the same token in place (issue 10 item 3, B6)', () => {
  let vault: TestVault;
  const start = Math.floor(Date.now() / 1000) * 1000;
  let clock = start;
  before(async () => {
    vault = await openVault({ now: () => clock });
    await setup(vault);
  });
  after(() => vault.cleanup());
  beforeEach(() => {
    clock = start;
  });

  it('returns the same token string with the new expires_at; self and the old string show the extension', async () => {
    const t = await mint(vault, vault.auth, { identity: 'svc:r', policies: ['app-read'], ttl: 60, max_ttl: 600 });
    assert.equal((await self(vault, t)).status, 200, 'verified and cached');
    clock = start + 30_000;
    const res = await renew(vault, t);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.token, t, 'the same token, not a fork');
    assert.equal(res.body.expires_at, new Date(start + 90_000).toISOString());
    clock = start + 75_000; // past the original 60 s
    const me = await self(vault, t);
    assert.equal(me.status, 200);
    assert.equal(me.body.expires_at, new Date(start + 90_000).toISOString());
    assert.equal((await request(vault.app).get('/v1/secrets/app/x').set(bearer(t))).status, 200);
    clock = start + 90_000;
    assertError(await self(vault, t), 401, 'unauthenticated', 'at the renewed expiry');
  });

  it('the JWT exp is the hard bound (max TTL); a claim carries the initial expiry', async () => {
    const t = await mint(vault, vault.auth, { identity: 'svc:claims', ttl: 60, max_ttl: 600 });
    const claims = claimsOf(t);
    assert.equal(claims.exp, start / 1000 + 600);
    assert.equal(claims.ttl_exp, start / 1000 + 60);
    assert.equal((await self(vault, t)).body.expires_at, new Date(start + 60_000).toISOString());
  });

  it('revoking a renewed token kills it: nothing was laundered', async () => {
    const t = await mint(vault, vault.auth, { identity: 'svc:stolen', policies: ['app-read'], ttl: 60, max_ttl: 600 });
    clock = start + 10_000;
    const renewed = await renew(vault, t);
    assert.equal(renewed.status, 200);
    assert.equal((await revoke(vault, vault.auth, { token: t })).status, 204);
    assertError(await self(vault, renewed.body.token), 401, 'unauthenticated');
    assertError(await renew(vault, t), 401, 'unauthenticated', 'renew of a revoked token');
  });

  it('renewing under a moving clock never passes max TTL, is refused at max, and the token dies at max (CVE-2021-32923)', async () => {
    const t = await mint(vault, vault.auth, { identity: 'svc:chain', ttl: 60, max_ttl: 150 });
    const maxExp = start + 150_000;
    let previous = start + 60_000;
    let refusedAtMax = false;
    for (clock = start + 7_000; clock < maxExp; clock += 7_000) {
      const res = await renew(vault, t);
      if (previous === maxExp) {
        assertError(res, 403, 'forbidden', `renew at max, +${(clock - start) / 1000}s`);
        assert.match(res.body.error.message, /maximum lifetime/);
        refusedAtMax = true;
        continue;
      }
      assert.equal(res.status, 200, `+${(clock - start) / 1000}s ${JSON.stringify(res.body)}`);
      assert.equal(res.body.token, t);
      const exp = Date.parse(res.body.expires_at);
      assert.ok(
        exp <= maxExp && exp >= previous && exp > clock,
        `+${(clock - start) / 1000}s → +${(exp - start) / 1000}s`,
      );
      previous = exp;
    }
    assert.ok(refusedAtMax, 'a renewal at max was refused');
    clock = maxExp - 1_000;
    assert.equal((await self(vault, t)).status, 200);
    clock = maxExp;
    assertError(await self(vault, t), 401, 'unauthenticated', 'at max');
    assertError(await renew(vault, t), 401, 'unauthenticated', 'renew at max');
    for (const jump of [365 * 86_400_000, 10_000, 1]) {
      clock = maxExp + jump;
      assertError(await renew(vault, t), 401, 'unauthenticated', `+${jump} ms past max`);
      assertError(await self(vault, t), 401, 'unauthenticated', `+${jump} ms past max`);
    }
  });

  it('renew right after renew does not shorten the lifetime', async () => {
    const t = await mint(vault, vault.auth, { identity: 'svc:twice', ttl: 60, max_ttl: 600 });
    clock = start + 50_000;
    assert.equal((await renew(vault, t)).body.expires_at, new Date(start + 110_000).toISOString());
    clock = start + 20_000; // the clock goes back
    const again = await renew(vault, t);
    assert.equal(again.status, 200);
    assert.equal(again.body.expires_at, new Date(start + 110_000).toISOString());
  });
});

import assert from 'node:assert/strict';
import { createHmac, type KeyObject } from 'node:crypto';
import request from 'supertest';
import { SignJWT, createLocalJWKSet, jwtVerify, type JWK, type JWTHeaderParameters } from 'jose';
import { openVault, type TestVault } from '../../helpers.js';

/**
 * Coffer-issued tokens (SECURITY-CASES B): issue, self, lifetime and renewal against an injected
 * clock, revocation (also across a restart), forged, edited and foreign tokens, the public JWKS,
 * and the sealed gate. Driven through HTTP, with the TokenService reached only to sign test
 * tokens with the vault's own key (to show that type, issuer and audience are pinned).
 */

type Headers = Record<string, string>;
const bearer = (token: string): Headers => ({ Authorization: `Bearer ${token}` });
const b64json = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString()) as Record<string, unknown>;
const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
const parts = (token: string) => {
  const [header, payload, signature] = token.split('.');
  return { header: header!, payload: payload!, signature: signature! };
};

function assertError(res: request.Response, status: number, code: string, what = ''): void {
  assert.equal(res.status, status, `${what} expected ${status} ${code}, got ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body?.error?.code, code, `${what} ${JSON.stringify(res.body)}`);
}

const self = (vault: TestVault, token: string) => request(vault.app).get('/v1/auth/token/self').set(bearer(token));

async function createToken(
  vault: TestVault,
  body: object,
  auth: Headers = vault.auth,
): Promise<{ token: string; body: Record<string, unknown> }> {
  const res = await request(vault.app).post('/v1/auth/token/create').set(auth).send(body);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return { token: res.body.token as string, body: res.body };
}

/** The vault's current signing key (private), to sign tokens that differ in one pinned field. */
function signingKey(vault: TestVault): { kid: string; privateKey: KeyObject } {
  const current = (vault.access.tokens as unknown as { current?: { kid: string; privateKey: KeyObject } }).current;
  assert.ok(current, 'the vault has a current signing key');
  return current;
}

async function signWithVaultKey(
  vault: TestVault,
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
): Promise<string> {
  const key = signingKey(vault);
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, ...header } as JWTHeaderParameters)
    .sign(key.privateKey);
}

describe('tokens: root token, token/create and token/self', () => {
  let vault: TestVault;
  let clock = Math.floor(Date.now() / 1000) * 1000;
  before(async () => {
    vault = await openVault({ now: () => clock });
    await request(vault.app)
      .put('/v1/policies/app-read')
      .set(vault.auth)
      .send({ rules: [{ path: 'app/*', capabilities: ['read'] }] });
    await request(vault.app)
      .put('/v1/secrets/app/x')
      .set(vault.auth)
      .send({ data: { v: '1' } });
  });
  after(() => vault.cleanup());

  it('the root token from init authenticates as root, with no groups or policies, for ten years', async () => {
    const res = await self(vault, vault.rootToken);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.identity, 'root');
    assert.deepEqual(res.body.groups, []);
    assert.deepEqual(res.body.policies, []);
    const years = (Date.parse(res.body.expires_at) - clock) / (365 * 86_400_000);
    assert.ok(years > 9.9 && years <= 10, `root token lives ${years} years`);
    assert.equal(res.body.jti, b64json(parts(vault.rootToken).payload).jti);
  });

  it('the root token reads and writes any secret and manages policies', async () => {
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/anything/deep/x')
          .set(vault.auth)
          .send({ data: { a: 'b' } })
      ).status,
      200,
    );
    assert.equal((await request(vault.app).get('/v1/secrets/anything/deep/x').set(vault.auth)).status, 200);
    assert.equal((await request(vault.app).get('/v1/policies').set(vault.auth)).status, 200);
  });

  it('token/create issues a token with the given identity, groups, policies and a "10m" TTL', async () => {
    const { token, body } = await createToken(vault, {
      identity: 'svc:deployer',
      groups: ['ci'],
      policies: ['app-read'],
      ttl: '10m',
    });
    assert.deepEqual(Object.keys(body).sort(), ['expires_at', 'groups', 'identity', 'policies', 'token']);
    assert.equal(body.identity, 'svc:deployer');
    assert.deepEqual(body.groups, ['ci']);
    assert.deepEqual(body.policies, ['app-read']);
    assert.equal(body.expires_at, new Date(clock + 600_000).toISOString());

    const res = await self(vault, token);
    assert.equal(res.status, 200);
    assert.equal(res.body.identity, 'svc:deployer');
    assert.deepEqual(res.body.groups, ['ci']);
    assert.deepEqual(res.body.policies, ['app-read']);
    assert.equal(res.body.expires_at, new Date(clock + 600_000).toISOString());
    const claims = b64json(parts(token).payload);
    assert.equal(res.body.jti, claims.jti);
    assert.match(res.body.jti, /^[A-Za-z0-9_-]{16,64}$/);
    assert.equal(
      (await request(vault.app).get('/v1/secrets/app/x').set(bearer(token))).status,
      200,
      'the policy applies',
    );
  });

  it('issued tokens are EdDSA JWTs of type coffer+jwt with sub, groups, iat, exp, jti, iss and aud', async () => {
    const { token } = await createToken(vault, { identity: 'svc:claims', ttl: 600 });
    const header = b64json(parts(token).header);
    assert.equal(header.alg, 'EdDSA');
    assert.equal(header.typ, 'coffer+jwt');
    assert.equal(typeof header.kid, 'string');
    const claims = b64json(parts(token).payload);
    assert.equal(claims.sub, 'svc:claims');
    assert.equal(claims.iat, clock / 1000);
    assert.equal(claims.exp, clock / 1000 + 600);
    assert.match(String(claims.iss), /^coffer:/);
    assert.equal(claims.aud, claims.iss, 'audience is this cluster');
    assert.equal(claims.root, undefined, 'created tokens are never root');
  });

  it('an issued token is known without checking its signature again, and the published key verifies it', async () => {
    // issue() puts what it signed into the verify cache instead of verifying its own signature:
    // the answer for the token must be the same when the cache is cold and the token checked in full.
    const { token } = await createToken(vault, { identity: 'svc:cold', groups: ['team'], ttl: 600 });
    const warm = await self(vault, token).expect(200);
    (vault.access.tokens as unknown as { verified: Map<string, unknown> }).verified.clear();
    const cold = await self(vault, token).expect(200);
    assert.deepEqual(cold.body, warm.body);
    assert.equal(warm.body.identity, 'svc:cold');
    const jwks = await request(vault.app).get('/v1/auth/jwks').expect(200);
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks.body as { keys: JWK[] }), {
      algorithms: ['EdDSA'],
      currentDate: new Date(clock),
    });
    assert.equal(payload.sub, 'svc:cold');
  });
  it('token/create takes the TTL in seconds (600) too, and defaults to one hour', async () => {
    assert.equal(
      (await createToken(vault, { identity: 'svc:a', ttl: 600 })).body.expires_at,
      new Date(clock + 600_000).toISOString(),
    );
    assert.equal(
      (await createToken(vault, { identity: 'svc:a' })).body.expires_at,
      new Date(clock + 3_600_000).toISOString(),
    );
    assert.equal(
      (await createToken(vault, { identity: 'svc:a', ttl: '2h' })).body.expires_at,
      new Date(clock + 7_200_000).toISOString(),
    );
  });

  it('every token gets its own jti', async () => {
    const jtis = new Set<unknown>();
    for (let i = 0; i < 5; i++)
      jtis.add(b64json(parts((await createToken(vault, { identity: 'svc:same' })).token).payload).jti);
    assert.equal(jtis.size, 5);
  });

  it('token/create refuses bad TTLs, unknown fields, bad identities and reserved or malformed names with 400', async () => {
    for (const body of [
      { identity: 'svc:a', ttl: 0 },
      { identity: 'svc:a', ttl: -1 },
      { identity: 'svc:a', ttl: 1.5 },
      { identity: 'svc:a', ttl: '10x' },
      { identity: 'svc:a', ttl: '0m' },
      { identity: 'svc:a', ttl: '400d' },
      { identity: 'svc:a', ttl: '' },
      { identity: 'svc:a', ttl: '-5' },
      { identity: 'svc:a', root: true },
      { identity: 'svc:a', groups: 'ci' },
      { identity: 'svc:a', policies: ['root'] },
      { identity: 'svc:a', policies: ['default'] },
      { identity: 'svc:a', policies: ['Root'] },
      { identity: 'svc:a', policies: [' root'] },
      { identity: 'svc:a', policies: ['root\u200b'] },
      { identity: 'svc:a', groups: ['admin-root'] },
      { identity: 'svc a' },
      { identity: '' },
      { groups: ['ci'] },
    ]) {
      assertError(
        await request(vault.app).post('/v1/auth/token/create').set(vault.auth).send(body),
        400,
        'invalid_request',
        JSON.stringify(body),
      );
    }
  });

  it('token/create needs admin: a token without it gets 403 and no token', async () => {
    const { token } = await createToken(vault, { identity: 'svc:reader', policies: ['app-read'] });
    const res = await request(vault.app)
      .post('/v1/auth/token/create')
      .set(bearer(token))
      .send({ identity: 'svc:escalated', policies: ['app-read'] });
    assertError(res, 403, 'forbidden');
    assert.equal(res.body.token, undefined);
  });

  it('a non-root token holding admin on sys/auth/token/create may create tokens', async () => {
    await request(vault.app)
      .put('/v1/policies/token-maker')
      .set(vault.auth)
      .send({ rules: [{ path: 'sys/auth/token/create', capabilities: ['admin'] }] });
    const { token } = await createToken(vault, { identity: 'svc:maker', policies: ['token-maker'] });
    const made = await createToken(vault, { identity: 'svc:made' }, bearer(token));
    assert.equal((await self(vault, made.token)).body.identity, 'svc:made');
  });

  it('accepts the token in X-Vault-Token too, and refuses two different tokens at once with 400 (B9)', async () => {
    const { token } = await createToken(vault, { identity: 'svc:hdr' });
    const viaVault = await request(vault.app).get('/v1/auth/token/self').set({ 'X-Vault-Token': token });
    assert.equal(viaVault.status, 200);
    assert.equal(viaVault.body.identity, 'svc:hdr');
    const both = await request(vault.app)
      .get('/v1/auth/token/self')
      .set({ ...bearer(token), 'X-Vault-Token': vault.rootToken });
    assertError(both, 400, 'invalid_request');
    const same = await request(vault.app)
      .get('/v1/auth/token/self')
      .set({ ...bearer(token), 'X-Vault-Token': token });
    assert.equal(same.status, 200);
  });

  it('ignores a token in the query string or a cookie: 401 (B8)', async () => {
    const { token } = await createToken(vault, { identity: 'svc:query', policies: ['app-read'] });
    for (const name of ['token', 'access_token', 'X-Vault-Token', 'auth']) {
      assertError(await request(vault.app).get(`/v1/auth/token/self?${name}=${token}`), 401, 'unauthenticated', name);
    }
    assertError(
      await request(vault.app).get('/v1/auth/token/self').set('Cookie', `token=${token}`),
      401,
      'unauthenticated',
      'cookie',
    );
    assertError(
      await request(vault.app).get('/v1/auth/token/self').set('Cookie', `X-Vault-Token=${token}`),
      401,
      'unauthenticated',
      'cookie',
    );
  });

  it('refuses malformed Authorization headers with 400 and a missing token with 401', async () => {
    assertError(
      await request(vault.app).get('/v1/auth/token/self').set('Authorization', `Basic ${vault.rootToken}`),
      400,
      'invalid_request',
    );
    assertError(
      await request(vault.app).get('/v1/auth/token/self').set('Authorization', `Bearer  ${vault.rootToken}`),
      400,
      'invalid_request',
    );
    assertError(
      await request(vault.app)
        .get('/v1/auth/token/self')
        .set('Authorization', `Bearer ${'a'.repeat(9000)}`),
      400,
      'invalid_request',
    );
    assertError(await request(vault.app).get('/v1/auth/token/self'), 401, 'unauthenticated');
    assertError(
      await request(vault.app).get('/v1/auth/token/self').set('Authorization', 'Bearer not-a-token'),
      401,
      'unauthenticated',
    );
  });
});

describe('tokens: lifetime and renewal against an injected clock (B6)', () => {
  let vault: TestVault;
  const start = Math.floor(Date.now() / 1000) * 1000;
  let clock = start;
  before(async () => {
    vault = await openVault({ now: () => clock });
  });
  after(() => vault.cleanup());
  beforeEach(() => {
    clock = start;
  });

  it('a token works up to the last millisecond before exp and is refused from exp on', async () => {
    const used = (await createToken(vault, { identity: 'svc:ttl', ttl: 60 })).token;
    const fresh = (await createToken(vault, { identity: 'svc:ttl', ttl: 60 })).token;
    const late = (await createToken(vault, { identity: 'svc:ttl', ttl: 60 })).token;
    assert.equal((await self(vault, used)).status, 200, 'verified (and cached) at iat');
    clock = start + 59_999;
    assert.equal((await self(vault, used)).status, 200, 'cached token at exp - 1 ms');
    assert.equal((await self(vault, fresh)).status, 200, 'first use at exp - 1 ms');
    clock = start + 60_000;
    assertError(await self(vault, used), 401, 'unauthenticated', 'cached token at exp');
    assertError(await self(vault, late), 401, 'unauthenticated', 'first use at exp');
    clock = start + 61_000;
    assertError(await self(vault, fresh), 401, 'unauthenticated', 'exp + 1 s');
    assertError(await request(vault.app).get('/v1/secrets?prefix=app').set(bearer(used)), 401, 'unauthenticated');
  });

  it('validity is decided against the current clock on every use: a clock set back before exp accepts the token again (G8)', async () => {
    const { token } = await createToken(vault, { identity: 'svc:jump', ttl: 60 });
    clock = start + 3_600_000;
    assertError(await self(vault, token), 401, 'unauthenticated');
    clock = start + 30_000;
    assert.equal((await self(vault, token)).status, 200);
  });

  it('renewal gives expires_at = now + TTL, capped at max_ttl, keeps identity and groups, and returns the same token (issue 10)', async () => {
    const { token } = await createToken(vault, { identity: 'svc:renew', groups: ['ci'], ttl: 60, max_ttl: 150 });
    clock = start + 30_000;
    const res = await request(vault.app).post('/v1/auth/token/renew').set(bearer(token)).send({});
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(Object.keys(res.body).sort(), ['expires_at', 'groups', 'identity', 'policies', 'token']);
    assert.equal(res.body.expires_at, new Date(start + 90_000).toISOString());
    assert.equal(res.body.identity, 'svc:renew');
    assert.deepEqual(res.body.groups, ['ci']);
    assert.equal(res.body.token, token, 'renew extends the token in place, it never forks a second one');
    const renewedSelf = await self(vault, res.body.token);
    assert.equal(renewedSelf.body.identity, 'svc:renew');
    assert.equal(renewedSelf.body.expires_at, new Date(start + 90_000).toISOString());
  });

  it('renewing again and again while the clock advances never passes max_ttl, is refused once there, and the token dies at max_ttl', async () => {
    const maxExp = start + 150_000;
    const token = (await createToken(vault, { identity: 'svc:chain', ttl: 60, max_ttl: '150s' })).token;
    let previous = start + 60_000;
    let renewals = 0;
    for (clock = start + 7_000; previous < maxExp; clock += 7_000) {
      const res = await request(vault.app).post('/v1/auth/token/renew').set(bearer(token)).send({});
      assert.equal(res.status, 200, `renewal at +${(clock - start) / 1000}s: ${JSON.stringify(res.body)}`);
      const exp = Date.parse(res.body.expires_at);
      assert.ok(
        exp <= maxExp,
        `renewal at +${(clock - start) / 1000}s expires at +${(exp - start) / 1000}s, past max_ttl`,
      );
      assert.ok(exp >= previous, 'a renewal never shortens the lifetime');
      assert.ok(exp > clock, 'a renewed token is alive when handed out');
      assert.equal(res.body.token, token);
      previous = exp;
      renewals++;
    }
    assert.ok(renewals >= 12);
    assert.equal(previous, maxExp, 'the last renewal is capped exactly at max_ttl');
    clock = maxExp - 1_000;
    assertError(
      await request(vault.app).post('/v1/auth/token/renew').set(bearer(token)).send({}),
      403,
      'forbidden',
      'renewal at max_ttl - 1 s',
    );
    assert.equal((await self(vault, token)).status, 200, 'still alive at max_ttl - 1 s');
    clock = maxExp;
    assertError(await self(vault, token), 401, 'unauthenticated', 'at max_ttl');
    assertError(
      await request(vault.app).post('/v1/auth/token/renew').set(bearer(token)).send({}),
      401,
      'unauthenticated',
      'renew at max_ttl',
    );
    clock = maxExp + 365 * 86_400_000;
    assertError(await self(vault, token), 401, 'unauthenticated', 'a year later');
  });

  it('renewal takes no parameters: asking for a longer TTL is refused with 400', async () => {
    const { token } = await createToken(vault, { identity: 'svc:greedy', ttl: 60, max_ttl: 120 });
    for (const body of [{ ttl: 999_999 }, { ttl: '1y' }, { max_ttl: 999_999 }, { increment: 3600 }]) {
      assertError(
        await request(vault.app).post('/v1/auth/token/renew').set(bearer(token)).send(body),
        400,
        'invalid_request',
        JSON.stringify(body),
      );
    }
  });

  it('the root token cannot be renewed (400) and keeps working', async () => {
    assertError(await request(vault.app).post('/v1/auth/token/renew').set(vault.auth).send({}), 400, 'invalid_request');
    assert.equal((await self(vault, vault.rootToken)).status, 200);
  });

  it('an expired token cannot be renewed: 401', async () => {
    const { token } = await createToken(vault, { identity: 'svc:late', ttl: 60, max_ttl: 600 });
    clock = start + 60_000;
    assertError(
      await request(vault.app).post('/v1/auth/token/renew').set(bearer(token)).send({}),
      401,
      'unauthenticated',
    );
  });

  it('a revoked token cannot be renewed: 401', async () => {
    const { token } = await createToken(vault, { identity: 'svc:gone', ttl: 60, max_ttl: 600 });
    assert.equal((await request(vault.app).post('/v1/auth/token/revoke').set(bearer(token)).send({})).status, 204);
    assertError(
      await request(vault.app).post('/v1/auth/token/renew').set(bearer(token)).send({}),
      401,
      'unauthenticated',
    );
  });
});

describe('tokens: revocation (B11, B16)', () => {
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
    await request(vault.app)
      .put('/v1/policies/app-read')
      .set(vault.auth)
      .send({ rules: [{ path: 'app/*', capabilities: ['read'] }] });
    await request(vault.app)
      .put('/v1/secrets/app/x')
      .set(vault.auth)
      .send({ data: { v: '1' } });
  });
  after(() => vault.cleanup());

  const revoke = (auth: Headers, body: object = {}) =>
    request(vault.app).post('/v1/auth/token/revoke').set(auth).send(body);

  it("revoking one's own token answers 204 and every later request with it is 401", async () => {
    const { token } = await createToken(vault, { identity: 'svc:self', policies: ['app-read'] });
    assert.equal((await request(vault.app).get('/v1/secrets/app/x').set(bearer(token))).status, 200);
    assert.equal((await revoke(bearer(token))).status, 204);
    assertError(await request(vault.app).get('/v1/secrets/app/x').set(bearer(token)), 401, 'unauthenticated');
    assertError(await self(vault, token), 401, 'unauthenticated');
    assertError(
      await revoke(bearer(token)),
      401,
      'unauthenticated',
      'a revoked token cannot act, even to revoke itself',
    );
  });

  it('revocation is idempotent: an admin revoking an already revoked token gets 204 again', async () => {
    const { token } = await createToken(vault, { identity: 'svc:twice' });
    assert.equal((await revoke(vault.auth, { token })).status, 204);
    assert.equal((await revoke(vault.auth, { token })).status, 204);
    assertError(await self(vault, token), 401, 'unauthenticated');
  });

  it('revoking another token needs admin: a non-admin gets 403 and the target keeps working', async () => {
    const a = (await createToken(vault, { identity: 'svc:a', policies: ['app-read'] })).token;
    const b = (await createToken(vault, { identity: 'svc:b', policies: ['app-read'] })).token;
    assertError(await revoke(bearer(a), { token: b }), 403, 'forbidden');
    assert.equal((await request(vault.app).get('/v1/secrets/app/x').set(bearer(b))).status, 200);
    assert.equal((await self(vault, a)).status, 200, 'the refused caller is not revoked either');
  });

  it('a non-admin cannot revoke the root token', async () => {
    const a = (await createToken(vault, { identity: 'svc:rogue' })).token;
    assertError(await revoke(bearer(a), { token: vault.rootToken }), 403, 'forbidden');
    assert.equal((await self(vault, vault.rootToken)).status, 200);
  });

  it('an admin revokes another token by value; the admin keeps working', async () => {
    const target = (await createToken(vault, { identity: 'svc:target', policies: ['app-read'] })).token;
    assert.equal((await revoke(vault.auth, { token: target })).status, 204);
    assertError(await request(vault.app).get('/v1/secrets/app/x').set(bearer(target)), 401, 'unauthenticated');
    assert.equal((await self(vault, vault.rootToken)).status, 200);
  });

  it('a token with admin on sys/auth/token/revoke (not root) may revoke others', async () => {
    await request(vault.app)
      .put('/v1/policies/revoker')
      .set(vault.auth)
      .send({ rules: [{ path: 'sys/auth/token/revoke', capabilities: ['admin'] }] });
    const revoker = (await createToken(vault, { identity: 'svc:revoker', policies: ['revoker'] })).token;
    const target = (await createToken(vault, { identity: 'svc:target2' })).token;
    assert.equal((await revoke(bearer(revoker), { token: target })).status, 204);
    assertError(await self(vault, target), 401, 'unauthenticated');
  });

  it('revoking a token that is not valid anyway is a 204 no-op for an admin', async () => {
    assert.equal((await revoke(vault.auth, { token: 'garbage' })).status, 204);
    assert.equal((await self(vault, vault.rootToken)).status, 200);
  });

  it('revoke refuses unknown fields and an empty token with 400', async () => {
    assertError(await revoke(vault.auth, { jti: 'x' }), 400, 'invalid_request');
    assertError(await revoke(vault.auth, { token: '' }), 400, 'invalid_request');
  });

  it('a revoked token stays revoked after seal and unseal', async () => {
    const revoked = (await createToken(vault, { identity: 'svc:sealed' })).token;
    const kept = (await createToken(vault, { identity: 'svc:kept' })).token;
    assert.equal((await revoke(bearer(revoked))).status, 204);
    await vault.seal.seal();
    for (const share of vault.shares.slice(0, 3)) await vault.seal.submitShare(share);
    assert.equal(vault.seal.sealed, false);
    assertError(await self(vault, revoked), 401, 'unauthenticated');
    assert.equal((await self(vault, kept)).status, 200);
  });
});

describe('tokens: revocation survives a restart', () => {
  const kek = {
    source: { kind: 'env' as const, variable: 'COFFER_TEST_KEK' },
    env: { COFFER_TEST_KEK: Buffer.alloc(32, 0x42).toString('base64') },
  };
  let vault: TestVault;
  before(async () => {
    vault = await openVault(kek);
  });
  after(() => vault.cleanup());

  it('a token revoked before a restart is refused after it; other tokens and the root token still work', async () => {
    const revoked = (await createToken(vault, { identity: 'svc:old' })).token;
    const kept = (await createToken(vault, { identity: 'svc:kept' })).token;
    const adminRevoked = (await createToken(vault, { identity: 'svc:admin-revoked' })).token;
    assert.equal((await request(vault.app).post('/v1/auth/token/revoke').set(bearer(revoked)).send({})).status, 204);
    assert.equal(
      (await request(vault.app).post('/v1/auth/token/revoke').set(vault.auth).send({ token: adminRevoked })).status,
      204,
    );
    const { dir, rootToken } = vault;
    await vault.cleanup(true);
    vault = await openVault({ ...kek, dir, init: false });
    await vault.seal.autoUnsealNow();
    assertError(await self(vault, revoked), 401, 'unauthenticated', 'self-revoked');
    assertError(await self(vault, adminRevoked), 401, 'unauthenticated', 'admin-revoked');
    assert.equal((await self(vault, kept)).status, 200);
    assert.equal((await self(vault, rootToken)).status, 200);
  });
});

describe('tokens: edited, forged and foreign tokens (B1, B15, RFC 8725)', () => {
  let vault: TestVault;
  let other: TestVault;
  let token = '';
  let claims: Record<string, unknown> = {};
  before(async () => {
    [vault, other] = await Promise.all([openVault(), openVault()]);
    await request(vault.app)
      .put('/v1/policies/app-read')
      .set(vault.auth)
      .send({ rules: [{ path: 'app/*', capabilities: ['read'] }] });
    await request(vault.app)
      .put('/v1/secrets/app/x')
      .set(vault.auth)
      .send({ data: { v: '1' } });
    await request(vault.app)
      .put('/v1/secrets/prod/db')
      .set(vault.auth)
      .send({ data: { v: 'prod' } });
    token = (await createToken(vault, { identity: 'svc:victim', policies: ['app-read'], ttl: 600 })).token;
    claims = b64json(parts(token).payload);
  });
  after(async () => {
    await vault.cleanup();
    await other.cleanup();
  });

  const use = (t: string) => request(vault.app).get('/v1/secrets/prod/db').set(bearer(t));

  it('the unedited token works (control)', async () => {
    assert.equal((await self(vault, token)).status, 200);
    assertError(await use(token), 403, 'forbidden');
  });

  it('a payload edited with the original signature is 401 (root, sub, groups, policies, exp, ttl_exp, parent, jti)', async () => {
    const { header, signature } = parts(token);
    const exp = claims.exp as number;
    for (const edit of [
      { root: true },
      { sub: 'root' },
      { groups: ['admin'] },
      { policies: ['app-read', 'admin'] },
      { exp: exp + 365 * 86_400, max_exp: exp + 365 * 86_400 },
      { max_exp: exp + 365 * 86_400 },
      { ttl_exp: exp - 1 },
      { parent: undefined },
      { parent: 'AAAAAAAAAAAAAAAAAAAAAA' },
      { jti: 'AAAAAAAAAAAAAAAAAAAAAA' },
    ]) {
      const forged = `${header}.${encode({ ...claims, ...edit })}.${signature}`;
      assertError(await use(forged), 401, 'unauthenticated', JSON.stringify(edit));
      assertError(await self(vault, forged), 401, 'unauthenticated', JSON.stringify(edit));
    }
  });

  it('a flipped signature bit, an edited header, a truncated or extended token are 401', async () => {
    const { header, payload, signature } = parts(token);
    const sig = Buffer.from(signature, 'base64url');
    sig[10] = sig[10]! ^ 1;
    const hdr = b64json(header);
    for (const forged of [
      `${header}.${payload}.${sig.toString('base64url')}`,
      `${encode({ ...hdr, kid: 'other' })}.${payload}.${signature}`,
      `${encode({ ...hdr, extra: 1 })}.${payload}.${signature}`,
      `${header}.${payload}.`,
      `${header}.${payload}`,
      `${header}.${payload}.${signature}.${signature}`,
      `${header}.${payload}.${signature.slice(0, -2)}`,
      token.slice(1),
    ]) {
      assertError(await self(vault, forged), 401, 'unauthenticated', forged.slice(0, 40));
    }
  });

  it('an `alg: none` token carrying our claims is 401, with or without a signature part', async () => {
    const { payload, signature } = parts(token);
    const kid = b64json(parts(token).header).kid;
    for (const header of [
      { alg: 'none', typ: 'coffer+jwt', kid },
      { alg: 'none' },
      { alg: 'None', typ: 'coffer+jwt' },
      { alg: 'NONE', typ: 'coffer+jwt', kid },
    ]) {
      const body = encode({ ...claims, root: true, sub: 'root' });
      for (const forged of [
        `${encode(header)}.${body}.`,
        `${encode(header)}.${body}`,
        `${encode(header)}.${body}.${signature}`,
        `${encode(header)}.${payload}.`,
      ]) {
        assertError(await use(forged), 401, 'unauthenticated', JSON.stringify(header));
      }
    }
  });

  it('an HS256 token keyed with the published public key is 401 (no algorithm confusion)', async () => {
    const jwk = (await request(vault.app).get('/v1/auth/jwks')).body.keys[0] as JWK;
    const header = encode({ alg: 'HS256', typ: 'coffer+jwt', kid: jwk.kid });
    const body = encode({ ...claims, root: true });
    for (const secret of [Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.x!), Buffer.from(JSON.stringify(jwk))]) {
      const mac = createHmac('sha256', secret).update(`${header}.${body}`).digest('base64url');
      assertError(await use(`${header}.${body}.${mac}`), 401, 'unauthenticated');
    }
  });

  it("a token signed with the vault's own key is accepted only with typ coffer+jwt, our issuer and audience, and ttl_exp within exp", async () => {
    const good = { typ: 'coffer+jwt' };
    const now = Math.floor(Date.now() / 1000);
    const base = { ...claims, iat: now, exp: now + 600, ttl_exp: now + 300, jti: 'forged-jti-0000000000' };
    // A token signed before renew-in-place (soft exp, max_exp) still verifies.
    const legacy = {
      ...claims,
      iat: now,
      exp: now + 600,
      max_exp: now + 900,
      ttl_exp: undefined,
      parent: undefined,
      jti: 'legacy-jti-0000000000',
    };
    assert.equal(
      (
        await self(
          vault,
          await signWithVaultKey(
            vault,
            good,
            Object.fromEntries(Object.entries(legacy).filter(([, v]) => v !== undefined)),
          ),
        )
      ).status,
      200,
      'legacy token',
    );
    // Control: the helper signs what the vault would sign, so the refusals below are due to the one change.
    assert.equal((await self(vault, await signWithVaultKey(vault, good, base))).status, 200, 'control token');

    const cases: [string, Record<string, unknown>, Record<string, unknown>][] = [
      ['typ JWT', { typ: 'JWT' }, base],
      ['no typ', {}, base],
      ['typ of a CI token', { typ: 'at+jwt' }, base],
      ['other issuer', good, { ...base, iss: 'coffer:00000000-0000-0000-0000-000000000000' }],
      ['other audience', good, { ...base, aud: 'someone-else' }],
      ['audience list without us', good, { ...base, aud: ['someone-else'] }],
      ['no audience', good, { ...base, aud: undefined }],
      ['no issuer', good, { ...base, iss: undefined }],
      ['exp past max_exp (legacy)', good, { ...base, max_exp: now + 500 }],
      ['ttl_exp past exp', good, { ...base, ttl_exp: now + 700 }],
      ['float ttl_exp', good, { ...base, ttl_exp: now + 300.5 }],
      ['malformed parent', good, { ...base, parent: 'x' }],
      ['no exp', good, { ...base, exp: undefined }],
      ['float exp', good, { ...base, exp: now + 600.5 }],
      ['string exp', good, { ...base, exp: String(now + 600) }],
      ['expired', good, { ...base, iat: now - 100, exp: now - 1 }],
      ['no jti', good, { ...base, jti: undefined }],
      ['short jti', good, { ...base, jti: 'x' }],
      ['no sub', good, { ...base, sub: undefined }],
      ['groups not a list', good, { ...base, groups: 'admin' }],
      ['nbf in the future', good, { ...base, nbf: now + 300 }],
    ];
    for (const [what, header, payload] of cases) {
      const clean = Object.fromEntries(Object.entries(payload).filter(([, v]) => v !== undefined));
      assertError(await self(vault, await signWithVaultKey(vault, header, clean)), 401, 'unauthenticated', what);
    }
  });

  it('tokens of another vault are 401 here, and ours are 401 there (B15)', async () => {
    const theirs = (await createToken(other, { identity: 'svc:victim', policies: ['app-read'] })).token;
    assertError(await self(vault, other.rootToken), 401, 'unauthenticated', 'their root token');
    assertError(await use(other.rootToken), 401, 'unauthenticated', 'their root token on a secret');
    assertError(await self(vault, theirs), 401, 'unauthenticated', 'their created token');
    assertError(await self(other, vault.rootToken), 401, 'unauthenticated', 'our root token there');
    assertError(await self(other, token), 401, 'unauthenticated', 'our token there');
  });

  it("a token re-signed by another vault's key under our kid and issuer is 401", async () => {
    const ours = b64json(parts(token).header);
    const key = signingKey(other);
    const forged = await new SignJWT({ ...claims, root: true })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'coffer+jwt', kid: ours.kid as string })
      .sign(key.privateKey);
    assertError(await use(forged), 401, 'unauthenticated');
  });
});

describe('tokens: the public JWKS', () => {
  let vault: TestVault;
  let other: TestVault;
  before(async () => {
    [vault, other] = await Promise.all([openVault(), openVault()]);
  });
  after(async () => {
    await vault.cleanup();
    await other.cleanup();
  });

  it('GET /v1/auth/jwks answers without a token with one Ed25519 public key: kid, alg EdDSA, use sig, and no private part', async () => {
    const res = await request(vault.app).get('/v1/auth/jwks');
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type']!, /application\/json/);
    assert.equal(res.body.keys.length, 1);
    const [key] = res.body.keys as JWK[];
    assert.equal(key!.kty, 'OKP');
    assert.equal(key!.crv, 'Ed25519');
    assert.equal(key!.alg, 'EdDSA');
    assert.equal(key!.use, 'sig');
    assert.equal(typeof key!.kid, 'string');
    assert.equal(typeof key!.x, 'string');
    assert.equal(Buffer.from(key!.x!, 'base64url').length, 32);
    for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'])
      assert.equal(key![secret as keyof JWK], undefined, `JWKS holds "${secret}"`);
    assert.doesNotMatch(res.text, /"d"\s*:/);
  });

  it('the published kid is the kid in token headers', async () => {
    const kid = (await request(vault.app).get('/v1/auth/jwks')).body.keys[0].kid;
    assert.equal(b64json(parts(vault.rootToken).header).kid, kid);
    const created = (await createToken(vault, { identity: 'svc:kid' })).token;
    assert.equal(b64json(parts(created).header).kid, kid);
  });

  it('jose verifies a Coffer token against the published JWKS, with algorithm and type pinned', async () => {
    const jwks = createLocalJWKSet((await request(vault.app).get('/v1/auth/jwks')).body);
    const created = (await createToken(vault, { identity: 'svc:verified', groups: ['ci'] })).token;
    const iss = b64json(parts(created).payload).iss as string;
    const { payload, protectedHeader } = await jwtVerify(created, jwks, {
      algorithms: ['EdDSA'],
      typ: 'coffer+jwt',
      issuer: iss,
      audience: iss,
    });
    assert.equal(payload.sub, 'svc:verified');
    assert.deepEqual(payload.groups, ['ci']);
    assert.equal(protectedHeader.alg, 'EdDSA');
    const root = await jwtVerify(vault.rootToken, jwks, { algorithms: ['EdDSA'], typ: 'coffer+jwt' });
    assert.equal(root.payload.sub, 'root');
  });

  it("another vault's JWKS does not verify our tokens", async () => {
    const theirs = createLocalJWKSet((await request(other.app).get('/v1/auth/jwks')).body);
    await assert.rejects(jwtVerify(vault.rootToken, theirs, { algorithms: ['EdDSA'] }));
  });
});

describe('tokens while sealed (B17)', () => {
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
  });
  after(() => vault.cleanup());

  it('while sealed every token gets 503 sealed, with the same body whether valid, revoked or garbage', async () => {
    const valid = (await createToken(vault, { identity: 'svc:valid' })).token;
    const revoked = (await createToken(vault, { identity: 'svc:revoked' })).token;
    assert.equal((await request(vault.app).post('/v1/auth/token/revoke').set(bearer(revoked)).send({})).status, 204);
    assert.equal((await request(vault.app).post('/v1/sys/seal').set(vault.auth).send({})).status, 204);

    const bodies: unknown[] = [];
    for (const t of [valid, vault.rootToken, revoked, 'garbage', `${valid.slice(0, -4)}AAAA`]) {
      for (const req of [
        () => request(vault.app).get('/v1/auth/token/self').set(bearer(t)),
        () => request(vault.app).post('/v1/auth/token/renew').set(bearer(t)).send({}),
        () => request(vault.app).post('/v1/auth/token/revoke').set(bearer(t)).send({}),
        () => request(vault.app).get('/v1/secrets/app/x').set(bearer(t)),
        () => request(vault.app).post('/v1/auth/token/create').set(bearer(t)).send({ identity: 'svc:x' }),
      ]) {
        const res = await req();
        assertError(res, 503, 'sealed');
        bodies.push({ ...res.body.error, request_id: undefined });
      }
    }
    assert.equal(
      new Set(bodies.map((b) => JSON.stringify(b))).size,
      1,
      'the sealed answer says nothing about the token',
    );
    assertError(await request(vault.app).get('/v1/auth/jwks'), 503, 'sealed');
  });

  it('after unseal the valid token works again and the sealed period revoked nothing', async () => {
    for (const share of vault.shares.slice(0, 3)) if (vault.seal.sealed) await vault.seal.submitShare(share);
    const valid = (await createToken(vault, { identity: 'svc:again' })).token;
    await vault.seal.seal();
    assertError(await self(vault, valid), 503, 'sealed');
    for (const share of vault.shares.slice(0, 3)) if (vault.seal.sealed) await vault.seal.submitShare(share);
    assert.equal(vault.seal.sealed, false);
    assert.equal((await self(vault, valid)).status, 200);
  });
});

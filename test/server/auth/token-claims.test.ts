import assert from 'node:assert/strict';
import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import { SignJWT, type JWTHeaderParameters } from 'jose';
import request from 'supertest';
import type { TokenService } from '../../../server/auth/tokens.js';
import { openVault, type TestVault } from '../../helpers.js';

/**
 * The bounds of a Coffer token's claims and of `TokenService.verify` (server/auth/tokens.ts,
 * SECURITY-CASES B1, B6, B7): tokens signed with the vault's real key whose claims are one step
 * outside a bound are refused, one step inside are accepted; the 8,192-character cap; the expiry
 * seconds of a cached token; and the verify cache, which stays bounded.
 */

const b64json = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString()) as Record<string, unknown>;

describe('token claims: bounds of a signed token', function () {
  this.timeout(60_000);
  let vault: TestVault;
  let tokens: TokenService;
  let key: { kid: string; privateKey: KeyObject };
  let base: Record<string, unknown> = {};
  const start = Math.floor(Date.now() / 1000) * 1000;
  let clock = start;
  const now = () => Math.floor(clock / 1000);

  before(async () => {
    vault = await openVault({ now: () => clock });
    tokens = vault.access.tokens;
    const current = (tokens as unknown as { current?: { kid: string; privateKey: KeyObject } }).current;
    assert.ok(current);
    key = current;
    const res = await request(vault.app)
      .post('/v1/auth/token/create')
      .set(vault.auth)
      .send({ identity: 'svc:claims', ttl: 600 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const issued = b64json((res.body.token as string).split('.')[1]!);
    base = {
      iss: issued.iss,
      aud: issued.aud,
      sub: 'svc:claims',
      groups: [],
      policies: [],
      iat: now(),
      exp: now() + 600,
      ttl_exp: now() + 300,
      jti: 'claims-jti-000000000001',
      method: 'token',
    };
  });
  after(() => vault.cleanup());
  beforeEach(() => {
    clock = start;
  });

  let serial = 0;
  /** Signs `claims` (base plus changes; undefined removes) with the vault's own key; a fresh jti unless given. */
  function sign(changes: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
    const claims: Record<string, unknown> = {
      ...base,
      jti: `claims-jti-${String(++serial).padStart(12, '0')}`,
      ...changes,
    };
    for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', typ: 'coffer+jwt', kid: key.kid, ...header } as JWTHeaderParameters)
      .sign(key.privateKey);
  }
  const verifies = async (changes: Record<string, unknown>) => (await tokens.verify(await sign(changes))) !== undefined;
  const list = (n: number, length = 8) =>
    Array.from({ length: n }, (_, i) => `g${String(i).padStart(length - 1, '0')}`);

  it('accepts the control token, and claims exactly on every bound', async () => {
    assert.equal(await verifies({}), true, 'control');
    const onBound: [string, Record<string, unknown>][] = [
      ['sub of 1,024 characters', { sub: 's'.repeat(1024) }],
      ['sub of 1 character', { sub: 's' }],
      ['64 groups', { groups: list(64) }],
      ['a group of 64 characters', { groups: ['g'.repeat(64)] }],
      ['64 policies', { policies: list(64) }],
      ['a policy of 64 characters', { policies: ['p'.repeat(64)] }],
      ['jti of 16 characters', { jti: 'j'.repeat(16) }],
      ['jti of 64 characters', { jti: `${'j'.repeat(62)}-_` }],
      ['method of 32 characters', { method: 'm'.repeat(32) }],
      ['empty method', { method: '' }],
      ['iat 0', { iat: 0 }],
      ['ttl_exp equal to exp', { ttl_exp: now() + 600 }],
      ['no ttl_exp (signed before renew-in-place)', { ttl_exp: undefined }],
      ['max_exp equal to exp', { max_exp: now() + 600 }],
      ['parent of 16 characters', { parent: 'p'.repeat(16) }],
      ['meta key of 64 characters, value of 512', { meta: { ['k'.repeat(64)]: 'v'.repeat(512) } }],
      ['root true', { root: true }],
      ['root false', { root: false }],
      ['within of one principal', { within: [{ sub: 'svc:m', groups: list(64), policies: list(64) }] }],
      [
        'within of 32 principals',
        { within: Array.from({ length: 32 }, (_, i) => ({ sub: `svc:m${i}`, groups: [], policies: [] })) },
      ],
    ];
    for (const [what, changes] of onBound) assert.equal(await verifies(changes), true, what);
  });

  it('refuses tokens signed with the real key whose claims are one step past a bound', async () => {
    const past: [string, Record<string, unknown>][] = [
      ['sub of 1,025 characters', { sub: 's'.repeat(1025) }],
      ['empty sub', { sub: '' }],
      ['within empty', { within: [] }],
      [
        'within of 33 principals',
        { within: Array.from({ length: 33 }, (_, i) => ({ sub: `svc:m${i}`, groups: [], policies: [] })) },
      ],
      ['a within principal with 65 groups', { within: [{ sub: 'svc:m', groups: list(65), policies: [] }] }],
      [
        'a within principal with an unknown field',
        { within: [{ sub: 'svc:m', groups: [], policies: [], root: true }] },
      ],
      ['a within principal without policies', { within: [{ sub: 'svc:m', groups: [] }] }],
      ['sub not a string', { sub: 7 }],
      ['65 groups', { groups: list(65) }],
      ['a group of 65 characters', { groups: ['g'.repeat(65)] }],
      ['a group not a string', { groups: [1] }],
      ['65 policies', { policies: list(65) }],
      ['a policy of 65 characters', { policies: ['p'.repeat(65)] }],
      ['policies not a list', { policies: 'admin' }],
      ['no groups', { groups: undefined }],
      ['no policies', { policies: undefined }],
      ['jti with a trailing character', { jti: 'claims-jti-0000000000ab!' }],
      ['jti with a leading character', { jti: '!claims-jti-0000000000ab' }],
      ['jti with a trailing newline', { jti: 'claims-jti-0000000000ab\n' }],
      ['jti of 15 characters', { jti: 'j'.repeat(15) }],
      ['jti of 65 characters', { jti: 'j'.repeat(65) }],
      ['method of 33 characters', { method: 'm'.repeat(33) }],
      ['no method', { method: undefined }],
      ['method not a string', { method: 1 }],
      ['negative iat', { iat: -1 }],
      ['float iat', { iat: now() + 0.5 }],
      ['exp 0', { exp: 0, iat: 0, ttl_exp: undefined }],
      ['ttl_exp one second past exp', { ttl_exp: now() + 601 }],
      ['ttl_exp 0', { ttl_exp: 0 }],
      ['float ttl_exp', { ttl_exp: now() + 300.5 }],
      ['max_exp one second before exp', { max_exp: now() + 599 }],
      ['max_exp 0', { max_exp: 0 }],
      ['float max_exp', { max_exp: now() + 900.5 }],
      ['parent with a trailing character', { parent: `${'p'.repeat(16)}.` }],
      ['parent of 15 characters', { parent: 'p'.repeat(15) }],
      ['a meta key of 65 characters', { meta: { ['k'.repeat(65)]: 'v' } }],
      ['a meta value of 513 characters', { meta: { k: 'v'.repeat(513) } }],
      ['a meta value not a string', { meta: { k: 1 } }],
      ['root not a boolean', { root: 'true' }],
    ];
    for (const [what, changes] of past) assert.equal(await verifies(changes), false, what);
  });

  it('refuses a token longer than 8,192 characters before verifying it, and takes one of exactly 8,192', async () => {
    /** A valid token of exactly `length` characters: padding in an unknown claim and a header parameter. */
    async function tokenOfLength(length: number): Promise<string> {
      for (let h = 0; h < 4; h++) {
        const header = h > 0 ? { pad: 'y'.repeat(h) } : {};
        const guess = Math.floor(((length - (await sign({ pad: '' }, header)).length) * 3) / 4);
        for (let n = guess - 4; n < guess + 4; n++) {
          const t = await sign({ pad: 'x'.repeat(n) }, header);
          if (t.length === length) return t;
        }
      }
      throw new Error(`no token of ${length} characters`);
    }
    const at = await tokenOfLength(8192);
    assert.equal(at.length, 8192);
    assert.ok(await tokens.verify(at), 'a token of 8,192 characters verifies');
    const over = await tokenOfLength(8193);
    assert.equal(over.length, 8193);
    assert.equal(await tokens.verify(over), undefined, 'a token of 8,193 characters is refused');
    // Over HTTP the Authorization header is refused first (400); verify's own cap backs it up.
    assert.equal(
      (
        await request(vault.app)
          .get('/v1/auth/token/self')
          .set({ Authorization: `Bearer ${over}` })
      ).status,
      400,
    );
    assert.equal(
      (
        await request(vault.app)
          .get('/v1/auth/token/self')
          .set({ Authorization: `Bearer ${at}` })
      ).status,
      200,
    );
  });

  it('a cached token is refused from its exp second on, and leaves the cache', async () => {
    const cache = (tokens as unknown as { verified: Map<string, unknown> }).verified;
    const t = await sign({ exp: now() + 60, ttl_exp: undefined });
    assert.ok(await tokens.verify(t));
    assert.ok(cache.has(t), 'cached after the first use');
    clock = start + 59_999;
    assert.equal((await tokens.verify(t))?.expires, now() + 1, 'cached token at exp - 1 ms');
    clock = start + 60_000;
    assert.equal(await tokens.verify(t), undefined, 'cached token at exp');
    assert.equal(cache.has(t), false, 'an expired token is dropped from the cache');
  });

  it('a token is refused from its soft expiry (ttl_exp) second on, cached or not', async () => {
    const t = await sign({ exp: now() + 600, ttl_exp: now() + 60 });
    const u = await sign({ exp: now() + 600, ttl_exp: now() + 60 });
    assert.equal((await tokens.verify(t))?.expires, now() + 60);
    clock = start + 59_999;
    assert.ok(await tokens.verify(t));
    assert.ok(await tokens.verify(u), 'first use at ttl_exp - 1 ms');
    clock = start + 60_000;
    assert.equal(await tokens.verify(t), undefined);
    assert.equal(
      await tokens.verify(await sign({ exp: now() + 600, ttl_exp: now() })),
      undefined,
      'first use at ttl_exp',
    );
  });

  it('a cached token stops verifying once its signing key retires, though its exp is later', async () => {
    const years = (n: number) => n * 365 * 86_400;
    const t = await sign({ exp: now() + years(20), ttl_exp: undefined });
    await tokens.rotateSigningKey(false); // the old key retires once every token it signed is past (the root token: ten years)
    const cache = (tokens as unknown as { verified: Map<string, unknown> }).verified;
    assert.ok(await tokens.verify(t), 'still verifies under the old key');
    assert.ok(cache.has(t));
    const retireAt = (tokens as unknown as { keys: Map<string, { record: { retire_at?: number } }> }).keys.get(key.kid)!
      .record.retire_at!;
    assert.ok(retireAt > now() + years(9) && retireAt < now() + years(20), `retire_at ${retireAt}`);
    clock = (retireAt - 1) * 1000;
    assert.ok(await tokens.verify(t), 'cached, one second before the key retires');
    clock = retireAt * 1000;
    assert.equal(await tokens.verify(t), undefined, 'cached, once the key retired');
    assert.equal(cache.has(t), false);
    key = (tokens as unknown as { current: { kid: string; privateKey: KeyObject } }).current;
  });

  it('keeps the verify cache at 10,000 tokens, dropping the oldest, past 10,000 distinct tokens', async function () {
    this.timeout(120_000);
    const cache = (tokens as unknown as { verified: Map<string, unknown> }).verified;
    cache.clear();
    // Signed with node:crypto directly (the same EdDSA JWS jose makes), to keep 10,001 tokens quick.
    const header = Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'coffer+jwt', kid: key.kid })).toString('base64url');
    const body = JSON.stringify({ ...base, jti: 'cache-jti-00000000000000' });
    const at = body.indexOf('cache-jti-') + 'cache-jti-'.length;
    const quick = (i: number) => {
      const input = `${header}.${Buffer.from(`${body.slice(0, at)}${String(i).padStart(14, '0')}${body.slice(at + 14)}`).toString('base64url')}`;
      return `${input}.${cryptoSign(null, Buffer.from(input), key.privateKey).toString('base64url')}`;
    };
    const first = quick(0);
    assert.ok(await tokens.verify(first));
    let last = first;
    for (let i = 1; i <= 10_000; i++) {
      last = quick(i);
      assert.ok(await tokens.verify(last), `token ${i}`);
    }
    assert.equal(cache.size, 10_000);
    assert.equal(cache.has(first), false, 'the oldest entry went');
    assert.ok(cache.has(last));
    assert.ok(await tokens.verify(first), 'an evicted token still verifies (again)');
    assert.equal(cache.size, 10_000);
  });
});

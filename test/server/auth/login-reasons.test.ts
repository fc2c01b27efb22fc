import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, type JWK } from 'jose';
import request from 'supertest';
import { JWT_REFUSED } from '../../../server/auth/jwt-login.js';
import {
  APPROLE_ADDRESS_REFUSED,
  APPROLE_REFUSED,
  SECRET_ID_SPENT,
  USERPASS_REFUSED,
} from '../../../server/auth/logins.js';
import { openVault, type TestVault } from '../../helpers.js';
import { keyPair } from '../../key-pairs.js';

/**
 * Issue 18 item 3: a refused login says why, with the request id, and never more than the caller
 * already holds: no credential in any body, no user enumeration, and for JWT roles the claims are
 * named only once the signature verified (SECURITY-CASES A30 for everything before).
 */
describe('login refusals say why (issue 18)', function () {
  this.timeout(30_000);
  let vault: TestVault;
  let issuer: Server;
  let issuerUrl = '';
  const rsa = keyPair('rsa', { modulusLength: 2048 });
  const bodies: string[] = [];
  const secrets: string[] = [];

  const post = async (path: string, body: object) => {
    const res = await request(vault.app).post(path).send(body);
    bodies.push(JSON.stringify(res.body));
    return res;
  };
  const refusedWith = async (path: string, body: object, message: string) => {
    const res = await post(path, body);
    assert.equal(res.status, 401, JSON.stringify(res.body));
    assert.deepEqual(Object.keys(res.body.error), ['code', 'message', 'request_id']);
    assert.equal(res.body.error.code, 'unauthenticated');
    assert.equal(res.body.error.message, message);
    assert.match(res.body.error.request_id, /\S/, 'the request id is in the body');
    assert.equal(res.headers['x-request-id'] ?? res.body.error.request_id, res.body.error.request_id);
    return res;
  };
  const sign = async (extra: Record<string, unknown> = {}, key = rsa.privateKey, kid = 'k1') => {
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = {
      iss: issuerUrl,
      aud: 'coffer',
      sub: 'repo:acme/api:ref:refs/heads/main',
      repository: 'acme/api',
      iat: now,
      exp: now + 300,
      jti: crypto.randomUUID(),
      ...extra,
    };
    for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
    const jwt = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(key);
    secrets.push(jwt);
    return jwt;
  };

  before(async () => {
    const jwks: JWK[] = [{ ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }];
    issuer = createServer((req, res) => {
      if (req.url === '/jwks')
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: jwks }));
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => issuer.listen(0, '127.0.0.1', r));
    issuerUrl = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}`;
    vault = await openVault({ loginLimits: { failuresPerMinute: 10_000, userFailuresPerMinute: 1_000 } });
    const put = async (path: string, body: object) =>
      assert.equal((await request(vault.app).put(path).set(vault.auth).send(body)).status, 200, path);
    await put('/v1/auth/userpass/users/alice', { password: 'correct horse battery' });
    await put('/v1/auth/jwt/roles/ci', {
      issuer: issuerUrl,
      jwks_url: `${issuerUrl}/jwks`,
      bound_audiences: ['coffer'],
      bound_claims: { repository: 'acme/api' },
      max_token_lifetime: 600,
    });
    await put('/v1/auth/jwt/roles/once', {
      issuer: issuerUrl,
      jwks_url: `${issuerUrl}/jwks`,
      bound_audiences: ['coffer'],
      single_use: true,
    });
  });
  after(async () => {
    await vault.cleanup();
    await new Promise((r) => issuer.close(r));
  });

  describe('userpass', () => {
    it('gives one body for an unknown user and a wrong password (no enumeration)', async () => {
      const wrong = await refusedWith(
        '/v1/auth/userpass/login',
        { username: 'alice', password: 'wrong password!' },
        USERPASS_REFUSED,
      );
      const unknown = await refusedWith(
        '/v1/auth/userpass/login',
        { username: 'mallory', password: 'wrong password!' },
        USERPASS_REFUSED,
      );
      const odd = await refusedWith(
        '/v1/auth/userpass/login',
        { username: 'Not A Name', password: 'wrong password!' },
        USERPASS_REFUSED,
      );
      const strip = (b: { error: Record<string, string> }) => ({ ...b.error, request_id: undefined });
      assert.deepEqual(strip(wrong.body), strip(unknown.body));
      assert.deepEqual(strip(wrong.body), strip(odd.body));
      assert.deepEqual(Object.keys(wrong.headers).sort(), Object.keys(unknown.headers).sort(), 'same headers too');
      secrets.push('wrong password!', 'correct horse battery');
      assert.equal(
        (await post('/v1/auth/userpass/login', { username: 'alice', password: 'correct horse battery' })).status,
        200,
      );
    });
  });

  describe('approle', () => {
    let roleId = '';
    const secretId = async (role = 'builder') => {
      const res = await request(vault.app).post(`/v1/auth/approle/roles/${role}/secret-id`).set(vault.auth).send({});
      assert.equal(res.status, 200);
      secrets.push(res.body.secret_id);
      return res.body.secret_id as string;
    };
    before(async () => {
      assert.equal(
        (await request(vault.app).put('/v1/auth/approle/roles/builder').set(vault.auth).send({ secret_id_num_uses: 1 }))
          .status,
        200,
      );
      roleId = (await request(vault.app).get('/v1/auth/approle/roles/builder').set(vault.auth)).body.role_id;
    });

    it('names a spent single-use secret_id, and only to one that was really issued', async () => {
      const sid = await secretId();
      assert.equal((await post('/v1/auth/approle/login', { role_id: roleId, secret_id: sid })).status, 200);
      await refusedWith('/v1/auth/approle/login', { role_id: roleId, secret_id: sid }, SECRET_ID_SPENT);
      await refusedWith('/v1/auth/approle/login', { role_id: roleId, secret_id: sid }, SECRET_ID_SPENT); // still, on a third try
      await refusedWith('/v1/auth/approle/login', { role_id: roleId, secret_id: `${sid}x` }, APPROLE_REFUSED);
      await refusedWith('/v1/auth/approle/login', { role_id: crypto.randomUUID(), secret_id: sid }, APPROLE_REFUSED);
      await refusedWith('/v1/auth/approle/login', { role_id: 'not-a-uuid', secret_id: 'x' }, APPROLE_REFUSED);
    });

    it('names an expired secret_id', async () => {
      let now = Date.now();
      const clocked = await openVault({
        now: () => now,
        loginLimits: { failuresPerMinute: 10_000, userFailuresPerMinute: 1_000 },
      });
      try {
        assert.equal(
          (await request(clocked.app).put('/v1/auth/approle/roles/b').set(clocked.auth).send({ secret_id_ttl: '1m' }))
            .status,
          200,
          'role',
        );
        const id = (await request(clocked.app).get('/v1/auth/approle/roles/b').set(clocked.auth)).body.role_id;
        const sid = (await request(clocked.app).post('/v1/auth/approle/roles/b/secret-id').set(clocked.auth).send({}))
          .body.secret_id as string;
        now += 120_000;
        for (let i = 0; i < 2; i++) {
          const res = await request(clocked.app).post('/v1/auth/approle/login').send({ role_id: id, secret_id: sid });
          assert.equal(res.status, 401);
          assert.equal(res.body.error.message, SECRET_ID_SPENT);
          assert.ok(!JSON.stringify(res.body).includes(sid));
        }
      } finally {
        await clocked.cleanup();
      }
    });

    it('names the address binding only to a caller holding a real secret_id', async () => {
      assert.equal(
        (
          await request(vault.app)
            .put('/v1/auth/approle/roles/bound')
            .set(vault.auth)
            .send({ bound_cidrs: ['10.9.9.0/24'] })
        ).status,
        200,
      );
      const id = (await request(vault.app).get('/v1/auth/approle/roles/bound').set(vault.auth)).body.role_id;
      const sid = await secretId('bound');
      await refusedWith('/v1/auth/approle/login', { role_id: id, secret_id: sid }, APPROLE_ADDRESS_REFUSED);
      await refusedWith('/v1/auth/approle/login', { role_id: id, secret_id: 'cof_sid_guess' }, APPROLE_REFUSED);
    });
  });

  describe('jwt (real JWKS issuer)', () => {
    const jwtLogin = async (role: string, jwt: string, message: string) =>
      refusedWith('/v1/auth/jwt/login', { role, jwt }, message);
    const now = () => Math.floor(Date.now() / 1000);

    it('logs in with the matching token', async () => {
      assert.equal((await post('/v1/auth/jwt/login', { role: 'ci', jwt: await sign() })).status, 200);
    });

    it('names the claim once the signature verified', async () => {
      await jwtLogin('ci', await sign({ repository: 'acme/other' }), 'claim repository does not match the role');
      await jwtLogin('ci', await sign({ iat: now() - 500, exp: now() - 100 }), 'token expired');
      await jwtLogin('ci', await sign({ aud: 'sts.amazonaws.com' }), 'audience not accepted');
      await jwtLogin('ci', await sign({ iss: 'https://other.example' }), 'issuer not accepted');
      await jwtLogin(
        'ci',
        await sign({ iat: now(), exp: now() + 3000 }),
        "token lifetime (exp - iat) exceeds the role's max_token_lifetime",
      );
      const once = await sign();
      assert.equal((await post('/v1/auth/jwt/login', { role: 'once', jwt: once })).status, 200);
      await jwtLogin('once', once, 'token already used (the role is single-use)');
    });

    it('keeps one generic body for an unknown role, a bad signature, an unknown key and a forgery', async () => {
      const other = keyPair('rsa', { modulusLength: 2048 }).privateKey;
      const good = await sign();
      await jwtLogin('no-such-role', good, JWT_REFUSED);
      await jwtLogin('ci', `${good.slice(0, -6)}AAAAAA`, JWT_REFUSED);
      await jwtLogin('ci', await sign({}, rsa.privateKey, 'k9'), JWT_REFUSED);
      await jwtLogin('ci', await sign({ repository: 'acme/other' }, other), JWT_REFUSED);
      await jwtLogin('ci', await sign({ iat: now() - 500, exp: now() - 100 }, other), JWT_REFUSED);
      await jwtLogin('ci', 'not.a.jwt', JWT_REFUSED);
    });
  });

  // A suite of its own, so that it runs after the suites above (mocha runs a suite's own tests first).
  describe('every body above', () =>
    it('holds no credential, token or key material', () => {
      assert.ok(bodies.length > 20, `${bodies.length} bodies seen`);
      const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString().split('\n')[1]!;
      for (const body of bodies) {
        for (const s of secrets) {
          assert.ok(!body.includes(s), `a body holds a credential: ${body}`);
          for (const part of s.split('.').filter((p) => p.length > 16))
            assert.ok(!body.includes(part), `a body holds part of a token: ${body}`);
        }
        assert.ok(!body.includes(pem.slice(0, 32)), 'no key material');
        assert.ok(
          !/acme\/other|sts\.amazonaws|other\.example/.test(body),
          `a refusal echoes a presented claim value: ${body}`,
        );
        assert.ok(!/cof_sid_|password_hash|\$argon|\$scrypt/.test(body), body);
      }
    }));
});

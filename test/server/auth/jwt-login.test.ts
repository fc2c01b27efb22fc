import assert from 'node:assert/strict';
import { createHmac, createSign, sign as edSign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, type JWK } from 'jose';
import request from 'supertest';
import { JWT_REFUSED } from '../../../server/auth/jwt-login.js';
import { openVault, type TestVault } from '../../helpers.js';
import { keyPair } from '../../key-pairs.js';

/** A CI identity provider on loopback: JWKS over HTTP, with a request counter. */
class Issuer {
  readonly rsa = keyPair('rsa', { modulusLength: 2048 });
  requests = 0;
  jwks: JWK[] = [];
  server!: Server;
  url = '';

  async start(): Promise<this> {
    this.jwks = [{ ...(await exportJWK(this.rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }];
    this.server = createServer((req, res) => {
      this.requests++;
      if (req.url === '/jwks')
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.jwks }));
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }

  claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: this.url,
      aud: 'coffer',
      sub: 'repo:acme/api:ref:refs/heads/main',
      repository: 'acme/api',
      ref: 'refs/heads/main',
      repository_id: '42',
      iat: now,
      exp: now + 300,
      jti: crypto.randomUUID(),
      ...extra,
    };
  }

  sign(
    extra: Record<string, unknown> = {},
    header: Record<string, unknown> = {},
    key: KeyObject = this.rsa.privateKey,
  ): Promise<string> {
    const claims = this.claims(extra);
    for (const [k, v] of Object.entries(claims)) if (v === undefined) delete claims[k];
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', typ: 'JWT', ...header } as never)
      .sign(key);
  }

  /** Signs raw header and payload text (for malformed JSON the libraries would not produce). */
  signRaw(headerJson: string, payloadJson: string): string {
    const input = `${Buffer.from(headerJson).toString('base64url')}.${Buffer.from(payloadJson).toString('base64url')}`;
    const signature = createSign('RSA-SHA256').update(input).sign(this.rsa.privateKey).toString('base64url');
    return `${input}.${signature}`;
  }
}

describe('CI JWT login: refusals (SECURITY-CASES A)', function () {
  this.timeout(30_000);
  let vault: TestVault;
  let idp: Issuer;
  let roleCount = 0;

  /** A fresh role per test keeps the per-role login limit out of the way. */
  async function role(config: Record<string, unknown> = {}): Promise<string> {
    const name = `r${++roleCount}`;
    const res = await request(vault.app)
      .put(`/v1/auth/jwt/roles/${name}`)
      .set(vault.auth)
      .send({
        issuer: idp.url,
        jwks_url: `${idp.url}/jwks`,
        bound_audiences: ['coffer'],
        bound_claims: { repository: 'acme/api' },
        groups: [],
        ...config,
      });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return name;
  }
  const login = (roleName: string, jwt: string) =>
    request(vault.app).post('/v1/auth/jwt/login').send({ role: roleName, jwt });
  /** Refused with the generic body (before the signature verified) or a named claim (after). */
  const refused = async (roleName: string, jwt: string, why: string, message: string | RegExp = JWT_REFUSED) => {
    const res = await login(roleName, jwt);
    assert.equal(res.status, 401, `${why}: ${res.status} ${JSON.stringify(res.body)}`);
    if (typeof message === 'string') assert.equal(res.body.error.message, message, why);
    else assert.match(res.body.error.message, message, why);
  };

  before(async () => {
    idp = await new Issuer().start();
    vault = await openVault({ loginLimits: { failuresPerMinute: 10_000, userFailuresPerMinute: 1_000 } });
  });
  after(async () => {
    await vault.cleanup();
    await idp.close();
  });

  it('accepts the well-formed token (the baseline the refusals differ from)', async () => {
    assert.equal((await login(await role(), await idp.sign())).status, 200);
  });

  it('A1: refuses alg none, with or without a signature part, without fetching keys', async () => {
    const r = await role();
    const before = idp.requests;
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify(idp.claims())).toString('base64url');
    await refused(r, `${header}.${payload}.`, 'empty signature');
    await refused(r, `${header}.${payload}`, 'two parts');
    await refused(r, `${header}.${payload}.AAAA`, 'junk signature');
    assert.equal(idp.requests, before, 'no JWKS fetch for alg none');
  });

  it('A2: refuses HS256 signed with the RSA public key as the HMAC secret (PEM, JWK, DER)', async () => {
    const r = await role();
    const pem = idp.rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const secrets = [
      pem,
      `\n${pem}`,
      idp.rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
      JSON.stringify(idp.jwks[0]),
      idp.rsa.publicKey.export({ type: 'spki', format: 'der' }),
    ];
    for (const secret of secrets) {
      const input = `${Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'k1', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(idp.claims())).toString('base64url')}`;
      await refused(r, `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`, 'HS256 confusion');
    }
  });

  it("A3: refuses an algorithm outside the role's list", async () => {
    const r = await role({ allowed_algorithms: ['ES256'] });
    await refused(r, await idp.sign(), 'RS256 when only ES256 is allowed');
  });

  it('A5: ignores jku, x5u, jwk and x5c headers and fetches nothing from them', async () => {
    const attacker = await new Issuer().start();
    try {
      const r = await role();
      for (const header of [
        { jku: `${attacker.url}/jwks` },
        { x5u: `${attacker.url}/cert` },
        { jwk: attacker.jwks[0] },
        { x5c: ['MIIB'] },
      ]) {
        await refused(r, await idp.sign({}, header, attacker.rsa.privateKey), `header ${Object.keys(header)[0]}`);
      }
      assert.equal(attacker.requests, 0, 'the attacker server was never contacted');
    } finally {
      await attacker.close();
    }
  });

  it('A6: treats odd kid values as opaque lookups that match nothing', async () => {
    const r = await role();
    for (const kid of ['../../dev/null', "' OR 1=1--", 'x'.repeat(10_000), null, 42]) {
      await refused(r, await idp.sign({}, { kid }), `kid ${String(kid).slice(0, 20)}`);
    }
  });

  it('A7: unknown kids trigger at most one JWKS refetch per cooldown', async () => {
    const r = await role();
    assert.equal((await login(r, await idp.sign())).status, 200);
    const before = idp.requests;
    for (let i = 0; i < 8; i++) await refused(await role(), await idp.sign({}, { kid: `unknown-${i}` }), 'unknown kid');
    // New roles get their own key set: each may fetch once, but repeated unknown kids on one role may not.
    const hammered = await role();
    const mid = idp.requests;
    for (let i = 0; i < 8; i++) {
      const res = await login(hammered, await idp.sign({}, { kid: `again-${i}` }));
      assert.ok(res.status === 401 || res.status === 429);
    }
    assert.ok(idp.requests - mid <= 2, `one role refetched ${idp.requests - mid} times`);
    assert.ok(idp.requests - before <= 8 + 2);
  });

  it('A8: a JWKS that hangs fails closed within about five seconds, and link-local addresses are refused', async () => {
    const hang = createServer(() => undefined);
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(hang.address() as AddressInfo).port}`;
      const r = await role({ jwks_url: `${url}/jwks` });
      const t = Date.now();
      const res = await login(r, await idp.sign());
      assert.equal(res.status, 503);
      assert.equal(res.body.error.code, 'idp_unavailable');
      assert.ok(Date.now() - t < 6_500);
      const metadata = await role({ jwks_url: 'http://169.254.169.254/jwks', allow_insecure_http: true });
      const t2 = Date.now();
      const refusedMeta = await login(metadata, await idp.sign());
      assert.notEqual(refusedMeta.status, 200);
      assert.ok(Date.now() - t2 < 2_000, 'refused before any connection attempt');
    } finally {
      hang.closeAllConnections();
      hang.close();
    }
  });

  it('refuses a role whose issuer or JWKS URL is not a URL, or with both or neither of jwks_url and jwks, and stores nothing', async () => {
    const base = { bound_audiences: ['coffer'], groups: [] };
    const jwks = { keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }] };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ issuer: 'not a url', jwks_url: `${idp.url}/jwks` }, /^issuer: /],
      [{ issuer: idp.url, jwks_url: 'jwks.json' }, /^jwks_url: /],
      [{ issuer: idp.url, jwks_url: `${idp.url}/jwks`, jwks }, /^jwks_url: give exactly one of jwks_url or jwks$/],
      [{ issuer: idp.url }, /^jwks_url: give exactly one of jwks_url or jwks$/],
    ];
    for (const [config, message] of cases) {
      const res = await request(vault.app)
        .put('/v1/auth/jwt/roles/refused')
        .set(vault.auth)
        .send({ ...base, ...config });
      assert.equal(res.status, 400, JSON.stringify(config));
      assert.equal(res.body.error.code, 'invalid_request');
      assert.match(res.body.error.message, message);
    }
    assert.equal((await request(vault.app).get('/v1/auth/jwt/roles/refused').set(vault.auth)).status, 404);
  });

  it('A10: requires the exact issuer string', async () => {
    const r = await role();
    for (const iss of [`${idp.url}/`, idp.url.toUpperCase(), `${idp.url}.evil.com`, idp.url.replace('http', 'https')])
      await refused(r, await idp.sign({ iss }), `iss ${iss}`, 'issuer not accepted');
  });

  it('A11/A12: refuses a wrong, missing or malformed audience, and several audiences unless allowed', async () => {
    const r = await role();
    for (const aud of ['sts.amazonaws.com', 'https://github.com/acme', [], '', 123, null])
      await refused(r, await idp.sign({ aud }), `aud ${JSON.stringify(aud)}`, 'audience not accepted');
    await refused(r, await idp.sign({ aud: undefined }), 'no aud', 'token has no aud claim');
    await refused(
      r,
      await idp.sign({ aud: ['coffer', 'other'] }),
      'two audiences',
      'token has several audiences and the role allows one',
    );
    const multi = await role({ allow_multiple_audiences: true });
    assert.equal((await login(multi, await idp.sign({ aud: ['coffer', 'other'] }))).status, 200);
  });

  it('takes a long CI subject (a deep branch name) as the identity, and refuses one no token could hold, by name', async () => {
    const r = await role({ bound_claims: {} });
    const branch = `repo:acme/api:ref:refs/heads/feature/${'x'.repeat(240)}`;
    const long = await login(r, await idp.sign({ sub: branch }));
    assert.equal(long.status, 200, JSON.stringify(long.body));
    assert.equal(long.body.identity, `jwt:${r}:${branch}`);
    const self = await request(vault.app)
      .get('/v1/auth/token/self')
      .set({ Authorization: `Bearer ${long.body.token}` });
    assert.equal(self.status, 200, 'the token works');
    const room = 1024 - `jwt:${r}:`.length;
    assert.equal((await login(r, await idp.sign({ sub: 's'.repeat(room) }))).status, 200, 'at the bound');
    await refused(
      r,
      await idp.sign({ sub: 's'.repeat(room + 1) }),
      'one over',
      `sub claim is longer than ${room} characters`,
    );
  });

  it('refuses a role that would grant more groups than a token holds (64), at configuration', async () => {
    const groups = Array.from({ length: 40 }, (_, i) => `g${i}`);
    const groups_claim_map = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`team-${i}`, `m${i}`]));
    const res = await request(vault.app)
      .put('/v1/auth/jwt/roles/too-many')
      .set(vault.auth)
      .send({
        issuer: idp.url,
        jwks_url: `${idp.url}/jwks`,
        bound_audiences: ['coffer'],
        groups,
        groups_claim: 'teams',
        groups_claim_map,
      });
    assert.equal(res.status, 400);
    assert.equal(
      res.body.error.message,
      'groups and groups_claim_map together grant 70 groups; a token holds at most 64',
    );
    assert.equal((await request(vault.app).get('/v1/auth/jwt/roles/too-many').set(vault.auth)).status, 404);
  });

  it('A13/A14: refuses expired, not-yet-valid, future-issued, exp-less and over-long tokens', async () => {
    const r = await role({ leeway: 10, max_token_lifetime: 600 });
    const now = Math.floor(Date.now() / 1000);
    await refused(r, await idp.sign({ iat: now - 400, exp: now - 20 }), 'expired beyond leeway', 'token expired');
    await refused(r, await idp.sign({ nbf: now + 120 }), 'nbf in the future', 'token not yet valid (nbf)');
    await refused(
      r,
      await idp.sign({ iat: now + 120, exp: now + 400 }),
      'iat in the future',
      'token issued in the future (iat)',
    );
    await refused(r, await idp.sign({ exp: undefined }), 'no exp', 'token has no exp claim');
    await refused(
      r,
      await idp.sign({ iat: now, exp: now + 3600 }),
      'lifetime above 600 s',
      "token lifetime (exp - iat) exceeds the role's max_token_lifetime",
    );
    assert.equal((await login(r, await idp.sign({ iat: now - 5, exp: now + 300 }))).status, 200);
  });

  it('A15: a single-use role refuses a replayed jti', async () => {
    const r = await role({ single_use: true });
    const jwt = await idp.sign();
    assert.equal((await login(r, jwt)).status, 200);
    await refused(r, jwt, 'replay', 'token already used (the role is single-use)');
  });

  it('A16/A18/A19: bound subject and claims match exactly, without coercion or case folding', async () => {
    const r = await role({
      bound_subject: 'repo:acme/api:ref:refs/heads/main',
      bound_claims: { repository: 'acme/api', repository_id: '42' },
    });
    for (const sub of [
      'repo:acme/api:ref:refs/heads/main-evil',
      'repo:acme/api-evil:ref:refs/heads/main',
      'repo:acme/api:ref:refs/heads/main\n',
      'repo:acme/api:ref:refs/heads/main ',
      'REPO:acme/api:ref:refs/heads/main',
    ]) {
      await refused(r, await idp.sign({ sub }), `sub ${JSON.stringify(sub)}`, 'subject does not match the role');
    }
    for (const repository_id of [42, ['42', '99'], { x: '42' }, null, true])
      await refused(
        r,
        await idp.sign({ repository_id }),
        `repository_id ${JSON.stringify(repository_id)}`,
        'claim repository_id does not match the role',
      );
    for (const repository of ['ACME/api', 'ａｃｍｅ/api', 'acme/api\u200d', 'acme\u202e/api'])
      await refused(
        r,
        await idp.sign({ repository }),
        `repository ${repository}`,
        'claim repository does not match the role',
      );
    assert.equal((await login(r, await idp.sign())).status, 200);
  });

  it('A17: glob claims: * stays within one path part and claim metacharacters are literal', async () => {
    const r = await role({
      bound_claims_type: 'glob',
      bound_subject: 'repo:acme/*:ref:refs/heads/main',
      bound_claims: { repository: 'acme/*' },
    });
    assert.equal(
      (await login(r, await idp.sign({ repository: 'acme/web', sub: 'repo:acme/web:ref:refs/heads/main' }))).status,
      200,
    );
    await refused(
      r,
      await idp.sign({ repository: 'acme-evil/x' }),
      'other owner',
      /^(claim repository|subject) does not match the role$/,
    );
    await refused(
      r,
      await idp.sign({ repository: 'acme/x/y' }),
      '* crossing /',
      /^(claim repository|subject) does not match the role$/,
    );
    const literal = await role({ bound_claims: { environment: 'prod[1-9]' }, bound_claims_type: 'glob' });
    await refused(
      literal,
      await idp.sign({ environment: 'prod1' }),
      '[1-9] is literal',
      'claim environment does not match the role',
    );
    assert.equal((await login(literal, await idp.sign({ environment: 'prod[1-9]' }))).status, 200);
  });

  it('A17: glob claims: ** crosses path parts, from where it stands, and only there', async () => {
    const r = await role({
      bound_claims_type: 'glob',
      bound_claims: { repository: 'acme/api', ref: 'refs/heads/release/**' },
    });
    for (const ref of ['refs/heads/release/1.2', 'refs/heads/release/1.2/hotfix/x', 'refs/heads/release/']) {
      assert.equal((await login(r, await idp.sign({ ref }))).status, 200, ref);
    }
    for (const ref of ['refs/heads/release', 'refs/heads/main', 'refs/tags/release/1.2', 'xrefs/heads/release/1.2']) {
      await refused(r, await idp.sign({ ref }), `ref ${ref}`, 'claim ref does not match the role');
    }
  });

  it('A21/A22: GitLab and Kubernetes bindings refuse forks and recreated service accounts', async () => {
    const gitlab = await role({ bound_claims: { project_id: '7', ref_protected: 'true' } });
    await refused(
      gitlab,
      await idp.sign({ project_id: '7', ref_protected: 'false', project_path: 'fork/app' }),
      'unprotected fork ref',
      'claim ref_protected does not match the role',
    );
    assert.equal((await login(gitlab, await idp.sign({ project_id: '7', ref_protected: 'true' }))).status, 200);
    const k8s = await role({
      bound_subject: 'system:serviceaccount:ci:builder',
      bound_claims: { 'kubernetes.io/namespace': 'ci', 'kubernetes.io/serviceaccount/uid': 'uid-1' },
    });
    const sa = (uid: string) => ({
      sub: 'system:serviceaccount:ci:builder',
      'kubernetes.io': { namespace: 'ci', serviceaccount: { name: 'builder', uid } },
    });
    assert.equal((await login(k8s, await idp.sign(sa('uid-1')))).status, 200);
    await refused(
      k8s,
      await idp.sign(sa('uid-2')),
      'recreated service account',
      'claim kubernetes.io/serviceaccount/uid does not match the role',
    );
    await refused(
      k8s,
      await idp.sign({
        sub: 'system:serviceaccount:ci:builder',
        'kubernetes.io/serviceaccount/uid': 'uid-1',
        'kubernetes.io/namespace': 'ci',
      }),
      'a flat look-alike claim is not the nested one',
      /^claim kubernetes\.io\/\S+ does not match the role$/,
    );
  });

  it('A23/A24/A25/A27: refuses JWE, JSON serialization, zip/p2c/enc/crit headers, oversize and junk quickly', async () => {
    const r = await role();
    const t = Date.now();
    await refused(r, 'a.b.c.d.e', 'five parts (JWE)');
    await refused(r, JSON.stringify({ payload: 'x', signatures: [] }), 'JSON serialization');
    for (const header of [{ zip: 'DEF' }, { p2c: 100000 }, { enc: 'A256GCM' }, { crit: ['unknown'], unknown: 1 }]) {
      await refused(
        r,
        idp.signRaw(JSON.stringify({ alg: 'RS256', kid: 'k1', ...header }), JSON.stringify(idp.claims())),
        `header ${Object.keys(header)[0]}`,
      );
    }
    await refused(r, `${'a'.repeat(9000)}.b.c`, 'over 8 KB');
    await refused(r, '.'.repeat(10_000), '10,000 dots');
    await refused(r, 'ab+c.de/f.gh==', 'not base64url');
    assert.ok(Date.now() - t < 3_000);
  });

  it('A26: a Coffer token is not a CI identity token', async () => {
    await refused(await role(), vault.rootToken, 'Coffer root token presented to login');
  });

  it('A28: refuses duplicate keys in the header or the payload, even with a valid signature', async () => {
    const r = await role();
    const claims = JSON.stringify(idp.claims()).slice(1, -1);
    await refused(r, idp.signRaw('{"alg":"RS256","kid":"k1","alg":"RS256"}', `{${claims}}`), 'duplicate header key');
    await refused(
      r,
      idp.signRaw('{"alg":"RS256","kid":"k1"}', `{${claims},"sub":"repo:other"}`),
      'duplicate payload key',
    );
    assert.equal((await login(r, idp.signRaw('{"alg":"RS256","kid":"k1"}', `{${claims}}`))).status, 200);
  });

  it('A29/A30: odd role names never reach another role; every refusal before the signature verified looks the same', async () => {
    const jwt = await idp.sign();
    for (const name of ['../admin', '%2e%2e%2fadmin', 'admin\u0000', 'ADMIN', '']) {
      const res = await login(name, jwt);
      assert.ok([400, 401].includes(res.status), `${JSON.stringify(name)} -> ${res.status}`);
    }
    const r = await role();
    const now = Math.floor(Date.now() / 1000);
    const attacker = keyPair('rsa', { modulusLength: 2048 }).privateKey;
    const bodies = await Promise.all([
      login('no-such-role', jwt),
      login(r, `${jwt.slice(0, -4)}AAAA`),
      login(r, await idp.sign({}, { kid: 'no-such-kid' })),
      // a forged token claiming what the role wants but expired: still the generic body, since
      // claims are only looked at once the signature verified
      login(r, await idp.sign({ iat: now - 900, exp: now - 600 }, {}, attacker)),
      login(r, await idp.sign({ repository: 'acme/other' }, {}, attacker)),
    ]);
    const shapes = bodies.map((b) =>
      JSON.stringify({ status: b.status, code: b.body.error.code, message: b.body.error.message }),
    );
    assert.equal(new Set(shapes).size, 1, shapes.join('\n'));
    assert.equal(bodies[0]!.body.error.message, JWT_REFUSED);
    // After the signature verified, the claim is named (issue 18): the caller holds a genuine token.
    await refused(
      r,
      await idp.sign({ repository: 'acme/other' }),
      'genuine token, other repository',
      'claim repository does not match the role',
    );
    await refused(r, await idp.sign({ iat: now - 900, exp: now - 600 }), 'genuine token, expired', 'token expired');
  });

  it('A31: a key added to the JWKS is picked up by a refetch on its unknown kid', async () => {
    const r = await role();
    assert.equal((await login(r, await idp.sign())).status, 200);
    const { publicKey, privateKey } = keyPair('ed25519');
    idp.jwks.push({ ...(await exportJWK(publicKey)), kid: 'k2', alg: 'EdDSA', use: 'sig' });
    const header = Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: 'k2', typ: 'JWT' })).toString('base64url');
    const payload = Buffer.from(JSON.stringify(idp.claims())).toString('base64url');
    const jwt = `${header}.${payload}.${edSign(null, Buffer.from(`${header}.${payload}`), privateKey).toString('base64url')}`;
    // The role's cooldown (30 s) applies since its last fetch; a new role on the same IdP fetches fresh.
    assert.equal((await login(await role(), jwt)).status, 200);
  });

  it('A32: refuses plain http to a non-loopback host unless explicitly allowed', async () => {
    const res = await request(vault.app)
      .put('/v1/auth/jwt/roles/insecure')
      .set(vault.auth)
      .send({ issuer: 'http://idp.example.com', jwks_url: 'http://idp.example.com/jwks', bound_audiences: ['coffer'] });
    assert.equal(res.status, 400);
    assert.match(res.body.error.message, /plain http/);
  });

  it('C16: a groups claim grants only what the mapping says', async () => {
    const r = await role({ groups_claim: 'groups', groups_claim_map: { 'platform-team': 'platform' } });
    const res = await login(r, await idp.sign({ groups: ['admin', 'refs/heads/admin', 'platform-team'] }));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.groups, ['platform']);
  });
});

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { Coffer } from '../../sdk/client.js';
import { loginGithubActions } from '../../sdk/ci-login.js';
import { JWT_REFUSED } from '../../server/auth/jwt-login.js';
import { openVault, type TestVault } from '../helpers.js';
import { startIssuer, type TestIssuer } from '../oidc-issuer.js';

/** GitHub Actions' OIDC token shape, from a loopback issuer. */
const githubIssuer = () =>
  startIssuer({
    claims: { repository: 'acme/api', ref: 'refs/heads/main', repository_id: '42' },
    subject: 'repo:acme/api:ref:refs/heads/main',
  });

describe('end to end: a GitHub Actions job reads only its secrets', function () {
  this.timeout(20_000);
  let vault: TestVault;
  let idp: TestIssuer;

  before(async () => {
    vault = await openVault();
    idp = await githubIssuer();
    const admin = (method: 'put', path: string, body: object) =>
      request(vault.app)[method](path).set(vault.auth).send(body);
    assert.equal(
      (await admin('put', '/v1/policies/ci-api-read', { rules: [{ path: 'ci/api/*', capabilities: ['read'] }] }))
        .status,
      200,
    );
    assert.equal((await admin('put', '/v1/groups/ci-api', { policies: ['ci-api-read'] })).status, 200);
    const role = await admin('put', '/v1/auth/jwt/roles/github-api', {
      issuer: idp.issuer,
      jwks_url: `${idp.issuer}/.well-known/jwks`,
      bound_audiences: ['coffer'],
      bound_claims: { repository: 'acme/api', ref: 'refs/heads/main' },
      claim_mappings: { repository: 'repository', repository_id: 'repository_id' },
      groups: ['ci-api'],
    });
    assert.equal(role.status, 200, JSON.stringify(role.body));
    for (const path of ['ci/api/db', 'ci/web/db'])
      assert.equal((await admin('put', `/v1/secrets/${path}`, { data: { password: `pw-${path}` } })).status, 200);
  });
  after(async () => {
    await vault.cleanup();
    await idp.close();
  });

  it('logs the job in, reads ci/api/db, and is denied ci/web/db and any write', async () => {
    const login = await request(vault.app)
      .post('/v1/auth/jwt/login')
      .send({ role: 'github-api', jwt: await idp.sign({}) });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    assert.deepEqual(login.body.groups, ['ci-api']);
    assert.equal(login.body.identity, 'jwt:github-api:repo:acme/api:ref:refs/heads/main');
    const expiresIn = Date.parse(login.body.expires_at) - Date.now();
    assert.ok(expiresIn > 0 && expiresIn <= 15 * 60_000, 'CI tokens default to 15 minutes');
    const job = { Authorization: `Bearer ${login.body.token}` };
    const self = await request(vault.app).get('/v1/auth/token/self').set(job);
    assert.deepEqual(
      self.body.meta,
      { repository: 'acme/api', repository_id: '42' },
      'claim_mappings land in the identity',
    );
    const read = await request(vault.app).get('/v1/secrets/ci/api/db').set(job);
    assert.equal(read.status, 200);
    assert.equal(read.body.data.password, 'pw-ci/api/db');
    assert.equal((await request(vault.app).get('/v1/secrets/ci/web/db').set(job)).status, 403);
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/ci/api/db')
          .set(job)
          .send({ data: { x: 'y' } })
      ).status,
      403,
    );
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/ci/api/new')
          .set(job)
          .send({ data: { x: 'y' } })
      ).status,
      403,
    );
    assert.equal((await request(vault.app).delete('/v1/secrets/ci/api/db').set(job)).status, 403);
  });

  it('refuses the same token shape from a feature branch at login', async () => {
    const res = await request(vault.app)
      .post('/v1/auth/jwt/login')
      .send({ role: 'github-api', jwt: await idp.sign({ ref: 'refs/heads/feature' }) });
    assert.equal(res.status, 401);
    assert.deepEqual(Object.keys(res.body.error), ['code', 'message', 'request_id']);
    assert.equal(res.body.error.message, 'claim ref does not match the role');
  });

  it('gives the same answer for an unknown role and a bad signature, and names a mismatched claim', async () => {
    const good = await idp.sign({});
    const tampered = `${good.slice(0, -4)}AAAA`;
    const bodies = await Promise.all([
      request(vault.app).post('/v1/auth/jwt/login').send({ role: 'nope', jwt: good }),
      request(vault.app).post('/v1/auth/jwt/login').send({ role: 'github-api', jwt: tampered }),
      request(vault.app)
        .post('/v1/auth/jwt/login')
        .send({ role: 'github-api', jwt: await idp.sign({ repository: 'acme/api-evil' }) }),
    ]);
    for (const b of bodies) assert.equal(b.status, 401);
    assert.equal(bodies[0]!.body.error.message, JWT_REFUSED);
    assert.equal(bodies[1]!.body.error.message, JWT_REFUSED);
    assert.equal(bodies[2]!.body.error.message, 'claim repository does not match the role');
  });

  it('logs in through the SDK helper the way a workflow step does (runner token endpoint)', async () => {
    const jwt = await idp.sign({});
    const seen: { auth?: string | undefined; audience?: string | null } = {};
    const runner = createServer((req, res) => {
      seen.auth = req.headers.authorization;
      seen.audience = new URL(req.url!, 'http://x').searchParams.get('audience');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ value: jwt }));
    });
    await new Promise<void>((r) => runner.listen(0, '127.0.0.1', r));
    const api = createServer(vault.app).listen(0, '127.0.0.1');
    await new Promise((r) => api.once('listening', r));
    try {
      const client = new Coffer({ addr: `http://127.0.0.1:${(api.address() as AddressInfo).port}` });
      const env = {
        ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${(runner.address() as AddressInfo).port}/token?api-version=2.0`,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-secret',
      };
      const login = await loginGithubActions(client, { role: 'github-api', audience: 'coffer', env });
      assert.equal(login.identity, 'jwt:github-api:repo:acme/api:ref:refs/heads/main');
      assert.deepEqual(seen, { auth: 'Bearer runner-secret', audience: 'coffer' });
      assert.equal((await client.getSecret('ci/api/db')).data.password, 'pw-ci/api/db');
      await assert.rejects(loginGithubActions(client, { role: 'github-api', env: {} }), /id-token: write/);
    } finally {
      runner.close();
      api.close();
    }
  });

  it('refuses a role without a bound audience at configuration time', async () => {
    const res = await request(vault.app)
      .put('/v1/auth/jwt/roles/no-aud')
      .set(vault.auth)
      .send({ issuer: idp.issuer, jwks_url: `${idp.issuer}/.well-known/jwks`, bound_audiences: [] });
    assert.equal(res.status, 400);
    assert.match(res.body.error.message, /bound_audiences/);
    assert.equal((await request(vault.app).get('/v1/auth/jwt/roles/no-aud').set(vault.auth)).status, 404);
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, exportJWK } from 'jose';
import request from 'supertest';
import { wrapForImport } from '../../../sdk/byok.js';
import { TIMESTAMP } from '../../../sdk/wire/time.js';
import { ROUTES, type RouteEntry } from '../../../server/http/route-catalogue.js';
import { openVault, tempDir, type TestVault } from '../../helpers.js';
import { FAST, removeDir, startNode, startPair, until, type Node } from '../replication/cluster.js';
import { keyPair } from '../../key-pairs.js';

/**
 * One time format on the wire (docs/api.md "Conventions", sdk/wire/time.ts): every route of the
 * catalogue is called once with success, and in every JSON answer each field named like a point
 * in time (`*_at`, `*_from`, `*_until`, `since`, `valid_to`) is null or an ISO 8601 UTC string
 * with milliseconds, and no other string is a date in another form.
 */
const TIME_FIELD = /(^|_)(at|from|until|since)$|^valid_to$/;
const DATE_LIKE = /^\d{4}-\d{2}-\d{2}/;

interface Seen {
  route: string;
  body: unknown;
}

/** Every field of `body` that breaks the rule, as `route field: value`. */
function violations(route: string, body: unknown, path = ''): string[] {
  if (Array.isArray(body)) return body.flatMap((v, i) => violations(route, v, `${path}[${i}]`));
  if (body === null || typeof body !== 'object') {
    if (typeof body === 'string' && DATE_LIKE.test(body) && !TIMESTAMP.test(body))
      return [`${route} ${path}: a date not in the wire form: ${body}`];
    return [];
  }
  return Object.entries(body).flatMap(([key, value]) => {
    const at = path ? `${path}.${key}` : key;
    // Secret data and metadata are the caller's own strings, not the server's times.
    if ((key === 'data' || key === 'metadata') && path.split('.').length <= 3) return [];
    if (TIME_FIELD.test(key) && value !== null && !(typeof value === 'string' && TIMESTAMP.test(value)))
      return [`${route} ${at}: ${JSON.stringify(value)}`];
    return violations(route, value, at);
  });
}

/** The catalogue entry a request hit: `{path}` is one or more segments, `{name}` and `{ns}` one. */
function routeOf(method: string, url: string): RouteEntry | undefined {
  const path = url.split('?')[0]!;
  const matches = ROUTES.filter((r) => {
    if (r.method !== method) return false;
    const pattern = r.openapiPath
      .replace(/[.*+?^$()|[\]\\]/g, '\\$&')
      .replace('{path}', '.+')
      .replace(/\{[a-z]+\}/g, '[^/]+');
    return new RegExp(`^${pattern}$`).test(path);
  });
  // The longest template wins (`/v1/secrets/{path}/undelete` over `/v1/secrets/{path}`).
  return matches.sort((a, b) => b.openapiPath.length - a.openapiPath.length)[0];
}

describe('wire time format: every time in every answer is ISO 8601 UTC', function () {
  this.timeout(120_000);
  const seen: Seen[] = [];
  let vault: TestVault;
  const nodes: Node[] = [];
  const dirs: string[] = [];

  after(async () => {
    await vault?.cleanup();
    for (const n of nodes) await n.stop().catch(() => undefined);
    for (const d of dirs) await removeDir(d);
  });

  /** One call through supertest; `expect` is the success status. */
  async function call(
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    url: string,
    body?: object,
    token: string | null = vault.rootToken,
    expect = [200, 204, 202],
  ): Promise<any> {
    let req = request(vault.app)[method.toLowerCase() as 'get'](url);
    if (token) req = req.set('Authorization', `Bearer ${token}`);
    const res = body === undefined ? await req : await req.send(body);
    assert.ok(expect.includes(res.status), `${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
    record(method, url, res.type === 'application/json' ? res.body : undefined);
    return res.body;
  }

  function record(method: string, url: string, body: unknown) {
    const entry = routeOf(method, url);
    assert.ok(entry, `${method} ${url} is in the route catalogue`);
    seen.push({ route: `${entry.method} ${entry.openapiPath}`, body });
  }

  it('a vault through its life: init, unseal, secrets, keys, tokens, logins, admin objects, BYOK, seal', async () => {
    vault = await openVault({ init: false });
    await call('GET', '/v1/sys/health', undefined, null, [501]);
    await call('GET', '/v1/sys/seal-status', undefined, null);
    const init = await call('POST', '/v1/sys/init', { shares: 3, threshold: 2 }, null);
    vault.rootToken = init.root_token;
    vault.shares = init.shares;
    for (const share of init.shares.slice(0, 2)) await call('POST', '/v1/sys/unseal', { share }, null);
    await call('GET', '/v1/sys/health', undefined, null);
    await call('GET', '/v1/sys/openapi.json', undefined, null);
    await call('GET', '/v1/auth/jwks', undefined, null);

    // Secrets, an expiry given with an offset among them.
    await call('PUT', '/v1/secrets/app/db', { data: { password: 'one' }, expires_at: '2030-01-01T00:00:00+02:00' });
    await call('PUT', '/v1/secrets/app/db', { data: { password: 'two' } });
    const secret = await call('GET', '/v1/secrets/app/db?version=1');
    assert.equal(secret.expires_at, '2029-12-31T22:00:00.000Z', 'an offset time comes back in UTC');
    await call('GET', '/v1/metadata/app/db');
    await call('GET', '/v1/secrets?prefix=app');
    await call('GET', '/v1/secrets?expiring_within=3650d');
    await call('POST', '/v1/secrets:batch', { paths: ['app/db', 'app/none'] });
    await call('POST', '/v1/secrets:batch-write', { secrets: [{ path: 'app/bulk', data: { k: 'v' } }] });
    await call('DELETE', '/v1/secrets/app/db?versions=2');
    await call('POST', '/v1/secrets/app/db/undelete', { versions: [2] });
    await call('POST', '/v1/secrets/app/db/destroy', { versions: [1] });
    await call('GET', '/v1/metadata/app/db');

    // The data-key API.
    await call('POST', '/v1/keys/k1', { exportable: false });
    await call('GET', '/v1/keys/k1');
    await call('POST', '/v1/keys/k1/rotate', {});
    await call('POST', '/v1/keys/k1/config', { min_decryption_version: 1 });
    const { ciphertext } = await call('POST', '/v1/keys/k1/encrypt', {
      plaintext: Buffer.from('hello').toString('base64'),
    });
    await call('POST', '/v1/keys/k1/decrypt', { ciphertext });
    await call('POST', '/v1/keys/k1/datakey', {});
    await call('POST', '/v1/keys/k1/rewrap', { ciphertext });

    // Admin objects and logins.
    await call('PUT', '/v1/policies/app-read', { rules: [{ path: 'app/*', capabilities: ['read', 'list'] }] });
    await call('GET', '/v1/policies/app-read');
    await call('GET', '/v1/policies');
    await call('PUT', '/v1/groups/devs', { policies: ['app-read'], members: ['user:alice'] });
    await call('GET', '/v1/groups/devs');
    await call('GET', '/v1/groups');
    await call('PUT', '/v1/auth/userpass/users/alice', { password: 'correct horse battery', policies: ['app-read'] });
    await call('GET', '/v1/auth/userpass/users/alice');
    await call('GET', '/v1/auth/userpass/users');
    const alice = await call(
      'POST',
      '/v1/auth/userpass/login',
      { username: 'alice', password: 'correct horse battery' },
      null,
    );
    await call('GET', '/v1/auth/token/self', undefined, alice.token);
    await call('POST', '/v1/auth/token/renew', {}, alice.token);
    const role = await call('PUT', '/v1/auth/approle/roles/builder', { policies: ['app-read'], secret_id_ttl: '1h' });
    await call('GET', '/v1/auth/approle/roles/builder');
    await call('GET', '/v1/auth/approle/roles');
    const secretId = await call('POST', '/v1/auth/approle/roles/builder/secret-id', {});
    assert.ok(secretId.expires_at, 'a secret_id with a TTL has an expiry');
    await call('POST', '/v1/auth/approle/login', { role_id: role.role_id, secret_id: secretId.secret_id }, null);
    const idp = keyPair('ed25519');
    await call('PUT', '/v1/auth/jwt/roles/ci', {
      issuer: 'https://idp.example.test',
      jwks: { keys: [{ ...(await exportJWK(idp.publicKey)), kid: 'k1', alg: 'EdDSA', use: 'sig' }] },
      allowed_algorithms: ['EdDSA'],
      bound_audiences: ['coffer'],
      bound_subject: 'repo:acme/app',
      policies: ['app-read'],
    });
    await call('GET', '/v1/auth/jwt/roles/ci');
    await call('GET', '/v1/auth/jwt/roles');
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'EdDSA', kid: 'k1', typ: 'JWT' })
      .setIssuer('https://idp.example.test')
      .setAudience('coffer')
      .setSubject('repo:acme/app')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(idp.privateKey);
    await call('POST', '/v1/auth/jwt/login', { role: 'ci', jwt }, null);
    const minted = await call('POST', '/v1/auth/token/create', {
      identity: 'svc:deployer',
      policies: ['app-read'],
      ttl: '10m',
    });
    await call('POST', '/v1/auth/token/revoke', { token: minted.token });
    await call('POST', '/v1/auth/jwks/rotate', { retire_previous: false });

    // System.
    await call('GET', '/v1/sys/audit');
    await call('GET', '/v1/sys/audit/lines');
    await call('GET', '/v1/auth/token/capabilities?path=app/db');
    await call('POST', '/v1/sys/rotate', {});
    await call('GET', '/v1/sys/keyrings/app');
    await call('POST', '/v1/sys/keyrings/app/rotate', { rewrap: true });
    await vault.rewrap.idle();
    const keyring = await call('GET', '/v1/sys/keyrings/app');
    assert.ok(keyring.rewrap?.finished_at, 'the rewrap finished, with its times');
    const metrics = await request(vault.app).get('/v1/sys/metrics').set('Authorization', `Bearer ${vault.rootToken}`);
    assert.equal(metrics.status, 200);
    record('GET', '/v1/sys/metrics', undefined);
    const backup = await request(vault.app)
      .get('/v1/sys/backup')
      .set('Authorization', `Bearer ${vault.rootToken}`)
      .buffer(true)
      .parse((res, done) => {
        res.on('data', () => undefined);
        res.on('end', () => done(null, undefined));
      });
    assert.equal(backup.status, 200);
    record('GET', '/v1/sys/backup', undefined);

    // BYOK: rights with an offset time, import, export under quorum; the seal status shows them.
    const wrapping = await call(
      'GET',
      `/v1/sys/byok/wrapping-key?exportable=true&valid_to=${encodeURIComponent('2040-06-01T12:00:00+02:00')}`,
    );
    assert.equal(wrapping.valid_to, '2040-06-01T10:00:00.000Z');
    const imported = await call('POST', '/v1/sys/byok/import', {
      import_token: wrapping.import_token,
      wrapped_key: wrapForImport(wrapping.public_key_pem, new Uint8Array(randomBytes(32))),
      valid_to: '2040-06-01T10:00:00Z',
    });
    assert.equal(imported.valid_to, '2040-06-01T10:00:00.000Z');
    const customer = keyPair('rsa', { modulusLength: 3072 })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    await call('POST', '/v1/sys/byok/export', { public_key_pem: customer, shares: vault.shares.slice(0, 2) });
    const status = await call('GET', '/v1/sys/seal-status', undefined, null);
    assert.equal(status.master_key?.valid_to, '2040-06-01T10:00:00.000Z');

    // Deletions (alice's token first: deleting alice ends it), then the seal.
    await call('POST', '/v1/auth/token/revoke', {}, alice.token);
    for (const url of [
      '/v1/policies/app-read',
      '/v1/groups/devs',
      '/v1/auth/userpass/users/alice',
      '/v1/auth/approle/roles/builder',
      '/v1/auth/jwt/roles/ci',
    ])
      await call('DELETE', url);
    await call('POST', '/v1/sys/seal', {});
  });

  it('replication: a primary, its replica, a snapshot and a promotion that waits out the lease', async () => {
    const { bucket, primary: p, replica: r } = await startPair({ nodes, dirs });
    const token = p.server.rootToken!;
    const json = async (node: Node, method: string, path: string, body?: unknown) => {
      const res = await node.call(method, path, body, token);
      assert.ok([200, 202].includes(res.status), `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      record(method, path, res.body);
      return res.body;
    };
    assert.equal((await p.call('PUT', '/v1/secrets/app/a', { data: { v: 'alpha' } }, token)).status, 200);
    await until(
      async () => (await r.call('GET', '/v1/secrets/app/a', undefined, token)).status === 200,
      10_000,
      'the replica has app/a',
    );
    await until(
      async () => (await p.call('GET', '/v1/sys/replication', undefined, token)).body.targets?.[0]?.last_ok_at,
      10_000,
      'a shipped target',
    );
    const shipping = await json(p, 'GET', '/v1/sys/replication');
    assert.ok(
      shipping.targets[0].last_ok_at && shipping.targets[0].lease_until,
      'the target shows when it last shipped and its lease',
    );
    await json(p, 'POST', '/v1/sys/replication/snapshot', {});
    const following = await json(r, 'GET', '/v1/sys/replication');
    assert.ok(following.replica?.verified_head_at, 'the replica shows when it last verified the head');

    // A replica whose bucket goes away says so, with the time (a second replica, of a copy of the bucket).
    const copy = await tempDir('coffer-bucket-copy-');
    dirs.push(copy);
    // (the primary writes the bucket meanwhile: a file may vanish under the copy, which then starts over)
    await until(
      () => cp(bucket, copy, { recursive: true, force: true }).then(() => true),
      10_000,
      'a copy of the bucket',
    );
    const r2 = await startNode({ replica_of: `file://${copy}`, kekFile: join(p.dir, 'kek.key'), ...FAST });
    nodes.push(r2);
    dirs.push(r2.dir);
    await until(
      async () => (await r2.call('GET', '/v1/secrets/app/a', undefined, token)).status === 200,
      10_000,
      'the second replica has app/a',
    );
    await rm(copy, { recursive: true, force: true });
    const failing = await until(
      async () => {
        const body = (await r2.call('GET', '/v1/sys/replication', undefined, token)).body;
        return body.replica?.error ? body : undefined;
      },
      10_000,
      'a replication error',
    );
    record('GET', '/v1/sys/replication', failing);
    assert.ok(failing.replica.error.at);
    await r2.stop();

    // The old primary's lease (3 s) still runs: the promotion shows when writes start.
    await p.stop();
    const promoted = r.call('POST', '/v1/sys/replication/promote', {}, token);
    const waiting = await until(
      async () => {
        const body = (await r.call('GET', '/v1/sys/replication', undefined, token)).body;
        return body.role === 'primary' && body.writes_from ? body : undefined;
      },
      15_000,
      'writes_from during the promotion',
    );
    record('GET', '/v1/sys/replication', waiting);
    const answer = await promoted;
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    record('POST', '/v1/sys/replication/promote', answer.body);
    assert.equal(answer.body.writes_from, waiting.writes_from, 'the answer and the status name the same instant');
  });

  it('every route answered, and every time in the answers is ISO 8601 UTC with milliseconds', () => {
    const answered = new Set(seen.map((s) => s.route));
    // The Vault-compatible routes (and the PUT twins of the logins) answer in Vault's shape; test/server/http/vault/ checks them.
    const missing = ROUTES.filter((r) => r.tag !== 'vault' && !(r.method === 'PUT' && r.stage === 'login'))
      .map((r) => `${r.method} ${r.openapiPath}`)
      .filter((r) => !answered.has(r));
    assert.deepEqual(missing, [], 'routes this test did not call');
    assert.deepEqual(
      seen.filter((s) => s.route !== 'GET /v1/sys/openapi.json').flatMap((s) => violations(s.route, s.body)),
      [],
    );
    // The check sees what it should.
    assert.deepEqual(
      violations('X', {
        a: { created_at: 1700000000000 },
        b: [{ since: '2020-01-01T00:00:00Z' }],
        c: '2020-01-01',
        lag_ms: 5,
        writes_from: null,
      }),
      [
        'X a.created_at: 1700000000000',
        'X b[0].since: "2020-01-01T00:00:00Z"',
        'X c: a date not in the wire form: 2020-01-01',
      ],
    );
    assert.ok(
      seen.some(
        (s) =>
          s.route === 'GET /v1/sys/replication' &&
          typeof (s.body as { writes_from?: unknown }).writes_from === 'string',
      ),
      'a writes_from was seen in the status',
    );
  });
});

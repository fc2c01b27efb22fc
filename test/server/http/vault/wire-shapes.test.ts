import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import request from 'supertest';
import { DEFAULT_VAULT_SETTINGS, cofferPath, vaultSettings } from '../../../../server/http/vault/mounts.js';
import { vaultHealthFields } from '../../../../server/http/vault/sys.js';
import { raw, rawRequests, vaultFixture, type VaultFixture } from './fixture.js';

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

/** The envelope of every Vault answer with a body (route.ts `envelope`), around `data` and `auth`. */
const envelope = (requestId: string, data: unknown, auth: unknown = null) => ({
  request_id: requestId,
  lease_id: '',
  renewable: false,
  lease_duration: 0,
  data,
  wrap_info: null,
  warnings: null,
  auth,
});

const kvMount = (mount: string, description: string) => ({
  type: 'kv',
  description,
  accessor: `kv_${mount}`,
  config: { default_lease_ttl: 0, max_lease_ttl: 0, force_no_cache: false },
  options: { version: '2' },
  local: false,
  seal_wrap: false,
  external_entropy_access: false,
});

/**
 * The Vault wire shapes of the sys, token and login routes, whole (docs/vault-compatibility.md),
 * the 405 answers, and which Content-Types a Vault body may carry: over a real HTTP server.
 */
describe('Vault API: whole wire shapes, 405s, Content-Types', function () {
  this.timeout(30_000);
  let f: VaultFixture;
  let now = 0;
  const lines: { msg: string; [k: string]: unknown }[] = [];
  const http = () => request(f.url);
  const seconds = () => Math.floor(now / 1000);

  before(async () => {
    now = Date.now(); // mocha loads every file first: a clock read at load time is minutes old by now
    const log = pino(
      { level: 'info' },
      new Writable({ write: (chunk, _e, done) => (lines.push(JSON.parse(String(chunk))), done()) }),
    );
    f = await vaultFixture({
      now: () => now,
      log,
      vault: vaultSettings(['secret', 'team=ci/team'], ['github']),
    });
  });
  after(() => f.close());
  afterEach(() => (now = Date.now()));

  const root = () => ({ 'X-Vault-Token': f.vault.rootToken });
  const jwtLogin = async (claims: Record<string, unknown> = {}) => {
    const res = await http()
      .post('/v1/auth/jwt/login')
      .send({ role: 'ci', jwt: await f.idp.sign(claims) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };
  /** A token minted by root (so with a parent): `ttl` and `max_ttl` in seconds. */
  const child = async (ttl: number, maxTtl: number) => {
    const res = await http()
      .post('/v1/auth/token/create')
      .set(f.vault.auth)
      .send({ identity: 'svc:child', ttl, max_ttl: maxTtl });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.token as string;
  };
  // `any`: assert.deepEqual narrows its argument to the expected value's type.
  const lookup = async (token: string): Promise<any> => {
    const res = await http().get('/v1/auth/token/lookup-self').set('X-Vault-Token', token);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  };

  describe('mounts', () => {
    it('sys/internal/ui/mounts answers the whole mount, with and without a prefix (which it does not show)', async () => {
      const plain = await http().get('/v1/sys/internal/ui/mounts/secret/ci/app').set(root());
      assert.equal(plain.status, 200);
      assert.deepEqual(
        plain.body,
        envelope(plain.headers['x-request-id']!, {
          path: 'secret/',
          ...kvMount('secret', 'Coffer secrets (KV version 2)'),
        }),
      );
      const team = await http().get('/v1/sys/internal/ui/mounts/team/app').set(root());
      assert.equal(team.status, 200);
      assert.deepEqual(
        team.body,
        envelope(team.headers['x-request-id']!, {
          path: 'team/',
          ...kvMount('team', 'Coffer secrets (KV version 2)'),
        }),
      );
      const none = await http().get('/v1/sys/internal/ui/mounts/ci/app').set(root());
      assert.equal(none.status, 404);
      assert.deepEqual(none.body, { errors: [] }, "Vault's plain 404");
    });

    it('sys/mounts lists every KV mount at the top level and in data', async () => {
      const res = await http().get('/v1/sys/mounts').set(root());
      assert.equal(res.status, 200);
      const mounts = {
        'secret/': kvMount('secret', 'Coffer secrets (KV version 2)'),
        'team/': kvMount('team', 'Coffer secrets (KV version 2)'),
      };
      assert.deepEqual(res.body, { ...mounts, ...envelope(res.headers['x-request-id']!, mounts) });
      assert.ok(!res.text.includes('ci/team'), 'any token reads this: a prefix would name namespaces');
    });

    it('both refuse a query parameter, naming it', async () => {
      for (const path of ['/v1/sys/mounts?x=1', '/v1/sys/internal/ui/mounts/secret/a?x=1']) {
        const res = await http().get(path).set(root());
        assert.equal(res.status, 400, path);
        assert.deepEqual(res.body, { errors: ['query: unknown field x'] }, path);
      }
    });

    it('vaultSettings reads `name` and `name=prefix`; jwt is always an auth mount; the default is secret and jwt', () => {
      assert.deepEqual(vaultSettings(['secret', 'team=ci/team', 'deep=a/b'], ['github', 'jwt']), {
        kvMounts: new Map([
          ['secret', ''],
          ['team', 'ci/team'],
          ['deep', 'a/b'],
        ]),
        jwtMounts: ['jwt', 'github'],
      });
      assert.deepEqual(vaultSettings([], []), { kvMounts: new Map(), jwtMounts: ['jwt'] });
      assert.deepEqual(DEFAULT_VAULT_SETTINGS, { kvMounts: new Map([['secret', '']]), jwtMounts: ['jwt'] });
    });

    it("cofferPath puts a path below the mount's prefix, the mount root being the prefix itself", () => {
      assert.equal(cofferPath('', 'app/db'), 'app/db');
      assert.equal(cofferPath('', ''), '');
      assert.equal(cofferPath('ci/team', 'app/db'), 'ci/team/app/db');
      assert.equal(cofferPath('ci/team', ''), 'ci/team');
    });
  });

  describe('sys/health', () => {
    it("Vault's fields, whole", () => {
      assert.deepEqual(vaultHealthFields(false, 1_700_000_000_999), {
        standby: false,
        performance_standby: false,
        replication_performance_mode: 'disabled',
        replication_dr_mode: 'disabled',
        server_time_utc: 1_700_000_000,
        cluster_name: 'coffer',
      });
      assert.equal(vaultHealthFields(true, 0).standby, true);
    });

    it('the answer of an active node, whole, its server time in seconds', async () => {
      const before = Math.floor(Date.now() / 1000);
      const res = await http().get('/v1/sys/health');
      const after = Math.floor(Date.now() / 1000);
      assert.equal(res.status, 200);
      const { server_time_utc: time, ...rest } = res.body;
      assert.ok(time >= before && time <= after, `server_time_utc ${time} within [${before}, ${after}]`);
      assert.deepEqual(rest, {
        initialized: true,
        sealed: false,
        role: 'primary',
        version: 'test',
        standby: false,
        performance_standby: false,
        replication_performance_mode: 'disabled',
        replication_dr_mode: 'disabled',
        cluster_name: 'coffer',
      });
    });
  });

  describe('tokens', () => {
    it("a jwt login's auth object, whole; lookup-self of that token, whole", async () => {
      now = Date.now();
      const login = await jwtLogin();
      const sub = 'jwt:ci:project_path:acme/api';
      const { auth } = login;
      assert.deepEqual(auth, {
        client_token: login.token,
        accessor: auth.accessor,
        policies: [],
        token_policies: [],
        identity_policies: [],
        metadata: { project_path: 'acme/api' },
        lease_duration: 900,
        renewable: true,
        entity_id: sub,
        token_type: 'service',
        orphan: true,
        mfa_requirement: null,
        num_uses: 0,
      });
      assert.match(auth.accessor, /^[A-Za-z0-9_-]{16,64}$/);
      const look = await lookup(login.token);
      assert.deepEqual(
        look,
        envelope(look.request_id, {
          accessor: auth.accessor,
          creation_time: seconds(),
          creation_ttl: 900,
          display_name: sub,
          entity_id: sub,
          expire_time: iso(seconds() + 900),
          explicit_max_ttl: 3600,
          groups: ['ci'],
          issue_time: iso(seconds()),
          meta: { project_path: 'acme/api' },
          num_uses: 0,
          orphan: true,
          path: 'auth/jwt/login',
          policies: [],
          renewable: true,
          ttl: 900,
          type: 'service',
        }),
      );
    });

    it('a login without metadata: `metadata` is {} in the auth object, `meta` is null in lookup-self', async () => {
      const login = await jwtLogin({ project_path: undefined });
      assert.deepEqual(login.auth.metadata, {});
      const look = await lookup(login.token);
      assert.equal(look.data.meta, null);
      assert.equal(look.data.display_name, 'jwt:ci:project_path:acme/api');
    });

    it('a minted token: not an orphan, renewable; renew-self answers its whole auth object and moves its times', async () => {
      const start = seconds();
      const token = await child(600, 3600);
      const look = await lookup(token);
      const accessor = look.data.accessor as string;
      assert.deepEqual(
        look,
        envelope(look.request_id, {
          accessor,
          creation_time: start,
          creation_ttl: 600,
          display_name: 'svc:child',
          entity_id: 'svc:child',
          expire_time: iso(start + 600),
          explicit_max_ttl: 3600,
          groups: [],
          issue_time: iso(start),
          meta: null,
          num_uses: 0,
          orphan: false,
          path: 'auth/token/create',
          policies: [],
          renewable: true,
          ttl: 600,
          type: 'service',
        }),
      );

      now += 300_000; // half its TTL passes
      const renew = await http().put('/v1/auth/token/renew-self').set('X-Vault-Token', token);
      assert.equal(renew.status, 200, JSON.stringify(renew.body));
      assert.deepEqual(
        renew.body,
        envelope(renew.headers['x-request-id']!, null, {
          client_token: token,
          accessor,
          policies: [],
          token_policies: [],
          identity_policies: [],
          metadata: {},
          lease_duration: 600,
          renewable: true,
          entity_id: 'svc:child',
          token_type: 'service',
          orphan: false,
          mfa_requirement: null,
          num_uses: 0,
        }),
      );
      const renewed = (await lookup(token)).data;
      // The same token: its signed times stay, only its expiry moved (its TTL from now).
      assert.equal(renewed.creation_time, start);
      assert.equal(renewed.creation_ttl, 600);
      assert.equal(renewed.explicit_max_ttl, 3600);
      assert.equal(renewed.expire_time, iso(start + 900));
      assert.equal(renewed.ttl, 600);
    });

    it('a token whose TTL is its max TTL is not renewable, and renew-self says so', async () => {
      const token = await child(600, 600);
      const look = await lookup(token);
      assert.equal(look.data.renewable, false);
      assert.equal(look.data.creation_ttl, 600);
      assert.equal(look.data.explicit_max_ttl, 600);
      const renew = await http().post('/v1/auth/token/renew-self').set('X-Vault-Token', token);
      assert.equal(renew.status, 403);
      assert.deepEqual(renew.body, {
        errors: [`token reached its maximum lifetime (expires ${look.data.expire_time}): log in again`],
      });
    });

    it('the root token: lookup-self whole; renew-self refused as not renewable (400)', async () => {
      const look = await lookup(f.vault.rootToken);
      const tenYears = 10 * 365 * 86_400;
      assert.deepEqual(
        look,
        envelope(look.request_id, {
          accessor: look.data.accessor,
          creation_time: look.data.creation_time,
          creation_ttl: tenYears,
          display_name: 'root',
          entity_id: 'root',
          expire_time: null,
          explicit_max_ttl: tenYears,
          groups: [],
          issue_time: iso(look.data.creation_time),
          meta: null,
          num_uses: 0,
          orphan: true,
          path: 'auth/token/root',
          policies: [],
          renewable: false,
          ttl: 0,
          type: 'service',
        }),
      );
      for (const method of ['post', 'put'] as const) {
        const renew = await http()[method]('/v1/auth/token/renew-self').set(root());
        assert.equal(renew.status, 400);
        assert.deepEqual(renew.body, { errors: ['the root token is not renewable'] });
      }
    });

    it('lookup-self, renew-self and revoke-self refuse a query parameter, naming it, and change nothing', async () => {
      const token = (await jwtLogin()).token as string;
      const vt = { 'X-Vault-Token': token };
      for (const res of [
        await http().get('/v1/auth/token/lookup-self?x=1').set(vt),
        await http().post('/v1/auth/token/renew-self?x=1').set(vt),
        await http().post('/v1/auth/token/revoke-self?x=1').set(vt),
      ]) {
        assert.equal(res.status, 400);
        assert.deepEqual(res.body, { errors: ['query: unknown field x'] });
      }
      assert.equal((await lookup(token)).data.ttl, 900, 'neither renewed nor revoked');
    });

    it('revoke-self: 204 with no body, a log line naming who, and the token no longer works', async () => {
      const login = await jwtLogin();
      const vt = { 'X-Vault-Token': login.token };
      const res = await http().post('/v1/auth/token/revoke-self').set(vt);
      assert.equal(res.status, 204);
      assert.equal(res.text, '');
      const line = lines.find((l) => l.msg === 'token revoked' && l.request_id === res.headers['x-request-id']);
      assert.ok(line, 'the revocation is logged with its request id');
      assert.equal(line.by, 'jwt:ci:project_path:acme/api');
      assert.ok(!JSON.stringify(line).includes(login.token), 'never the token');
      assert.equal((await http().get('/v1/auth/token/lookup-self').set(vt)).status, 403);
    });
  });

  describe('405', () => {
    it('another method answers 405 in Vault’s shape with Allow: the route’s methods, HEAD with GET', async () => {
      const cases: [string, string, string][] = [
        ['DELETE', '/v1/auth/token/lookup-self', 'GET, HEAD'],
        ['POST', '/v1/sys/mounts', 'GET, HEAD'],
        ['GET', '/v1/auth/token/renew-self', 'POST, PUT'],
        ['DELETE', '/v1/auth/token/revoke-self', 'POST, PUT'],
      ];
      for (const [method, path, allow] of cases) {
        const res = await http()[method.toLowerCase() as 'get'](path).set(root());
        assert.equal(res.status, 405, `${method} ${path}`);
        assert.equal(res.headers.allow, allow, `${method} ${path}`);
        assert.deepEqual(res.body, { errors: ['method not allowed on this route'] });
      }
    });
  });

  describe('Content-Type of a Vault body', () => {
    const put = (type: string | undefined, body = '{"data":{"k":"v"}}') =>
      raw(
        'PUT',
        '/v1/secret/data/ci/content-type',
        { 'X-Vault-Token': f.vault.rootToken, ...(type === undefined ? {} : { 'Content-Type': type }) },
        body,
      );
    const patch = (type: string) =>
      raw(
        'PATCH',
        '/v1/secret/data/ci/content-type',
        { 'X-Vault-Token': f.vault.rootToken, 'Content-Type': type },
        '{"data":{"k":"w"}}',
      );

    it('a write takes JSON labelled as JSON or a form (charset allowed), or unlabelled; refuses anything else', async () => {
      const accepted = [
        undefined,
        'application/json',
        'Application/JSON',
        'application/json;charset=utf-8',
        'application/json; charset=utf-8',
        'application/json ; charset=UTF-8',
        'application/json;   charset=utf-8',
        'application/x-www-form-urlencoded',
        'application/x-www-form-urlencoded ; charset=utf-8',
        'application/x-www-form-urlencoded; charset=utf-8',
        'application/x-www-form-urlencoded;',
      ];
      const refused = [
        'application/jsonx',
        'xapplication/json',
        'application/json; charset=utf-8x',
        'application/json; charset=latin1',
        'application/json;',
        'text/plain',
        'application/x-www-form-urlencodedx',
        'xapplication/x-www-form-urlencoded',
        'application/merge-patch+json',
      ];
      const answers = await rawRequests(
        f.port,
        [...accepted, ...refused].map((t) => put(t)),
      );
      accepted.forEach((type, i) => assert.equal(answers[i]!.status, 200, `${type}: ${answers[i]!.body}`));
      refused.forEach((type, i) => {
        const res = answers[accepted.length + i]!;
        assert.equal(res.status, 415, `${type}: ${res.body}`);
        assert.deepEqual(res.json(), { errors: ['request body must be JSON (application/json, or no Content-Type)'] });
      });
      const read = await http().get('/v1/secret/data/ci/content-type').set(root());
      assert.equal(read.body.data.metadata.version, accepted.length, 'each accepted write one version, no other');
    });

    it('a PATCH takes application/merge-patch+json only (charset allowed); refuses anything else', async () => {
      const accepted = [
        'application/merge-patch+json',
        'Application/Merge-Patch+JSON',
        'application/merge-patch+json;charset=utf-8',
        'application/merge-patch+json; charset=utf-8',
        'application/merge-patch+json ; charset=utf-8',
      ];
      const refused = [
        'application/merge-patch+jsonx',
        'xapplication/merge-patch+json',
        'application/merge-patch+json; charset=utf-8x',
        'application/merge-patch+json;',
        'application/json',
      ];
      const [first] = await rawRequests(f.port, [put(undefined)]);
      assert.equal(first!.status, 200, first!.body);
      const version = () => http().get('/v1/secret/data/ci/content-type').set(root());
      const start = (await version()).body.data.metadata.version as number;
      const answers = await rawRequests(f.port, [...accepted, ...refused].map(patch));
      accepted.forEach((type, i) => assert.equal(answers[i]!.status, 200, `${type}: ${answers[i]!.body}`));
      refused.forEach((type, i) => {
        const res = answers[accepted.length + i]!;
        assert.equal(res.status, 415, `${type}: ${res.body}`);
        assert.deepEqual(res.json(), { errors: ['PATCH takes application/merge-patch+json'] });
      });
      assert.equal((await version()).body.data.metadata.version, start + accepted.length);
    });
  });
});

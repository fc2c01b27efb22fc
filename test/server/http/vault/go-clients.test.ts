import assert from 'node:assert/strict';
import request from 'supertest';
import { raw, rawRequests, vaultFixture, type RawResponse, type VaultFixture } from './fixture.js';

/**
 * The request sequences of Vault's Go clients, replayed as raw HTTP/1.1 the way the Go `api`
 * client puts them on the wire (docs/vault-compatibility.md): `X-Vault-Request: true` on every
 * request (hashicorp/vault api/client.go, NewRequest), the token in `X-Vault-Token`, JSON bodies
 * from a json.Encoder (a trailing newline) with a Content-Length and NO Content-Type
 * (hashicorp/vault api/request.go, SetJSONBody and ToHTTP), writes as PUT
 * (api/logical.go, WriteWithContext), listings as `GET ?list=true` (api/logical.go, list),
 * and Go's net/http habits (User-Agent, Accept-Encoding: gzip, Content-Length: 0 on a PUT
 * without a body).
 */
describe('Vault API: Go clients replayed as raw requests', function () {
  this.timeout(30_000);
  let f: VaultFixture;
  const app = () => request(f.vault.app);
  const root = () => f.vault.rootToken;

  /** One request as the Go api client sends it. `namespace`: the client's SetNamespace value (sent even when empty). */
  function go(
    method: string,
    target: string,
    options: { token?: string; body?: object; namespace?: string } = {},
  ): string {
    const headers: Record<string, string> = { 'User-Agent': 'Go-http-client/1.1', 'Accept-Encoding': 'gzip' };
    if (options.token !== undefined) headers['X-Vault-Token'] = options.token;
    if (options.namespace !== undefined) headers['X-Vault-Namespace'] = options.namespace;
    headers['X-Vault-Request'] = 'true';
    const body = options.body ? `${JSON.stringify(options.body)}\n` : method === 'PUT' ? '' : undefined;
    return raw(method, target, headers, body);
  }
  const one = async (text: string): Promise<RawResponse> => (await rawRequests(f.port, [text]))[0]!;
  const json = (res: RawResponse) => {
    assert.match(res.headers['content-type'] ?? '', /^application\/json/, res.body);
    assert.equal(res.headers['content-encoding'], undefined);
    return res.json();
  };

  before(async () => {
    f = await vaultFixture();
    const seed = await app()
      .put('/v1/secrets/ci/app/db')
      .set(f.vault.auth)
      .send({ data: { password: 'pw-1', user: 'app' } });
    assert.equal(seed.status, 200);
  });
  after(() => f.close());

  it('GitLab runner: jwt login with {jwt, role} on auth/<mount>/login, then a KV v2 read of one field', async () => {
    // gitlabhq/gitlab-runner helpers/vault/auth_methods/jwt/auth.go: client.Write("auth/<path>/login", {jwt, role});
    // helpers/vault/client.go: SetNamespace(namespace) sends the header, empty when none is configured;
    // helpers/vault/secret_engines/kv_v2/engine.go: Read("<engine path>/data/<path>"), the field picked from data.data.
    const jwt = await f.idp.sign();
    const login = await one(go('PUT', '/v1/auth/jwt/login', { body: { jwt, role: 'ci' }, namespace: '' }));
    assert.equal(login.status, 200, login.body);
    const token = json(login).auth.client_token as string;
    assert.ok(token.length > 20);
    // `secrets: DATABASE_PASSWORD: vault: ci/app/db/password@secret`
    const read = await one(go('GET', '/v1/secret/data/ci/app/db', { token, namespace: '' }));
    assert.equal(read.status, 200, read.body);
    assert.equal(json(read).data.data.password, 'pw-1');
    // A secret that does not exist: the Go client's Read turns 404 into "no secret" (api/logical.go).
    const missing = await one(go('GET', '/v1/secret/data/ci/app/none', { token, namespace: '' }));
    assert.equal(missing.status, 404);
    assert.deepEqual(json(missing), { errors: [] });
    const refused = await one(go('PUT', '/v1/auth/jwt/login', { body: { jwt: 'not-a-jwt', role: 'ci' } }));
    // The login path is shared with the native API: its status, with Vault's `errors` beside Coffer's `error`.
    assert.equal(refused.status, 401, refused.body);
    assert.match(json(refused).errors[0], /^permission denied: token not accepted/);
    assert.equal(json(refused).error.code, 'unauthenticated');
  });

  it('External Secrets Operator: read, PushSecret (metadata first, then data with cas) and the delete flow', async () => {
    // external-secrets/external-secrets providers/v1/vault/client_get.go (readSecret, readSecretMetadata)
    // and client_push.go (PushSecret, pushSecretKV2, getCASVersion, DeleteSecret); its policy in Vault paths.
    const policy = await app()
      .put('/v1/policies/eso')
      .set(f.vault.auth)
      .send({
        rules: [
          { path: 'secret/data/eso/*', capabilities: ['read', 'create', 'update', 'delete'] },
          { path: 'secret/metadata/eso/*', capabilities: ['list', 'read', 'delete'] },
        ],
      });
    assert.equal(policy.status, 200, JSON.stringify(policy.body));
    const created = await app()
      .post('/v1/auth/token/create')
      .set(f.vault.auth)
      .send({ identity: 'svc:eso', policies: ['eso'] });
    const token = created.body.token as string;

    // PushSecret of a new secret: the read finds nothing, ownership is written to the metadata
    // before the data exists, then the data with cas 0 (CheckAndSet.Required).
    const absent = await one(go('GET', '/v1/secret/data/eso/pushed', { token }));
    assert.equal(absent.status, 404);
    const meta = { custom_metadata: { 'managed-by': 'external-secrets' } };
    const metaWrite = await one(go('PUT', '/v1/secret/metadata/eso/pushed', { token, body: meta }));
    assert.equal(metaWrite.status, 204, metaWrite.body);
    const first = await one(
      go('PUT', '/v1/secret/data/eso/pushed', { token, body: { data: { key: 'v1' }, options: { cas: 0 } } }),
    );
    assert.equal(first.status, 200, first.body);
    assert.equal(json(first).data.version, 1);

    // The next push: read the data, the metadata (managed-by), the metadata again for the cas version.
    const [data, owner, forCas] = await rawRequests(f.port, [
      go('GET', '/v1/secret/data/eso/pushed', { token }),
      go('GET', '/v1/secret/metadata/eso/pushed', { token }),
      go('GET', '/v1/secret/metadata/eso/pushed', { token }),
    ]);
    assert.deepEqual(json(data!).data.data, { key: 'v1' });
    assert.equal(json(data!).data.metadata.custom_metadata['managed-by'], 'external-secrets');
    assert.equal(json(owner!).data.custom_metadata['managed-by'], 'external-secrets');
    const cas = json(forCas!).data.current_version as number;
    assert.equal(cas, 1);
    const second = await one(
      go('PUT', '/v1/secret/data/eso/pushed', { token, body: { data: { key: 'v2' }, options: { cas } } }),
    );
    assert.equal(second.status, 200, second.body);
    assert.equal(json(second).data.version, 2);
    assert.deepEqual(json(second).data.custom_metadata, { 'managed-by': 'external-secrets' }, 'metadata kept');
    // A push racing another writer (a stale cas) is refused and writes nothing.
    const stale = await one(
      go('PUT', '/v1/secret/data/eso/pushed', { token, body: { data: { key: 'lost' }, options: { cas } } }),
    );
    assert.equal(stale.status, 400);
    assert.equal(json(stale).errors.length, 1);

    // An ExternalSecret with `version: "1"` reads that version.
    const old = await one(go('GET', '/v1/secret/data/eso/pushed?version=1', { token }));
    assert.deepEqual(json(old).data.data, { key: 'v1' });

    // DeleteSecret: read the data and the metadata (managed-by), then DELETE data and DELETE metadata.
    const [d1, d2, del, purge, gone, goneMeta] = await rawRequests(f.port, [
      go('GET', '/v1/secret/data/eso/pushed', { token }),
      go('GET', '/v1/secret/metadata/eso/pushed', { token }),
      go('DELETE', '/v1/secret/data/eso/pushed', { token }),
      go('DELETE', '/v1/secret/metadata/eso/pushed', { token }),
      go('GET', '/v1/secret/data/eso/pushed', { token }),
      go('GET', '/v1/secret/metadata/eso/pushed', { token }),
    ]);
    assert.equal(json(d1!).data.data.key, 'v2');
    assert.equal(d2!.status, 200);
    assert.equal(del!.status, 204, del!.body);
    assert.equal(purge!.status, 204, purge!.body);
    assert.equal(gone!.status, 404);
    assert.deepEqual(json(gone!), { errors: [] }, 'every version and the metadata erased');
    assert.equal(goneMeta!.status, 404);
    // Outside its policy the operator's token reads nothing.
    const denied = await one(go('GET', '/v1/secret/data/ci/app/db', { token }));
    assert.equal(denied.status, 403);
    assert.ok(!denied.body.includes('pw-1'));
  });

  it('the vault CLI: kv put / get / list, each after the sys/internal/ui/mounts preflight', async () => {
    // hashicorp/vault command/kv_helpers.go (kvPreflightVersionRequest: GET sys/internal/ui/mounts/<path>,
    // options.version "2"; kvReadRequest), command/kv_put.go ({data, options: {}} and options.cas with -cas),
    // command/kv_list.go (Logical().List on <mount>/metadata/<path>: GET ?list=true).
    const token = root();
    const preflight = async (path: string) => {
      const res = await one(go('GET', `/v1/sys/internal/ui/mounts/${path}`, { token }));
      assert.equal(res.status, 200, res.body);
      const body = json(res);
      assert.equal(body.data.path, 'secret/');
      assert.equal(body.data.type, 'kv');
      assert.equal(body.data.options.version, '2');
    };
    // vault kv put secret/ci/cli user=ops pass=s3cret
    await preflight('secret/ci/cli');
    const put = await one(
      go('PUT', '/v1/secret/data/ci/cli', { token, body: { data: { pass: 's3cret', user: 'ops' }, options: {} } }),
    );
    assert.equal(put.status, 200, put.body);
    assert.equal(json(put).data.version, 1);
    // vault kv put -cas=1 secret/ci/cli pass=rotated
    const casPut = await one(
      go('PUT', '/v1/secret/data/ci/cli', { token, body: { data: { pass: 'rotated' }, options: { cas: 1 } } }),
    );
    assert.equal(json(casPut).data.version, 2);
    // vault kv get secret/ci/cli, and -version=1
    await preflight('secret/ci/cli');
    const [current, first] = await rawRequests(f.port, [
      go('GET', '/v1/secret/data/ci/cli', { token }),
      go('GET', '/v1/secret/data/ci/cli?version=1', { token }),
    ]);
    assert.deepEqual(json(current!).data.data, { pass: 'rotated' });
    assert.deepEqual(json(first!).data.data, { pass: 's3cret', user: 'ops' });
    // vault kv list secret/ci: GET ?list=true; the LIST verb (older clients, curl -X LIST) lists the same.
    await preflight('secret/ci');
    const [listed, listVerb, missing] = await rawRequests(f.port, [
      go('GET', '/v1/secret/metadata/ci?list=true', { token }),
      go('LIST', '/v1/secret/metadata/ci/', { token }),
      go('GET', '/v1/secret/metadata/nothing-here?list=true', { token }),
    ]);
    assert.deepEqual(json(listed!).data.keys, ['app/', 'cli']);
    assert.deepEqual(json(listVerb!).data.keys, ['app/', 'cli']);
    assert.equal(missing!.status, 404, 'the CLI prints "No value found"');
    assert.deepEqual(json(missing!), { errors: [] });
    // A preflight on a path that is not a KV mount: the CLI reads a 404 as KV version 1.
    const notMount = await one(go('GET', '/v1/sys/internal/ui/mounts/kv/x', { token }));
    assert.equal(notMount.status, 404);
  });

  it('consul-template / envconsul: lookup-self, renew-self keeping the same token with reads between, revoke-self', async () => {
    // hashicorp/consul-template dependency/vault_token.go (RenewSelf(0) on a timer) over hashicorp/vault
    // api/auth_token.go (LookupSelf: GET lookup-self; RenewSelf: PUT renew-self {increment}; RevokeSelf: PUT, no body).
    const login = await one(
      go('PUT', '/v1/auth/approle/login', { body: { role_id: f.roleId, secret_id: await f.secretId() } }),
    );
    assert.equal(login.status, 200, login.body);
    const token = json(login).auth.client_token as string;
    const self = await one(go('GET', '/v1/auth/token/lookup-self', { token }));
    assert.equal(self.status, 200, self.body);
    assert.equal(json(self).data.renewable, true);
    assert.ok(json(self).data.ttl > 0 && json(self).data.ttl <= 600);
    assert.ok(!self.body.includes(token), 'lookup-self never echoes the token');
    for (let round = 0; round < 3; round++) {
      const [renewed, read] = await rawRequests(f.port, [
        go('PUT', '/v1/auth/token/renew-self', { token, body: { increment: 0 } }),
        go('GET', '/v1/secret/data/ci/app/db', { token }),
      ]);
      assert.equal(renewed!.status, 200, renewed!.body);
      const auth = json(renewed!).auth;
      assert.equal(auth.client_token, token, `round ${round}: the same token, extended in place`);
      assert.equal(auth.renewable, true);
      assert.ok(auth.lease_duration > 0 && auth.lease_duration <= 600);
      assert.equal(json(read!).data.data.password, 'pw-1');
    }
    const revoked = await one(go('PUT', '/v1/auth/token/revoke-self', { token }));
    assert.equal(revoked.status, 204, revoked.body);
    const after = await rawRequests(f.port, [
      go('GET', '/v1/secret/data/ci/app/db', { token }),
      go('PUT', '/v1/auth/token/renew-self', { token, body: { increment: 0 } }),
    ]);
    for (const res of after) {
      assert.equal(res.status, 403, res.body);
      assert.match(json(res).errors[0], /^permission denied/);
      assert.ok(!res.body.includes('pw-1'));
    }
  });
});

import assert from 'node:assert/strict';
import gotModule from 'got';
import jsonata from 'jsonata';
import { vaultFixture, type VaultFixture } from './fixture.js';

const got = gotModule.default; // got 11 is CommonJS: its function is the module's default export

/**
 * The HTTP calls hashicorp/vault-action v3 makes (src/action.js, auth.js, secrets.js), replayed
 * with the same client (got 11) and selector library (jsonata): a jwt login, then a KV v2 read per
 * `secrets:` line, values picked as the action picks them.
 */
describe('Vault API: hashicorp/vault-action requests', function () {
  this.timeout(30_000);
  let f: VaultFixture;
  before(async () => {
    f = await vaultFixture();
    const root = got.extend({ prefixUrl: f.url, headers: { 'X-Vault-Token': f.vault.rootToken } });
    await root.post('v1/secret/data/ci/app/db', { json: { data: { password: 's3cret', 'user.name': 'app' } } });
  });
  after(() => f.close());

  /** secrets.js selectAndAppendResults + selectData, for a KV v2 answer. */
  async function select(body: { data: { data?: unknown } }, key: string): Promise<string> {
    let selector = key.includes('.') ? key : `"${key}"`;
    selector = `data.${selector}`;
    if (body.data.data !== undefined) selector = `data.${selector}`;
    const result = JSON.stringify(await jsonata(selector).evaluate(body));
    if (!result) throw new Error(`no match for ${key}`);
    return result.startsWith('"') ? JSON.parse(result) : result;
  }

  it('logs in with jwt and reads the values the action would export', async () => {
    // action.js: an empty namespace input still sends the header; auth.js: POST v1/auth/<path>/login, json, responseType json.
    const defaults = { prefixUrl: f.url, headers: { 'X-Vault-Namespace': '' } as Record<string, string> };
    const login = await got
      .extend(defaults)
      .post('v1/auth/jwt/login', { json: { jwt: await f.idp.sign(), role: 'ci' }, responseType: 'json' });
    const auth = (login.body as { auth?: { client_token?: string } }).auth;
    assert.ok(auth?.client_token, 'response.body.auth.client_token');
    const client = got.extend({ ...defaults, headers: { ...defaults.headers, 'X-Vault-Token': auth.client_token } });
    // secrets.js: client.get(`v1/${path}`), the body parsed as JSON.
    const body = JSON.parse((await client.get('v1/secret/data/ci/app/db')).body);
    assert.equal(await select(body, 'password'), 's3cret');
    assert.equal(await select(body, '`user.name`'), 'app');
    // A missing secret is the 404 the action reports with ignoreNotFound.
    await assert.rejects(
      client.get('v1/secret/data/ci/app/none', { retry: 0 }),
      (e: { response?: { statusCode: number } }) => e.response?.statusCode === 404,
    );
    // A non-empty namespace is refused clearly.
    await assert.rejects(
      got.get(`${f.url}/v1/secret/data/ci/app/db`, {
        headers: { 'X-Vault-Namespace': 'team', 'X-Vault-Token': auth.client_token },
        retry: 0,
      }),
      (e: { response?: { statusCode: number; body: string } }) =>
        e.response?.statusCode === 400 && /namespaces are not supported/.test(e.response.body),
    );
  });
});

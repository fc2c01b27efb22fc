import assert from 'node:assert/strict';
import nodeVault from 'node-vault';
import { vaultFixture, type VaultFixture } from './fixture.js';

/** The `node-vault` npm client, unchanged, against a real Coffer server (docs/vault-compatibility.md). */
describe('Vault API: a node-vault session', function () {
  this.timeout(30_000);
  let f: VaultFixture;
  before(async () => {
    f = await vaultFixture();
  });
  after(() => f.close());

  it('logs in (jwt, approle), writes, reads old versions, lists (LIST and noCustomHTTPVerbs), deletes, undeletes, destroys, reads metadata, looks up, renews and revokes its token', async () => {
    const admin = nodeVault({ endpoint: f.url, token: f.vault.rootToken });
    await admin.write('secret/data/ci/app/db', { data: { password: 'one' } });
    await admin.write('secret/data/ci/app/db', { data: { password: 'two' } });
    await admin.write('secret/data/ci/app/api', { data: { key: 'k' } });

    const jwtClient = nodeVault({ endpoint: f.url });
    const jwtLogin = await jwtClient.jwtLogin({ role: 'ci', jwt: await f.idp.sign() });
    assert.ok(jwtLogin.auth.client_token);
    assert.equal((await jwtClient.read('secret/data/ci/app/db')).data.data.password, 'two');

    const client = nodeVault({ endpoint: f.url });
    const login = await client.approleLogin({ role_id: f.roleId, secret_id: await f.secretId() });
    assert.equal(client.token, login.auth.client_token);
    assert.equal((await client.read('secret/data/ci/app/db?version=1')).data.data.password, 'one');
    assert.deepEqual((await client.list('secret/metadata/ci/app')).data.keys, ['api', 'db']);
    const noVerbs = nodeVault({ endpoint: f.url, token: client.token, noCustomHTTPVerbs: true });
    assert.deepEqual((await noVerbs.list('secret/metadata/ci/')).data.keys, ['app/']);

    await admin.delete('secret/data/ci/app/db');
    await assert.rejects(
      client.read('secret/data/ci/app/db'),
      (e: { response: { statusCode: number } }) => e.response.statusCode === 404,
    );
    await admin.write('secret/undelete/ci/app/db', { versions: [2] });
    assert.equal((await client.read('secret/data/ci/app/db')).data.data.password, 'two');
    await admin.write('secret/destroy/ci/app/db', { versions: [1] });
    const meta = await client.read('secret/metadata/ci/app/db');
    assert.equal(meta.data.versions['1'].destroyed, true);
    assert.equal(meta.data.current_version, 2);

    const self = await client.tokenLookupSelf();
    assert.equal(self.data.type, 'service');
    const renewed = await client.tokenRenewSelf();
    assert.equal(renewed.auth.client_token, login.auth.client_token, 'the same token');
    await client.tokenRevokeSelf();
    await assert.rejects(
      client.tokenLookupSelf(),
      (e: { response: { statusCode: number } }) => e.response.statusCode === 403,
    );
  });
});

import assert from 'node:assert/strict';
import request from 'supertest';
import { vaultSettings } from '../../../../server/http/vault/mounts.js';
import { rawRequests, raw, vaultFixture, type VaultFixture } from './fixture.js';
import { tokenWith } from '../../../helpers.js';

/**
 * Vault paths in Coffer policies (docs/vault-compatibility.md "Policies"): a rule on
 * `<mount>/data|metadata|delete|undelete|destroy/<pattern>` is translated when the policy is
 * written and governs the Coffer path below the mount's prefix, on the Vault routes and the
 * native routes alike; the policy reads back as written.
 */
describe('Vault API: Vault paths in Coffer policies', function () {
  this.timeout(30_000);
  let f: VaultFixture;
  let token: { 'X-Vault-Token': string };
  const app = () => request(f.vault.app);
  const RULES = [
    { path: 'secret/data/ci/*', capabilities: ['read', 'list'] },
    { path: 'secret/metadata/ci/*', capabilities: ['list', 'read'] },
    { path: 'team/data/app/*', capabilities: ['read', 'create', 'update'] },
    { path: 'team/metadata/app/*', capabilities: ['list', 'delete'] },
    { path: 'team/destroy/app/*', capabilities: ['update'] },
    { path: 'secret/undelete/ci/*', capabilities: ['update'] }, // grants nothing on its own
  ];

  before(async () => {
    f = await vaultFixture({ vault: vaultSettings(['secret', 'team=ci/team'], []) });
    for (const [path, v] of [
      ['ci/db', 'ci-value'],
      ['ci/deep/db', 'deep-value'],
      ['other/db', 'other-value'],
      ['ci/team/app/x', 'team-value'],
    ])
      assert.equal((await app().put(`/v1/secrets/${path}`).set(f.vault.auth).send({ data: { v } })).status, 200);
    const put = await app().put('/v1/policies/vault-ci').set(f.vault.auth).send({ rules: RULES });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const created = await app()
      .post('/v1/auth/token/create')
      .set(f.vault.auth)
      .send({ identity: 'svc:vault-ci', policies: ['vault-ci'] });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    token = { 'X-Vault-Token': created.body.token };
  });
  after(() => f.close());

  it('reads back as written, through the API and after the directory reloads from the store', async () => {
    const got = await app().get('/v1/policies/vault-ci').set(f.vault.auth);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, { name: 'vault-ci', rules: RULES });
    await f.vault.access.directory.reload();
    assert.equal((await app().get('/v1/secret/data/ci/db').set(token)).status, 200, 'the translation was stored');
  });

  it('secret/data/ci/* grants read on the Coffer path ci/* on both APIs, one segment deep', async () => {
    const vaultRead = await app().get('/v1/secret/data/ci/db').set(token);
    assert.equal(vaultRead.status, 200);
    assert.equal(vaultRead.body.data.data.v, 'ci-value');
    const native = await app()
      .get('/v1/secrets/ci/db')
      .set({ Authorization: `Bearer ${token['X-Vault-Token']}` });
    assert.equal(native.status, 200);
    assert.equal(native.body.data.v, 'ci-value');
    // Coffer's `read` covers a secret's metadata with its data (the metadata rule's `read` grants nothing more).
    assert.equal((await app().get('/v1/secret/metadata/ci/db').set(token)).status, 200);
    const deep = await app().get('/v1/secret/data/ci/deep/db').set(token);
    assert.equal(deep.status, 403, '`*` is one segment, as in every Coffer pattern');
    assert.ok(!deep.text.includes('deep-value'));
  });

  it('secret/metadata/ci/* grants list; a data rule does not (Vault lists through metadata)', async () => {
    const [listed] = await rawRequests(f.port, [raw('LIST', '/v1/secret/metadata/ci', token)]);
    assert.equal(listed!.status, 200, listed!.body);
    // `deep/` is not shown (ci/deep/db is below ci/*); `team/` is, for team/metadata/app/* lists ci/team/app/x.
    assert.deepEqual(listed!.json().data.keys, ['db', 'team/']);
    const capabilities = await app()
      .get('/v1/auth/token/capabilities?path=ci/db')
      .set({ Authorization: `Bearer ${token['X-Vault-Token']}` });
    assert.equal(capabilities.status, 200, JSON.stringify(capabilities.body));
    assert.deepEqual([...capabilities.body.capabilities].sort(), ['list', 'read']);
  });

  it('writes, metadata delete (destroy) and version destroy on a prefixed mount land below its prefix', async () => {
    const write = await app()
      .post('/v1/team/data/app/y')
      .set(token)
      .send({ data: { v: 'new' } });
    assert.equal(write.status, 200, JSON.stringify(write.body));
    const native = await app().get('/v1/secrets/ci/team/app/y').set(f.vault.auth);
    assert.equal(native.body.data.v, 'new', 'team=ci/team: the write is the Coffer secret ci/team/app/y');
    assert.equal(
      (
        await app()
          .post('/v1/team/destroy/app/y')
          .set(token)
          .send({ versions: [1] })
      ).status,
      204,
    );
    assert.equal((await app().delete('/v1/team/metadata/app/y').set(token)).status, 204);
    assert.equal((await app().get('/v1/secrets/ci/team/app/y').set(f.vault.auth)).status, 404);
    // update on secret/undelete grants nothing: undelete needs Coffer's `update`, which would also allow writes.
    assert.equal(
      (
        await app()
          .post('/v1/secret/undelete/ci/db')
          .set(token)
          .send({ versions: [1] })
      ).status,
      403,
    );
    assert.equal(
      (
        await app()
          .post('/v1/secret/data/ci/db')
          .set(token)
          .send({ data: { v: 'x' } })
      ).status,
      403,
    );
  });

  it('a path outside the rules is 403 with nothing leaked, on both APIs', async () => {
    for (const res of [
      await app().get('/v1/secret/data/other/db').set(token),
      await app()
        .get('/v1/secrets/other/db')
        .set({ Authorization: `Bearer ${token['X-Vault-Token']}` }),
      await app().get('/v1/team/data/other').set(token),
    ]) {
      assert.equal(res.status, 403);
      assert.ok(!res.text.includes('other-value') && !res.text.includes('team-value'), res.text);
    }
    const [list] = await rawRequests(f.port, [raw('LIST', '/v1/secret/metadata/other', token)]);
    assert.equal(list!.status, 403);
    assert.deepEqual(Object.keys(list!.json()), ['errors']);
  });

  it('refuses a Vault path onto sys or transit, or with a bad pattern, with a clear 400, storing nothing', async () => {
    const cases: [object[], RegExp][] = [
      [[{ path: 'secret/data/sys/policies/*', capabilities: ['read'] }], /no secret in the sys or transit namespaces/],
      [[{ path: 'secret/data/ci/../x', capabilities: ['read'] }], /segment 4 must be a name/],
      [
        [
          { path: 'app/*', capabilities: ['read'] },
          { path: 'secret/data/transit/x', capabilities: ['read'] },
        ],
        /rule path secret\/data\/transit\/x/,
      ],
    ];
    for (const [rules, message] of cases) {
      const res = await app().put('/v1/policies/bad-vault').set(f.vault.auth).send({ rules });
      assert.equal(res.status, 400, JSON.stringify(rules));
      assert.equal(res.body.error.code, 'invalid_request');
      assert.match(res.body.error.message, message);
      assert.equal((await app().get('/v1/policies/bad-vault').set(f.vault.auth)).status, 404, 'nothing stored');
    }
  });

  it('a Coffer namespace named like a KV mount keeps its own rules (secret/app/*, kv/data/*)', async () => {
    const rules = [
      { path: 'secret/app/*', capabilities: ['read'] },
      { path: 'kv/data/*', capabilities: ['read'] },
    ];
    const bearer = await tokenWith(f.vault, 'ns-secret', rules);
    for (const path of ['secret/app/db', 'kv/data/x'])
      assert.equal(
        (
          await app()
            .put(`/v1/secrets/${path}`)
            .set(f.vault.auth)
            .send({ data: { v: path } })
        ).status,
        200,
      );
    for (const path of ['secret/app/db', 'kv/data/x'])
      assert.equal((await app().get(`/v1/secrets/${path}`).set(bearer)).body.data?.v, path, path);
    assert.equal((await app().get('/v1/secrets/app/db').set(bearer)).status, 403, 'not the Vault reading');
  });

  it('Coffer rules stay as they are, sys and transit included', async () => {
    const rules = [
      { path: 'app/*', capabilities: ['read'] },
      { path: 'sys/policies/*', capabilities: ['admin'] },
      { path: 'transit/data', capabilities: ['read'] }, // a transit key named data, not a KV path
    ];
    assert.equal((await app().put('/v1/policies/native').set(f.vault.auth).send({ rules })).status, 200);
    const created = await app()
      .post('/v1/auth/token/create')
      .set(f.vault.auth)
      .send({ identity: 'svc:native', policies: ['native'] });
    const bearer = { Authorization: `Bearer ${created.body.token}` };
    assert.equal((await app().get('/v1/policies/vault-ci').set(bearer)).status, 200, 'sys/policies/* kept');
    assert.equal((await app().get('/v1/secrets/ci/db').set(bearer)).status, 403);
  });
});

import assert from 'node:assert/strict';
import request from 'supertest';
import { openVault, type TestVault } from '../../helpers.js';

/**
 * A group held through a `members` list is not the minter's to hand on (issue 10 item 2, B5):
 * a child's signed `groups` claim would keep it after an administrator withdraws the
 * membership. Found by review: on the first fix the child still read app/db once the minter
 * had lost it.
 */
describe('token/create: membership-derived groups are not grantable', () => {
  let vault: TestVault;
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
  const put = async (path: string, body: object) =>
    assert.equal((await request(vault.app).put(path).set(vault.auth).send(body)).status, 200, path);

  before(async () => {
    vault = await openVault();
    await put('/v1/policies/token-maker', { rules: [{ path: 'sys/auth/token/create', capabilities: ['admin'] }] });
    await put('/v1/policies/app-read', { rules: [{ path: 'app/**', capabilities: ['read'] }] });
    await put('/v1/groups/devs', { policies: ['app-read'], members: ['svc:minter'] });
    await put('/v1/groups/carried', { policies: ['app-read'] });
    await put('/v1/secrets/app/db', { data: { v: 'db' } });
  });
  after(() => vault.cleanup());

  it('refuses to pass on a group the minter holds only as a member, and a withdrawn membership leaves no child holding it', async () => {
    const made = await request(vault.app)
      .post('/v1/auth/token/create')
      .set(vault.auth)
      .send({ identity: 'svc:minter', policies: ['token-maker'], groups: ['carried'] });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    const minter = bearer(made.body.token);
    assert.equal(
      (await request(vault.app).get('/v1/secrets/app/db').set(minter)).status,
      200,
      'the minter reads through devs',
    );

    const laundered = await request(vault.app)
      .post('/v1/auth/token/create')
      .set(minter)
      .send({ identity: 'svc:child', groups: ['devs'] });
    assert.equal(laundered.status, 403, JSON.stringify(laundered.body));
    assert.match(laundered.body.error.message, /devs/);
    assert.equal(laundered.body.token, undefined);

    // A group the minter's own token carries is still grantable.
    const carried = await request(vault.app)
      .post('/v1/auth/token/create')
      .set(minter)
      .send({ identity: 'svc:child', groups: ['carried'] });
    assert.equal(carried.status, 200, JSON.stringify(carried.body));

    // Withdraw the membership: the minter loses devs at once, and no child of it kept devs.
    await put('/v1/groups/devs', { policies: ['app-read'], members: [] });
    const self = await request(vault.app).get('/v1/auth/token/self').set(minter);
    assert.deepEqual(self.body.groups, ['carried']);
  });
});

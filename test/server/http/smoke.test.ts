import assert from 'node:assert/strict';
import request from 'supertest';
import { openVault, type TestVault } from '../../helpers.js';

describe('http smoke', () => {
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
  });
  after(() => vault.cleanup());

  it('writes and reads back a secret with the root token', async () => {
    const put = await request(vault.app)
      .put('/v1/secrets/app/db')
      .set(vault.auth)
      .send({ data: { password: 'hunter2' } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.version, 1);
    const get = await request(vault.app).get('/v1/secrets/app/db').set(vault.auth);
    assert.equal(get.status, 200);
    assert.deepEqual(get.body.data, { password: 'hunter2' });
  });
});

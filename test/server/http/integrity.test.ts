import assert from 'node:assert/strict';
import request from 'supertest';
import { versionKey } from '../../../server/store/keys.js';
import { openVault, type TestVault } from '../../helpers.js';

describe('http: a corrupted record', () => {
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
    for (const p of ['app/good', 'app/bad'])
      await request(vault.app)
        .put(`/v1/secrets/${p}`)
        .set(vault.auth)
        .send({ data: { v: `value-of-${p}` } });
    const record = Buffer.from(vault.store.get(versionKey('app/bad', 1))!);
    record[record.length - 1]! ^= 0x01;
    await vault.store.mutate((tx) => tx.put(versionKey('app/bad', 1), record));
  });
  after(() => vault.cleanup());

  it('answers 500 integrity_error for that secret only, without any value', async () => {
    const bad = await request(vault.app).get('/v1/secrets/app/bad').set(vault.auth);
    assert.equal(bad.status, 500);
    assert.equal(bad.body.error.code, 'integrity_error');
    assert.match(bad.body.error.message, /app\/bad version 1 failed its integrity check/);
    assert.equal(JSON.stringify(bad.body).includes('value-of'), false);
    const good = await request(vault.app).get('/v1/secrets/app/good').set(vault.auth);
    assert.equal(good.status, 200);
    assert.equal(good.body.data.v, 'value-of-app/good');
  });

  it('reports it per path in a batch read while returning the others', async () => {
    const res = await request(vault.app)
      .post('/v1/secrets:batch')
      .set(vault.auth)
      .send({ paths: ['app/good', 'app/bad'] });
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body.secrets), ['app/good']);
    assert.equal(res.body.errors['app/bad'].code, 'integrity_error');
  });
});

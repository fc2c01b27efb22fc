import assert from 'node:assert/strict';
import request from 'supertest';
import { openVault, type TestVault } from '../../helpers.js';

describe('metrics', () => {
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
  });
  after(() => vault.cleanup());

  it('serves Prometheus text to admins, labelled by route pattern, never by secret path', async () => {
    await request(vault.app)
      .put('/v1/secrets/app/secret-name')
      .set(vault.auth)
      .send({ data: { v: '1' } });
    await request(vault.app).get('/v1/secrets/app/secret-name').set(vault.auth);
    assert.equal((await request(vault.app).get('/v1/sys/metrics')).status, 401);
    const res = await request(vault.app).get('/v1/sys/metrics').set(vault.auth);
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type']!, /text\/plain/);
    assert.match(res.text, /coffer_http_requests_total\{method="GET",route="\/v1\/secrets\/\*path",status="200"\} 1/);
    assert.match(res.text, /coffer_http_request_duration_seconds_bucket/);
    assert.equal(res.text.includes('secret-name'), false);
  });
});

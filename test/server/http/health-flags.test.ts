import assert from 'node:assert/strict';
import request from 'supertest';
import { openVault, type TestVault } from '../../helpers.js';

/** GET /v1/sys/health query flags for probes (docs/api.md "System"); the replica's are in replication/smoke.test.ts. */
describe('http sys: health flags for probes', () => {
  let vault: TestVault;
  afterEach(async () => vault?.cleanup());
  const health = (query: string) => request(vault.app).get(`/v1/sys/health${query}`);

  it('uninitcode and sealedcode replace 501 and 503; the body stays the same', async () => {
    vault = await openVault({ init: false });
    assert.equal((await health('')).status, 501);
    const live = await health('?sealedcode=200&uninitcode=200&replicaok=true');
    assert.equal(live.status, 200);
    assert.equal(live.body.initialized, false);
    assert.equal((await health('?uninitcode=204')).status, 204);
    await vault.cleanup();
    vault = await openVault();
    await vault.seal.seal();
    assert.equal((await health('')).status, 503);
    const sealed = await health('?sealedcode=200&uninitcode=200');
    assert.equal(sealed.status, 200);
    assert.equal(sealed.body.sealed, true);
    assert.equal((await health('?uninitcode=200')).status, 503, 'uninitcode is for an uninitialized vault only');
  });

  it('an unsealed primary answers 200 whatever the flags', async () => {
    vault = await openVault();
    for (const q of ['', '?replicaok=true', '?replicaok=false', '?sealedcode=599&uninitcode=599&replicacode=599'])
      assert.equal((await health(q)).status, 200, q);
  });

  it('refuses an unknown flag or a bad value with 400, naming it', async () => {
    vault = await openVault();
    const cases: [string, RegExp][] = [
      ['?nosuchflag=true', /nosuchflag/], // (standbyok is one of Vault's flags: docs/vault-compatibility.md)
      ['?replicaok=yes', /replicaok/],
      ['?sealedcode=200x', /sealedcode: expected an HTTP status code/],
      ['?sealedcode=600', /sealedcode/],
      ['?uninitcode=099', /uninitcode/],
      ['?replicacode=200&replicacode=201', /replicacode/],
    ];
    for (const [q, message] of cases) {
      const res = await health(q);
      assert.equal(res.status, 400, q);
      assert.equal(res.body.error.code, 'invalid_request', q);
      assert.match(res.body.error.message, message, q);
    }
  });
});

import assert from 'node:assert/strict';
import { openVault } from '../../helpers.js';

const envKek = { source: { kind: 'env' as const, variable: 'K' }, env: { K: Buffer.alloc(32, 9).toString('base64') } };

async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('master rotation interrupted between the new version and the keyring re-wrap (found by the kill -9 crash rounds)', () => {
  it('the next unseal re-wraps every keyring still under the previous master version', async () => {
    const vault = await openVault(envKek);
    for (const ns of ['app', 'db', 'ci']) await vault.secrets.put(`${ns}/s`, { data: { v: ns } });
    // What a kill -9 inside POST /v1/sys/rotate leaves: the new master version stored and current,
    // the keyrings not re-wrapped yet.
    const version = await vault.seal.keys().provider.rotate();
    assert.deepEqual((await vault.seal.keys().keyrings.namespacesBehindMaster()).sort(), ['app', 'ci', 'db', 'sys']);
    await vault.cleanup(true);

    const again = await openVault({ ...envKek, dir: vault.dir, init: false });
    try {
      await again.seal.autoUnsealNow();
      const keys = again.seal.keys();
      assert.equal(keys.provider.currentVersion(), version);
      await until(
        async () => (await keys.keyrings.namespacesBehindMaster()).length === 0,
        5_000,
        'the keyrings to be re-wrapped',
      );
      for (const ns of ['app', 'db', 'ci', 'sys']) {
        assert.deepEqual(
          keys.keyrings.describe(ns)!.versions.map((v) => v.master_version),
          [version],
          `keyring ${ns}`,
        );
      }
      for (const ns of ['app', 'db', 'ci']) assert.deepEqual((await again.secrets.get(`${ns}/s`))!.data, { v: ns });
    } finally {
      await again.cleanup();
    }
  });

  it('an unseal with every keyring current writes nothing', async () => {
    const vault = await openVault(envKek);
    await vault.secrets.put('app/s', { data: { v: '1' } });
    await vault.cleanup(true);
    const again = await openVault({ ...envKek, dir: vault.dir, init: false });
    try {
      const seq = again.store.lastSeq;
      await again.seal.autoUnsealNow();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(again.store.lastSeq, seq);
    } finally {
      await again.cleanup();
    }
  });
});

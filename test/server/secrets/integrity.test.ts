import assert from 'node:assert/strict';
import { openVault, type TestVault } from '../../helpers.js';
import { versionKey } from '../../../server/store/keys.js';
import { isCofferError } from '../../../server/errors.js';

const integrityError = (e: unknown) => isCofferError(e, 'integrity_error');

describe('stored records are bound to their place', () => {
  let vault: TestVault;
  beforeEach(async () => {
    vault = await openVault({
      source: { kind: 'env', variable: 'K' },
      env: { K: Buffer.alloc(32, 3).toString('base64') },
    });
    await vault.secrets.put('app/a', { data: { v: 'one' } });
    await vault.secrets.put('app/a', { data: { v: 'two' } });
    await vault.secrets.put('app/b', { data: { v: 'bee' } });
    await vault.secrets.put('other/a', { data: { v: 'far' } });
  });
  afterEach(() => vault.cleanup());

  // Through the barrier: the record (record.ts) is moved as such and sealed again under its new key,
  // so what is checked here is the record's own binding, not the barrier's (test/server/store/barrier.test.ts).
  const inner = async (key: string) => (await vault.barrier.get(key))!;
  const put = (key: string, record: Uint8Array) => vault.barrier.mutate((tx) => tx.put(key, record));
  const copy = async (from: string, to: string) => put(to, await inner(from));

  it('refuses a version record copied onto another version of the same path', async () => {
    await copy(versionKey('app/a', 1), versionKey('app/a', 2));
    await assert.rejects(vault.secrets.get('app/a', 2), integrityError);
    assert.deepEqual((await vault.secrets.get('app/a', 1))!.data, { v: 'one' });
  });

  it('refuses a record moved to another path or namespace', async () => {
    await copy(versionKey('app/a', 1), versionKey('app/b', 1));
    await assert.rejects(vault.secrets.get('app/b'), integrityError);
    await copy(versionKey('app/a', 2), versionKey('other/a', 1));
    await assert.rejects(vault.secrets.get('other/a'), integrityError);
  });

  it("refuses a record whose wrapped DEK was swapped with another version's", async () => {
    const one = await inner(versionKey('app/a', 1));
    const two = await inner(versionKey('app/a', 2));
    const dekLength = (r: Uint8Array) => 3 + new DataView(r.buffer, r.byteOffset).getUint16(1);
    const spliced = Buffer.concat([one.subarray(0, dekLength(one)), two.subarray(dekLength(two))]);
    await put(versionKey('app/a', 2), spliced);
    await assert.rejects(vault.secrets.get('app/a', 2), integrityError);
  });

  it('answers integrity_error for every single-bit flip of a record, and keeps serving others', async () => {
    const original = Buffer.from(await inner(versionKey('app/b', 1)));
    for (let bit = 0; bit < original.length * 8; bit += 7) {
      const flipped = Buffer.from(original);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      await put(versionKey('app/b', 1), flipped);
      await assert.rejects(vault.secrets.get('app/b'), integrityError, `bit ${bit}`);
    }
    assert.deepEqual((await vault.secrets.get('app/a'))!.data, { v: 'two' });
  });

  it('crypto-shreds a destroyed version: its record is gone from the database', async () => {
    await vault.secrets.destroy('app/a', [1]);
    assert.equal(vault.store.get(versionKey('app/a', 1)), undefined);
    assert.equal(await vault.secrets.get('app/a', 1), undefined);
  });
});

describe('seal', () => {
  it('zeroizes the cached keyring keys and refuses reads until unsealed', async () => {
    const vault = await openVault();
    try {
      await vault.secrets.put('app/a', { data: { v: 'x' } });
      const { keyrings } = vault.seal.keys();
      const cached = await keyrings.decryptionKey('app', 1);
      assert.ok(cached.some((b) => b !== 0));
      assert.ok(keyrings.cachedVersions > 0);
      await vault.seal.seal();
      assert.ok(
        cached.every((b) => b === 0),
        'the cached key buffer is zero-filled',
      );
      assert.equal(keyrings.cachedVersions, 0);
      await assert.rejects(vault.secrets.get('app/a'), (e) => isCofferError(e, 'sealed'));
      for (const share of vault.shares.slice(0, 3)) await vault.seal.submitShare(share);
      assert.deepEqual((await vault.secrets.get('app/a'))!.data, { v: 'x' });
    } finally {
      await vault.cleanup();
    }
  });
});

import assert from 'node:assert/strict';
import request from 'supertest';
import { envelopeKeyVersion } from '../../../server/crypto/envelope.js';
import { isCofferError } from '../../../server/errors.js';
import { BARRIER_TAG } from '../../../server/store/barrier.js';
import { FORMAT_KEY, SEAL_KEY, isClearKey, keyringKey, metaKey, versionKey } from '../../../server/store/keys.js';
import { openVault, type TestVault } from '../../helpers.js';

const code = (c: string) => (e: unknown) => isCofferError(e) && e.code === c;
const envKek = (fill: number) => ({
  source: { kind: 'env' as const, variable: 'K' },
  env: { K: Buffer.alloc(32, fill).toString('base64') },
});
const sysVersionOf = (value: Uint8Array) => envelopeKeyVersion(value.subarray(1));

describe('storage barrier', function () {
  this.timeout(30_000);
  let vault: TestVault;
  beforeEach(async () => {
    vault = await openVault(envKek(7));
    await vault.secrets.put('app/a', { data: { v: 'one' }, metadata: { owner: 'team-a' } });
    await vault.secrets.put('app/b', { data: { v: 'bee' }, metadata: { owner: 'team-b' } });
    await vault.access.directory.putPolicy('reader', [{ path: 'app/*', capabilities: ['read'] }]);
    await vault.access.directory.putPolicy('writer', [{ path: 'app/*', capabilities: ['update'] }]);
  });
  afterEach(() => vault.cleanup());

  it('seals every stored value but the clear bootstrap records; key names stay in clear, the header names the sys keyring version', async () => {
    const rows = await vault.store.range('', '\uffff');
    const sysVersion = vault.seal.keys().keyrings.describe('sys')!.current;
    let sealed = 0;
    for (const [key, value] of rows) {
      if (isClearKey(key)) {
        assert.notEqual(value[0], BARRIER_TAG, `${key} is a clear record`);
        continue;
      }
      assert.equal(value[0], BARRIER_TAG, `${key} is sealed`);
      assert.ok(sysVersionOf(value) >= 1 && sysVersionOf(value) <= sysVersion, `${key} names a sys keyring version`);
      sealed++;
    }
    assert.ok(
      rows.some(([k]) => k === metaKey('app/a')) && rows.some(([k]) => k === 'auth/policy/reader'),
      'key names are readable',
    );
    assert.ok(sealed >= 8, `sealed records: ${sealed}`);
    assert.ok(
      vault.store.get(SEAL_KEY) && vault.store.get(FORMAT_KEY) && vault.store.get(keyringKey('sys')),
      'bootstrap records are there, in clear',
    );
    assert.deepEqual(
      JSON.parse(Buffer.from(vault.store.get(FORMAT_KEY)!).toString()),
      { format: 2 },
      'a fresh vault is born in the barrier format',
    );
  });

  it('refuses a value moved to another key (metadata onto another path, a policy onto another name)', async () => {
    await vault.store.mutate((tx) => tx.put(metaKey('app/b'), vault.store.get(metaKey('app/a'))!));
    await assert.rejects(vault.secrets.metadata('app/b'), code('integrity_error'));
    await assert.rejects(vault.secrets.get('app/b'), code('integrity_error'));
    assert.equal((await vault.secrets.get('app/a'))!.data.v, 'one', 'the original still opens');

    await vault.store.mutate((tx) => tx.put('auth/policy/writer', vault.store.get('auth/policy/reader')!));
    await assert.rejects(vault.barrier.get('auth/policy/writer'), code('decryption_failed'));
    await assert.rejects(
      vault.access.directory.load(),
      (e: unknown) => isCofferError(e, 'integrity_error') && /policy/.test(e.message) && !/reader|app/.test(e.message),
    );
  });

  it('answers integrity_error for every single-bit flip and any truncation of a sealed record, and never another plaintext', async () => {
    const original = Buffer.from(vault.store.get(metaKey('app/a'))!);
    for (let bit = 0; bit < original.length * 8; bit += 5) {
      const flipped = Buffer.from(original);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      await vault.store.mutate((tx) => tx.put(metaKey('app/a'), flipped));
      await assert.rejects(vault.secrets.metadata('app/a'), code('integrity_error'), `bit ${bit}`);
    }
    for (const length of [0, 1, 7, 30, original.length - 1]) {
      await vault.store.mutate((tx) => tx.put(metaKey('app/a'), original.subarray(0, length)));
      await assert.rejects(vault.secrets.metadata('app/a'), code('integrity_error'), `length ${length}`);
    }
    assert.equal((await vault.secrets.metadata('app/b'))!.metadata.owner, 'team-b', 'other records keep working');
  });

  it('refuses a record in the format from before the barrier (no silent fallback to plaintext)', async () => {
    const plain = {
      type: 'kv',
      current_version: 1,
      metadata: { owner: 'mallory' },
      created_at: 1,
      updated_at: 1,
      versions: [],
    };
    await vault.store.mutate((tx) => tx.put(metaKey('app/a'), Buffer.from(JSON.stringify(plain))));
    await assert.rejects(vault.secrets.metadata('app/a'), code('integrity_error'));
    await vault.store.mutate((tx) => tx.put('auth/revoked/abcdefghijklmnopqrstuv', Buffer.from('9999999999')));
    await assert.rejects(vault.barrier.get('auth/revoked/abcdefghijklmnopqrstuv'), code('decryption_failed'));
  });

  it('refuses every operation while sealed (the engines check nothing themselves), and not_initialized before init', async () => {
    await vault.seal.seal();
    const sealed = code('sealed');
    await assert.rejects(vault.barrier.get(metaKey('app/a')), sealed);
    assert.throws(() => vault.barrier.has(metaKey('app/a')), sealed);
    await assert.rejects(vault.barrier.range('meta/', 'meta/\uffff'), sealed);
    await assert.rejects(vault.barrier.names('meta/', 'meta/\uffff'), sealed);
    await assert.rejects(
      vault.barrier.mutate((tx) => tx.put(metaKey('app/z'), new Uint8Array(1))),
      sealed,
    );
    await assert.rejects(vault.secrets.metadata('app/a'), sealed);
    await assert.rejects(vault.secrets.list('app', undefined, 10), sealed);
    assert.throws(() => vault.secrets.exists('app/a'), sealed);
    assert.equal(vault.access.directory.listPolicies().length, 0, 'policies leave memory at seal');
    assert.equal((await request(vault.app).get('/v1/secrets/app/a').set(vault.auth)).status, 503);

    const fresh = await openVault({ init: false });
    try {
      await assert.rejects(fresh.barrier.get(metaKey('x')), code('not_initialized'));
    } finally {
      await fresh.cleanup();
    }
  });

  it('a secret read checks the seal once and reads two records, opening each once', async () => {
    // The first read of a sys key version this server wrote with checks it against the stored
    // keyring once (server/keys/keyring.ts, CachedKey.confirmed); the reads after it do not.
    await vault.secrets.get('app/a');
    const counts = { keys: 0, gets: 0 };
    const barrier = vault.seal.barrier as unknown as { keys: () => unknown };
    const keys = barrier.keys.bind(barrier);
    barrier.keys = () => (counts.keys++, keys());
    const store = vault.store as unknown as { get: (k: string) => Uint8Array | undefined };
    const get = store.get.bind(store);
    store.get = (k) => (counts.gets++, get(k));
    try {
      assert.equal((await vault.secrets.get('app/a'))!.data.v, 'one');
    } finally {
      barrier.keys = keys;
      store.get = get;
    }
    assert.deepEqual(
      counts,
      { keys: 1, gets: 2 },
      'one seal check; the metadata and the version record, no other LevelDB read',
    );
  });

  it('a sys keyring rotation re-seals lazily: old values stay readable, writes move to the new version', async () => {
    const before = vault.store.get(metaKey('app/b'))!;
    const v1 = sysVersionOf(before);
    const v2 = await vault.seal.keys().keyrings.rotate('sys');
    assert.ok(v2 > v1);
    assert.equal(
      (await vault.secrets.metadata('app/b'))!.metadata.owner,
      'team-b',
      'sealed under the old version, still opens',
    );
    assert.equal(sysVersionOf(vault.store.get(metaKey('app/b'))!), v1, 'nothing was rewritten');
    await vault.secrets.put('app/b', { data: { v: 'two' } });
    assert.equal(sysVersionOf(vault.store.get(metaKey('app/b'))!), v2, 'rewritten under the current version');
    await vault.seal.seal();
    await vault.seal.autoUnsealNow();
    assert.equal((await vault.secrets.metadata('app/a'))!.metadata.owner, 'team-a');
    assert.equal((await vault.secrets.get('app/b'))!.data.v, 'two');
  });

  it('counts every sealed value against the sys keyring budget and rotates it past max_wraps', async () => {
    const budget = await openVault({ ...envKek(8), keyring: { maxWraps: 4 } });
    try {
      for (let i = 0; i < 6; i++)
        await budget.access.directory.putPolicy(`p${i}`, [{ path: 'x/*', capabilities: ['read'] }]);
      const sys = budget.seal.keys().keyrings.describe('sys')!;
      assert.ok(sys.current >= 2, `rotated: ${JSON.stringify(sys)}`);
      assert.ok(sys.versions.every((v) => v.wraps <= 4 + 1));
      await budget.access.directory.load();
      assert.equal(budget.access.directory.listPolicies().length, 6, 'every version still opens');
    } finally {
      await budget.cleanup();
    }
  });

  it('inside a mutation, reads see its own writes; a mutation that throws writes nothing', async () => {
    const seq = vault.store.lastSeq;
    await assert.rejects(
      vault.barrier.mutate((tx) => {
        tx.put(metaKey('app/tmp'), Buffer.from('{}'));
        assert.equal(Buffer.from(tx.get(metaKey('app/tmp'))!).toString(), '{}');
        tx.del(metaKey('app/a'));
        assert.equal(tx.get(metaKey('app/a')), undefined);
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(vault.store.lastSeq, seq);
    assert.equal(vault.store.get(metaKey('app/tmp')), undefined);
    assert.ok(await vault.secrets.metadata('app/a'));
  });

  it("a version record keeps its own DEK envelopes inside the barrier's", async () => {
    const raw = vault.store.get(versionKey('app/a', 1))!;
    const inner = (await vault.barrier.get(versionKey('app/a', 1)))!;
    assert.equal(raw[0], BARRIER_TAG);
    assert.equal(inner[0], 1, 'the secret record format (record.ts) inside');
    assert.equal(
      Buffer.from(raw).indexOf(Buffer.from(inner.subarray(3, 40))),
      -1,
      'nothing of the inner record shows through',
    );
  });
});

import assert from 'node:assert/strict';
import { chmod, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isCofferError } from '../../../server/errors.js';
import { decodeKeyMaterial, deriveFromPassphrase, parseKekUri, readKeyFile } from '../../../server/keys/root-key.js';
import { recordKeyringVersion } from '../../../server/secrets/record.js';
import { keyringKey, versionKey } from '../../../server/store/keys.js';
import { Keyrings, type KeyringRecord } from '../../../server/keys/keyring.js';
import type { MasterKeyProvider } from '../../../server/keys/provider.js';
import { systemRandom } from '../../../server/crypto/random.js';
import { openVault, tempDir, type TestVault } from '../../helpers.js';

const envKek = (byte: number) => ({
  source: { kind: 'env' as const, variable: 'K' },
  env: { K: Buffer.alloc(32, byte).toString('base64') },
});

/** Runs `body`, then closes the keyrings it built beside the vault's own and removes the vault, whatever the outcome. */
async function closingBoth(vault: TestVault, ring: Keyrings, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } finally {
    ring.close();
    await vault.cleanup();
  }
}

describe('root key sources', () => {
  it('parses every --kek form and refuses junk with a usable message', () => {
    assert.deepEqual(parseKekUri('shamir:'), { kind: 'shamir' });
    assert.deepEqual(parseKekUri('file:/etc/coffer/kek'), { kind: 'file', path: '/etc/coffer/kek' });
    assert.deepEqual(parseKekUri('env:MY_KEK'), { kind: 'env', variable: 'MY_KEK' });
    assert.deepEqual(parseKekUri('passphrase:'), { kind: 'passphrase', variable: 'COFFER_KEK_PASSPHRASE' });
    for (const bad of ['foo:', 'env:1BAD', 'file:', 'shamir:x', 'passphrase:a-b', '']) {
      assert.throws(() => parseKekUri(bad), /expected shamir:, file:PATH/);
    }
  });

  it('reads 32 raw bytes, 64 hex digits or base64, and nothing else', () => {
    const key = Buffer.alloc(32, 0xab);
    assert.deepEqual(decodeKeyMaterial(key, 'k'), new Uint8Array(key));
    assert.deepEqual(decodeKeyMaterial(Buffer.from(`${key.toString('hex')}\n`), 'k'), new Uint8Array(key));
    assert.deepEqual(decodeKeyMaterial(Buffer.from(`${key.toString('base64')}\n`), 'k'), new Uint8Array(key));
    for (const bad of [Buffer.alloc(31), Buffer.alloc(33), Buffer.from(Buffer.alloc(31).toString('base64'))]) {
      assert.throws(() => decodeKeyMaterial(bad, 'k'), /does not hold a 256-bit key/);
    }
  });

  it('refuses a key file that is missing, a directory, or readable by others', async () => {
    const dir = await tempDir();
    try {
      await assert.rejects(readKeyFile(join(dir, 'none')), /cannot be read/);
      await assert.rejects(readKeyFile(dir), /not a regular file/);
      const file = join(dir, 'kek');
      await writeFile(file, Buffer.alloc(32, 1), { mode: 0o644 });
      await chmod(file, 0o644);
      await assert.rejects(readKeyFile(file), /chmod 600/);
      await chmod(file, 0o600);
      assert.equal((await readKeyFile(file)).length, 32);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('derives passphrase keys deterministically per salt and refuses short passphrases', async () => {
    const salt = new Uint8Array(16).fill(1);
    const a = await deriveFromPassphrase('a long enough passphrase', salt);
    assert.deepEqual(await deriveFromPassphrase('a long enough passphrase', salt), a);
    assert.notDeepEqual(await deriveFromPassphrase('a long enough passphrase', new Uint8Array(16).fill(2)), a);
    await assert.rejects(deriveFromPassphrase('short', salt), /at least 12/);
  });
});

describe('auto-unseal vaults', () => {
  it('reopen with the same key, and refuse another key without writing anything', async () => {
    const vault = await openVault(envKek(1));
    await vault.secrets.put('app/a', { data: { v: '1' } });
    await vault.cleanup(true);
    const again = await openVault({ ...envKek(1), dir: vault.dir, init: false });
    await again.seal.autoUnsealNow();
    assert.deepEqual((await again.secrets.get('app/a'))!.data, { v: '1' });
    await again.cleanup(true);
    const wrong = await openVault({ ...envKek(2), dir: vault.dir, init: false });
    const before = wrong.store.lastSeq;
    await assert.rejects(wrong.seal.autoUnsealNow(), (e) => isCofferError(e, 'unseal_failed'));
    assert.equal(wrong.seal.sealed, true);
    assert.equal(wrong.store.lastSeq, before, 'a failed unseal writes nothing');
    await wrong.cleanup();
  });

  it('unseal with a passphrase; a wrong passphrase fails cleanly', async () => {
    const source = { kind: 'passphrase' as const, variable: 'P' };
    const vault = await openVault({ source, env: { P: 'correct horse battery staple' } });
    await vault.secrets.put('app/a', { data: { v: '1' } });
    await vault.cleanup(true);
    const wrong = await openVault({ source, env: { P: 'incorrect horse battery' }, dir: vault.dir, init: false });
    await assert.rejects(wrong.seal.autoUnsealNow(), (e) => isCofferError(e, 'unseal_failed'));
    await wrong.cleanup(true);
    const right = await openVault({ source, env: { P: 'correct horse battery staple' }, dir: vault.dir, init: false });
    await right.seal.autoUnsealNow();
    assert.deepEqual((await right.secrets.get('app/a'))!.data, { v: '1' });
    await right.cleanup();
  });

  it('after a manual seal, unseal with the recovery shares from init, not with others', async () => {
    const vault = await openVault({ ...envKek(3), init: { shares: 3, threshold: 2 } });
    const other = await openVault({ ...envKek(3), init: { shares: 3, threshold: 2 } });
    try {
      await vault.seal.seal();
      await assert.rejects(vault.seal.submitShare(other.shares[0]!), /does not belong/);
      await vault.seal.submitShare(vault.shares[2]!);
      await vault.seal.submitShare(vault.shares[0]!);
      assert.equal(vault.seal.sealed, false);
    } finally {
      await vault.cleanup();
      await other.cleanup();
    }
  });
});

describe('keyrings', () => {
  it('keeps one keyring per namespace and rotates past the wrap limit; a restart counts what was reserved as used', async () => {
    const vault = await openVault({ ...envKek(4), keyring: { maxWraps: 3 } });
    for (let i = 0; i < 7; i++) await vault.secrets.put(`app/s${i}`, { data: { v: String(i) } });
    await vault.secrets.put('db/x', { data: { v: 'x' } });
    const app = vault.seal.keys().keyrings.describe('app')!;
    assert.equal(app.current, 3);
    assert.deepEqual(
      app.versions.map((v) => v.wraps),
      [3, 3, 1],
    );
    assert.equal(vault.seal.keys().keyrings.describe('db')!.current, 1);
    await vault.cleanup(true);
    const again = await openVault({ ...envKek(4), dir: vault.dir, init: false, keyring: { maxWraps: 3 } });
    await again.seal.autoUnsealNow();
    // Version 3 wrapped one key, but its stored count had reserved up to the budget: after a
    // restart that much counts as used, never less than was used.
    assert.deepEqual(
      again.seal
        .keys()
        .keyrings.describe('app')!
        .versions.map((v) => v.wraps),
      [3, 3, 3],
    );
    await again.secrets.put('app/after-restart', { data: { v: 'r' } });
    assert.equal(again.seal.keys().keyrings.describe('app')!.current, 4, 'the next write rotates');
    for (let i = 0; i < 7; i++) assert.deepEqual((await again.secrets.get(`app/s${i}`))!.data, { v: String(i) });
    await again.cleanup();
  });

  it('counts every wrap of concurrent writes sharing a group commit, and checks a record changed on disk again', async () => {
    const vault = await openVault(envKek(6));
    // 40 writes at once: most read the keyring record the write before them in the group put back.
    await Promise.all(Array.from({ length: 40 }, (_, i) => vault.secrets.put(`app/c${i}`, { data: { v: String(i) } })));
    const keyrings = () => vault.seal.keys().keyrings;
    assert.deepEqual(
      keyrings()
        .describe('app')!
        .versions.map((v) => v.wraps),
      [40],
    );
    const key = keyringKey('app');
    const stored = () => JSON.parse(Buffer.from(vault.store.get(key)!).toString('utf8')) as KeyringRecord;

    // One record staged for all 40: the first write reserved a block of the count.
    assert.equal(stored().versions['1']!.wraps, 1 + 1024);
    const changes = await vault.store.changes(0, 1_000);
    assert.equal(changes.filter((c) => c.ops.some((op) => op.key === key)).length, 1, 'one keyring write');

    // Another valid record on disk (not the count this server stored) is what the next write starts from.
    const raised = stored();
    raised.versions['1']!.wraps = 1_000;
    await vault.store.writeRaw([{ type: 'put', key, value: Buffer.from(JSON.stringify(raised)) }]);
    await vault.secrets.put('app/next', { data: { v: 'n' } });
    assert.equal(keyrings().describe('app')!.versions[0]!.wraps, 1_001);
    assert.equal(stored().versions['1']!.wraps, 1_001 + 1024);

    // A malformed one fails its integrity check, however often the bytes before it were read.
    const broken = stored() as unknown as { current: unknown };
    broken.current = 'one';
    const bad = Buffer.from(JSON.stringify(broken));
    await vault.store.writeRaw([{ type: 'put', key, value: bad }]);
    await assert.rejects(vault.secrets.put('app/after', { data: { v: 'x' } }), (e: unknown) =>
      isCofferError(e, 'integrity_error'),
    );
    assert.equal(await vault.secrets.get('app/after').catch(() => undefined), undefined);
    assert.deepEqual(Buffer.from(vault.store.get(key)!), bad, 'the refused write changed nothing');
    await vault.cleanup();
  });

  it('checks a record with a version just added when it is next read: a clock that gave no number is caught', async () => {
    let now = Date.now();
    const vault = await openVault({ ...envKek(7), keyring: { now: () => now } });
    await vault.secrets.put('other/a', { data: { v: '1' } });
    now = Number.NaN; // the new keyring's version is stamped null
    await vault.secrets.put('fresh/a', { data: { v: '1' } });
    now = Date.now();
    const before = Buffer.from(vault.store.get(keyringKey('fresh'))!);
    await assert.rejects(vault.secrets.put('fresh/b', { data: { v: '2' } }), (e: unknown) =>
      isCofferError(e, 'integrity_error'),
    );
    assert.equal(await vault.secrets.get('fresh/b').catch(() => undefined), undefined);
    assert.deepEqual(Buffer.from(vault.store.get(keyringKey('fresh'))!), before, 'the refused write changed nothing');
    await vault.secrets.put('other/b', { data: { v: '2' } }); // another namespace is unaffected
    await vault.cleanup();
  });

  it('never lets a version wrap past its budget across restarts and failed mutations', async () => {
    const vault = await openVault({ ...envKek(9), keyring: { maxWraps: 2_500 } });
    const reopen = async (from: typeof vault) => {
      await from.cleanup(true);
      const next = await openVault({ ...envKek(9), dir: from.dir, init: false, keyring: { maxWraps: 2_500 } });
      await next.seal.autoUnsealNow();
      return next;
    };
    const app = (v: typeof vault) => v.seal.keys().keyrings.describe('app')!;
    await vault.secrets.put('app/1', { data: { v: '1' } });
    // A mutation that takes the key and then fails stages nothing; the count it took stays counted.
    await assert.rejects(
      vault.store.mutate(async (tx) => {
        await vault.seal.keys().keyrings.encryptionKey(tx, 'app', 5);
        throw new Error('refused');
      }),
      /refused/,
    );
    assert.equal(app(vault).versions[0]!.wraps, 6);
    let next = await reopen(vault);
    assert.equal(app(next).versions[0]!.wraps, 1025, 'the reserved block counts as used');
    await next.secrets.put('app/2', { data: { v: '2' } });
    assert.equal(app(next).versions[0]!.wraps, 1026);
    next = await reopen(next);
    assert.equal(app(next).versions[0]!.wraps, 2050);
    await next.secrets.put('app/3', { data: { v: '3' } }); // reserves up to the budget, not past it
    next = await reopen(next);
    assert.deepEqual(app(next).versions, [{ ...app(next).versions[0]!, wraps: 2_500 }]);
    await next.secrets.put('app/4', { data: { v: '4' } });
    assert.equal(app(next).current, 2, 'a spent budget rotates');
    for (const i of [1, 2, 3, 4]) assert.deepEqual((await next.secrets.get(`app/${i}`))!.data, { v: String(i) });
    await next.cleanup();
  });

  it("takes another server's stored count for used, even when it equals a count this one staged in a refused write", async () => {
    const vault = await openVault(envKek(10));
    const keys = vault.seal.keys();
    const here = keys.keyrings;
    // Another primary over the same records (as after a promotion elsewhere, replicated here).
    const primary = new Keyrings(vault.store, keys.provider, keys.clusterId);
    const count = () => here.describe('app')!.versions[0]!.wraps;
    try {
      await vault.store.mutate((tx) => primary.encryptionKey(tx, 'app', 1)); // 1 used, 1,025 stored
      // A write here refused by the write guard (as on a replica): it staged 2,050, never written.
      vault.store.setWriteGuard({
        beforeWrite: () => {
          throw new Error('read_only_replica');
        },
        beforeAck: () => undefined,
      });
      await assert.rejects(
        vault.store.mutate((tx) => here.encryptionKey(tx, 'app', 1)),
        /read_only_replica/,
      );
      vault.store.setWriteGuard(undefined);
      await vault.store.mutate((tx) => primary.encryptionKey(tx, 'app', 1_025)); // 1,026 used: 2,050 stored
      await vault.store.mutate((tx) => primary.encryptionKey(tx, 'app', 500)); // 1,526 used
      assert.equal(count(), 2_050, 'the whole stored count, not what this server counted (1,026)');
      await vault.store.mutate((tx) => here.encryptionKey(tx, 'app', 1));
      assert.equal(count(), 2_051);
    } finally {
      primary.close();
      await vault.cleanup();
    }
  });

  it('rotates before a use that would take a version past its budget', async () => {
    const vault = await openVault({ ...envKek(11), keyring: { maxWraps: 10 } });
    const keyrings = vault.seal.keys().keyrings;
    await vault.store.mutate((tx) => keyrings.encryptionKey(tx, 'app', 9));
    await vault.store.mutate((tx) => keyrings.encryptionKey(tx, 'app', 5));
    assert.deepEqual(
      keyrings.describe('app')!.versions.map((v) => [v.version, v.wraps]),
      [
        [1, 9],
        [2, 5],
      ],
    );
    await vault.cleanup();
  });

  it('a version added in a refused write is not the key of the version the database later holds under that number', async () => {
    let now = 1_000_000;
    const options = { ...envKek(12), keyring: { maxAgeMs: 1000, now: () => now } };
    const vault = await openVault(options);
    await vault.secrets.put('app/1', { data: { v: '1' } });
    now += 1500; // version 1 is too old: the next write adds version 2
    vault.store.setWriteGuard({
      beforeWrite: () => {
        throw new Error('read_only_replica');
      },
      beforeAck: () => undefined,
    });
    await assert.rejects(vault.secrets.put('app/refused', { data: { v: 'x' } }), /read_only_replica/);
    vault.store.setWriteGuard(undefined);
    // The primary's own version 2 (another random key) arrives, as replication applies it.
    const keys = vault.seal.keys();
    const primary = new Keyrings(vault.store, keys.provider, keys.clusterId, { maxAgeMs: 1000, now: () => now });
    assert.equal(await primary.rotate('app'), 2);
    primary.close();
    // Promoted: this server writes and reads under version 2, before and after a restart.
    await vault.secrets.put('app/after', { data: { v: 'after' } });
    assert.deepEqual((await vault.secrets.get('app/after'))!.data, { v: 'after' });
    await vault.cleanup(true);
    const again = await openVault({ ...options, dir: vault.dir, init: false });
    await again.seal.autoUnsealNow();
    assert.deepEqual((await again.secrets.get('app/after'))!.data, { v: 'after' });
    assert.deepEqual((await again.secrets.get('app/1'))!.data, { v: '1' });
    await again.cleanup();
  });

  it('two reads that miss the cache together get one key, and neither is wiped under its caller', async () => {
    const vault = await openVault(envKek(13));
    await vault.secrets.put('app/a', { data: { v: '1' } });
    const keys = vault.seal.keys();
    const fresh = new Keyrings(vault.store, keys.provider, keys.clusterId);
    await closingBoth(vault, fresh, async () => {
      const [a, b] = await Promise.all([fresh.decryptionKey('app', 1), fresh.decryptionKey('app', 1)]);
      assert.equal(a, b, 'one cached key');
      assert.ok(
        a.some((x) => x !== 0),
        'not wiped',
      );
      await new Promise((r) => setImmediate(r));
      assert.ok(
        a.some((x) => x !== 0),
        'still not wiped after the turn',
      );
    });
  });

  it('a new version whose wrap fails, or ends after a seal, leaves no key behind', async () => {
    const vault = await openVault(envKek(14));
    const real = vault.seal.keys().provider;
    let wrapFails = false;
    let hold: Promise<void> | undefined;
    // The real provider, with a wrap that fails (a token pulled) or waits (a slow HSM).
    const provider = {
      kind: real.kind,
      currentVersion: () => real.currentVersion(),
      versionOf: (w: Uint8Array) => real.versionOf(w),
      unwrap: (w: Uint8Array, c: Uint8Array) => real.unwrap(w, c),
      wrap: async (k: Uint8Array, c: Uint8Array) => {
        if (wrapFails) throw new Error('token removed');
        await hold;
        return real.wrap(k, c);
      },
    } as unknown as MasterKeyProvider;
    const drawn: Uint8Array[] = [];
    const ring = new Keyrings(vault.store, provider, vault.seal.keys().clusterId, {
      random: (n) => {
        const bytes = systemRandom(n);
        drawn.push(bytes);
        return bytes;
      },
    });
    const wiped = (b: Uint8Array | undefined) => b !== undefined && b.length === 32 && b.every((x) => x === 0);
    await closingBoth(vault, ring, async () => {
      wrapFails = true;
      await assert.rejects(
        vault.store.mutate((tx) => ring.encryptionKey(tx, 'fresh')),
        /token removed/,
      );
      assert.ok(wiped(drawn.at(-1)), 'the key whose wrap failed is wiped');
      wrapFails = false;
      let release!: () => void;
      hold = new Promise((r) => (release = r));
      const pending = vault.store.mutate((tx) => ring.encryptionKey(tx, 'other'));
      await new Promise((r) => setImmediate(r)); // the wrap is waiting
      ring.close();
      release();
      await assert.rejects(pending, (e: unknown) => isCofferError(e, 'sealed'));
      assert.ok(wiped(drawn.at(-1)), 'the key wrapped after the seal is wiped');
      assert.equal(ring.cachedVersions, 0, 'and not cached');
      assert.equal(vault.store.get(keyringKey('other')), undefined);
    });
  });

  it('refuses a wrap count that is not a positive integer', async () => {
    const vault = await openVault(envKek(8));
    const keyrings = vault.seal.keys().keyrings;
    for (const uses of [0, -1, 1.5, Number.NaN])
      await assert.rejects(
        vault.store.mutate((tx) => keyrings.encryptionKey(tx, 'app', uses)),
        RangeError,
        String(uses),
      );
    assert.equal(vault.store.get(keyringKey('app')), undefined, 'no keyring was created');
    await vault.cleanup();
  });

  it('rotates by age with an injected clock', async () => {
    let now = 1_000_000;
    const vault = await openVault({ ...envKek(5), keyring: { maxAgeMs: 1000, now: () => now } });
    await vault.secrets.put('app/a', { data: { v: '1' } });
    now += 1500;
    await vault.secrets.put('app/b', { data: { v: '2' } });
    assert.equal(vault.seal.keys().keyrings.describe('app')!.current, 2);
    assert.deepEqual((await vault.secrets.get('app/a'))!.data, { v: '1' });
    await vault.cleanup();
  });

  it('re-wraps every DEK of one namespace only, resumes after a restart, and keeps values', async () => {
    const vault = await openVault(envKek(6));
    for (let i = 0; i < 150; i++) await vault.secrets.put(`app/s${i}`, { data: { v: String(i) } });
    await vault.secrets.put('app', { data: { v: 'root-of-ns' } });
    await vault.secrets.put('app-2/x', { data: { v: 'neighbour' } });
    const target = await vault.seal.keys().keyrings.rotate('app');
    await vault.rewrap.start('app', target);
    await vault.cleanup(true); // stops mid-way: seal ends the job after its current batch
    const again = await openVault({ ...envKek(6), dir: vault.dir, init: false });
    await again.seal.autoUnsealNow(); // resumes the persisted job
    await again.rewrap.idle();
    const progress = (await again.rewrap.progress('app'))!;
    assert.equal(progress.state, 'done');
    assert.ok(progress.rewrapped <= 151 && progress.scanned >= 151 - 64);
    for (let i = 0; i < 150; i++)
      assert.equal(recordKeyringVersion((await again.barrier.get(versionKey(`app/s${i}`, 1)))!), target);
    assert.equal(recordKeyringVersion((await again.barrier.get(versionKey('app', 1)))!), target);
    assert.equal(
      recordKeyringVersion((await again.barrier.get(versionKey('app-2/x', 1)))!),
      1,
      'another namespace is untouched',
    );
    assert.deepEqual((await again.secrets.get('app/s149'))!.data, { v: '149' });
    await again.cleanup();
  });
});

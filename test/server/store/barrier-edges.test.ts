import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { z } from 'zod';
import { concatBytes, encodeContext } from '../../../server/crypto/bytes.js';
import { sealEnvelope } from '../../../server/crypto/envelope.js';
import { CofferError, isCofferError } from '../../../server/errors.js';
import { BARRIER_TAG, Barrier, sealValue } from '../../../server/store/barrier.js';
import { jsonCodec } from '../../../server/store/codec.js';
import { FORMAT_KEY, SEAL_KEY, keyringKey, logKey, prefixEnd } from '../../../server/store/keys.js';
import { openVault, type TestVault } from '../../helpers.js';

/**
 * The storage barrier (server/store/barrier.ts, docs/storage.md) at its edges: the context a
 * value is sealed under, the refusals and what they say, the typed tables, unbounded reads,
 * mutations that only delete, sys keyring versions that do not open, the format marker followed
 * by `open` and `refresh`, and the migration's warning. The rest is in
 * barrier.test.ts and test/integration/migration.test.ts.
 */

const envKek = (fill: number) => ({
  source: { kind: 'env' as const, variable: 'K' },
  env: { K: Buffer.alloc(32, fill).toString('base64') },
});
const code =
  (c: string, check: (e: CofferError) => boolean = () => true) =>
  (e: unknown) =>
    isCofferError(e) && e.code === c && check(e);
const record = z.strictObject({ n: z.number() });

interface LogLine {
  level: number;
  msg: string;
  key?: string;
  err?: string;
}

describe('storage barrier: edges', function () {
  this.timeout(30_000);
  let vault: TestVault;
  let lines: LogLine[];
  const messages = (level: number) => lines.filter((l) => l.level === level).map((l) => l.msg);
  beforeEach(async () => {
    lines = [];
    const log = pino(
      { level: 'info' },
      new Writable({ write: (chunk, _e, done) => (lines.push(JSON.parse(String(chunk)) as LogLine), done()) }),
    );
    vault = await openVault({ ...envKek(7), log });
  });
  afterEach(() => vault.cleanup());

  const table = () => vault.barrier.table('test/', jsonCodec(record), 'test record');
  const sys = () => {
    const keys = vault.seal.keys();
    return {
      clusterId: keys.clusterId,
      version: keys.keyrings.describe('sys')!.current,
      key: () => keys.keyrings.decryptionKey('sys', keys.keyrings.describe('sys')!.current),
    };
  };
  const putRaw = (key: string, value: Uint8Array) => vault.store.writeRaw([{ type: 'put', key, value }]);

  it('seals under the context "coffer/barrier", the cluster id and the storage key', async () => {
    const { clusterId, version, key } = sys();
    const sysKey = await key();
    const plaintext = Buffer.from('{"n":1}');
    const made = (label: string, cluster: string, at: string) =>
      concatBytes(
        Uint8Array.of(BARRIER_TAG),
        sealEnvelope(sysKey, version, plaintext, encodeContext(label, cluster, at)),
      );
    await putRaw('test/a', made('coffer/barrier', clusterId, 'test/a'));
    assert.deepEqual(
      Buffer.from((await vault.barrier.get('test/a'))!),
      plaintext,
      'an envelope made here, to the documented layout, opens',
    );
    for (const [what, value] of [
      ['another label', made('coffer/barrier2', clusterId, 'test/a')],
      ['an empty label', made('', clusterId, 'test/a')],
      ['another cluster', made('coffer/barrier', '0'.repeat(32), 'test/a')],
      ['another key', made('coffer/barrier', clusterId, 'test/b')],
    ] as const) {
      await putRaw('test/a', value);
      await assert.rejects(vault.barrier.get('test/a'), code('decryption_failed'), what);
    }
  });

  it('says what did not open: the barrier names the key in the detail only, a table names its records', async () => {
    await table().mutate((tx) => table().write(tx, 'a', { n: 1 }));
    const value = Buffer.from(vault.store.get('test/a')!);
    value[value.length - 1]! ^= 1;
    await putRaw('test/a', value);
    await assert.rejects(
      vault.barrier.get('test/a'),
      code(
        'decryption_failed',
        (e) => e.message === 'decryption failed' && e.detail === 'the stored value of test/a did not open',
      ),
    );
    const integrity = code(
      'integrity_error',
      (e) =>
        e.message === 'a stored test record failed its integrity check' &&
        e.detail === 'test/a: the stored value of test/a did not open',
    );
    await assert.rejects(table().get('a'), integrity);
    await assert.rejects(table().scan(), code('integrity_error'));
    await assert.rejects(
      table().mutate((tx) => table().read(tx, 'a')),
      integrity,
      'inside a mutation too',
    );
  });

  it('a value naming a sys keyring version that does not exist does not open, said as such', async () => {
    const { clusterId } = sys();
    await putRaw('test/a', sealValue(clusterId, 'test/a', 99, randomBytes(32), Buffer.from('{"n":1}')));
    await assert.rejects(vault.barrier.get('test/a'), code('decryption_failed'));
    await assert.rejects(
      table().get('a'),
      code('integrity_error', (e) => e.detail === 'test/a: did not open'),
    );
    await assert.rejects(
      table().mutate((tx) => table().read(tx, 'a')),
      code('integrity_error', (e) => e.detail === 'test/a: the stored value of test/a did not open'),
    );
  });

  it('a sys keyring version that does not unwrap fails only the reads of values under it', async () => {
    const kr = JSON.parse(Buffer.from(vault.store.get(keyringKey('sys'))!).toString()) as {
      versions: Record<string, { wrapped: string; created_at: number; wraps: number }>;
    };
    const clusterId = sys().clusterId;
    const broken = Buffer.from(Object.values(kr.versions)[0]!.wrapped, 'base64');
    broken[broken.length - 1]! ^= 1;
    kr.versions['99'] = { wrapped: broken.toString('base64'), created_at: Date.now(), wraps: 0 };
    await putRaw(keyringKey('sys'), Buffer.from(JSON.stringify(kr)));
    await putRaw('test/old', sealValue(clusterId, 'test/old', 99, randomBytes(32), Buffer.from('{"n":9}')));
    await table().mutate((tx) => table().write(tx, 'new', { n: 1 }));
    assert.deepEqual(await table().get('new'), { n: 1 }, 'a mutation that does not read under it commits');
    await assert.rejects(
      table().mutate((tx) => table().read(tx, 'old')),
      code('integrity_error', (e) => e.detail === 'test/old: did not open'),
      'the version’s own error, not a missing version',
    );
  });

  it('tables: write, read, delete, scan (under, after, limit) and ids', async () => {
    const t = table();
    await t.mutate((tx) => {
      for (const id of ['a/1', 'a/2', 'b/1']) t.write(tx, id, { n: id.length });
      assert.deepEqual(t.read(tx, 'a/1'), { n: 3 }, 'its own write, inside the mutation');
    });
    assert.equal(t.key('a/1'), 'test/a/1');
    assert.deepEqual(await t.get('a/2'), { n: 3 });
    assert.equal(t.has('b/1'), true);
    assert.equal(t.has('c'), false);
    assert.deepEqual(
      (await t.scan()).map(([id]) => id),
      ['a/1', 'a/2', 'b/1'],
    );
    assert.deepEqual(
      (await t.scan({ limit: 1 })).map(([id]) => id),
      ['a/1'],
    );
    assert.deepEqual(
      (await t.scan({ under: 'a/' })).map(([id]) => id),
      ['a/1', 'a/2'],
    );
    assert.deepEqual(
      (await t.scan({ after: 'a/1' })).map(([id]) => id),
      ['a/2', 'b/1'],
    );
    assert.deepEqual(await t.ids(), ['a/1', 'a/2', 'b/1']);
    assert.deepEqual(await t.ids('a/'), ['a/1', 'a/2']);
    await t.mutate((tx) => t.delete(tx, 'a/2'));
    assert.equal(await t.get('a/2'), undefined);
    assert.equal(vault.store.get('test/a/2'), undefined);
    assert.deepEqual(await t.ids(), ['a/1', 'b/1']);
  });

  it('reads without a limit return every row; has, count and the limits see the same keys', async () => {
    await table().mutate((tx) => {
      for (const id of ['1', '2', '3']) table().write(tx, id, { n: Number(id) });
    });
    const end = prefixEnd('test/');
    assert.equal((await vault.barrier.range('test/', end)).length, 3);
    assert.deepEqual(await vault.barrier.names('test/', end), ['test/1', 'test/2', 'test/3']);
    assert.equal((await vault.barrier.scanPrefix('test/')).length, 3);
    assert.equal((await vault.barrier.range('test/', end, 2)).length, 2);
    assert.equal((await vault.barrier.scanPrefix('test/', 'test/1', 1))[0]![0], 'test/2');
    assert.equal(await vault.barrier.count('test/', end), 3);
    assert.equal(vault.barrier.has('test/2'), true);
    assert.equal(vault.barrier.has('test/4'), false);
    await vault.seal.seal();
    await assert.rejects(vault.barrier.scanPrefix('test/'), code('sealed'));
    await assert.rejects(vault.barrier.count('test/', end), code('sealed'));
  });

  it('passes the clear records through unchanged, inside and outside a mutation', async () => {
    assert.deepEqual(await vault.barrier.get(SEAL_KEY), vault.store.get(SEAL_KEY));
    const seal = vault.store.get(SEAL_KEY)!;
    await vault.barrier.mutate((tx) => {
      assert.deepEqual(tx.get(SEAL_KEY), seal);
      tx.put('sys/repl/test', Buffer.from('clear'));
    });
    assert.equal(Buffer.from(vault.store.get('sys/repl/test')!).toString(), 'clear');
    await vault.barrier.mutate((tx) => tx.del('sys/repl/test'));
    assert.equal(vault.store.get('sys/repl/test'), undefined);
  });

  it('a mutation that only deletes writes the deletes and nothing else (no sys key use); a put then a delete leaves nothing', async () => {
    await table().mutate((tx) => table().write(tx, 'a', { n: 1 }));
    const seq = vault.store.lastSeq;
    await vault.barrier.mutate((tx) => {
      tx.del('test/a');
      tx.put('test/b', Buffer.from('{"n":2}'));
      tx.del('test/b');
      assert.equal(tx.get('test/b'), undefined);
    });
    const changes = await vault.store.changes(seq, 10);
    assert.equal(changes.length, 1);
    assert.deepEqual(changes[0]!.ops, [
      { type: 'del', key: 'test/a' },
      { type: 'del', key: 'test/b' },
    ]);
    assert.equal(vault.store.get('test/b'), undefined);
  });

  it('refuses a mutation with the keys of a vault sealed since, even one that only deletes', async () => {
    await table().mutate((tx) => table().write(tx, 'a', { n: 1 }));
    const keys = vault.seal.keys();
    await vault.seal.seal();
    await assert.rejects(
      vault.seal.barrier.mutateWith(keys, (tx) => tx.del('test/a')),
      code('sealed'),
    );
    assert.ok(vault.store.get('test/a'), 'nothing was deleted');
  });

  it('refuses to open with an unreadable format marker', async () => {
    await putRaw(FORMAT_KEY, Buffer.from('{"format":3}'));
    await vault.seal.seal();
    await assert.rejects(
      vault.seal.autoUnsealNow(),
      code(
        'internal',
        (e) =>
          e.message ===
          'the storage format marker sys/format is unreadable: this data directory was written by an unknown version',
      ),
    );
    assert.equal(vault.seal.sealed, true);
  });

  it('refresh follows the format marker both ways, and says so once when the migration arrives', async () => {
    const replicated =
      'storage: the primary’s migration to the storage barrier has been replicated; every value is sealed now';
    await vault.seal.barrier.refresh();
    assert.equal(vault.seal.barrier.acceptsLegacyValues, false);
    const inProgress = {
      format: 2,
      migration: { from_seq: 0, cursor: null, sealed: 0, started_at: new Date().toISOString() },
    };
    for (const marker of [undefined, inProgress]) {
      await vault.store.writeRaw([
        marker === undefined
          ? { type: 'del', key: FORMAT_KEY }
          : { type: 'put', key: FORMAT_KEY, value: Buffer.from(JSON.stringify(marker)) },
      ]);
      await vault.seal.barrier.refresh();
      assert.equal(vault.seal.barrier.acceptsLegacyValues, true, JSON.stringify(marker));
      await putRaw(FORMAT_KEY, Buffer.from('{"format":2}'));
      await vault.seal.barrier.refresh();
      assert.equal(vault.seal.barrier.acceptsLegacyValues, false);
    }
    await vault.seal.barrier.refresh();
    assert.deepEqual(
      messages(30).filter((m) => m === replicated).length,
      2,
      'once per change to sealed, not on a refresh that changes nothing',
    );
  });

  it('a server that may not write opens a store whose migration is under way in the legacy mode, and says why', async () => {
    await putRaw(
      FORMAT_KEY,
      Buffer.from(
        JSON.stringify({
          format: 2,
          migration: { from_seq: 0, cursor: null, sealed: 0, started_at: new Date().toISOString() },
        }),
      ),
    );
    await vault.seal.seal();
    vault.store.setWriteGuard({
      beforeWrite: () => {
        throw new CofferError('read_only_replica', 'this server is a read-only replica (test)');
      },
      beforeAck: () => undefined,
    });
    await vault.seal.autoUnsealNow();
    assert.equal(vault.seal.barrier.acceptsLegacyValues, true);
    assert.ok(
      messages(30).includes(
        'storage: this server cannot write, so the values written before the storage barrier are read as they are until the primary’s migration is replicated here',
      ),
    );
  });

  it('the migration leaves a value that carries the envelope but does not open as it is, with a warning naming its key', async () => {
    const bad = Uint8Array.of(BARRIER_TAG, 1, 2, 3);
    await putRaw('test/bad', bad);
    await putRaw(
      FORMAT_KEY,
      Buffer.from(
        JSON.stringify({
          format: 2,
          migration: { from_seq: 0, cursor: null, sealed: 0, started_at: new Date().toISOString() },
        }),
      ),
    );
    await vault.seal.seal();
    await vault.seal.autoUnsealNow();
    assert.equal(vault.seal.barrier.acceptsLegacyValues, false, 'migrated');
    assert.deepEqual(Buffer.from(vault.store.get('test/bad')!), Buffer.from(bad));
    const warning = lines.find((l) => l.level === 40 && l.key === 'test/bad');
    assert.equal(
      warning?.msg,
      'storage: a value carries the barrier envelope but does not open under its key: left as it is (reading it fails its integrity check)',
    );
    await assert.rejects(table().get('bad'), code('integrity_error'));
  });

  it('a failed drop of the change-log records from before the migration is a warning: the barrier opens, and the next open drops them', async () => {
    const old = logKey(1);
    await putRaw(old, Buffer.from('{"seq":1,"ops":[]}'));
    await putRaw(FORMAT_KEY, Buffer.from(JSON.stringify({ format: 2, legacy_log_until: 1 })));
    const writeRaw = vault.store.writeRaw.bind(vault.store);
    vault.store.writeRaw = () => Promise.reject(new CofferError('storage_full', 'the disk is full (test)'));
    const barrier = new Barrier(
      vault.store,
      () => new CofferError('sealed', 'sealed'),
      pino(
        { level: 'info' },
        new Writable({ write: (chunk, _e, done) => (lines.push(JSON.parse(String(chunk)) as LogLine), done()) }),
      ),
    );
    try {
      await barrier.open(vault.seal.keys());
    } finally {
      vault.store.writeRaw = writeRaw;
    }
    assert.equal(barrier.acceptsLegacyValues, false, 'open, sealed mode');
    assert.ok(vault.store.get(old), 'the record is still there');
    const warning = lines.find((l) => l.level === 40 && l.err === 'the disk is full (test)');
    assert.equal(
      warning?.msg,
      'storage: could not drop the change-log records written before the storage barrier; retried at the next unseal',
    );
    await barrier.open(vault.seal.keys());
    assert.equal(vault.store.get(old), undefined, 'dropped at the next open');
  });
});

import assert from 'node:assert/strict';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../../server/store/db.js';
import { logKey, parseVersionKey, versionKey } from '../../../server/store/keys.js';
import { openVault, tempDir } from '../../helpers.js';

const bytes = (s: string) => new Uint8Array(Buffer.from(s));
const text = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString() : undefined);

describe('store', () => {
  let dir: string;
  let store: Store;
  beforeEach(async () => {
    dir = await tempDir('coffer-store-');
    store = await Store.open(join(dir, 'db'), { now: () => 1_000, retain: 5 });
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('commits a mutation as one batch with the next sequence number and a change-log record', async () => {
    await store.mutate((tx) => {
      tx.put('a', bytes('1'));
      tx.put('b', bytes('2'));
      tx.del('c');
    });
    assert.equal(store.lastSeq, 1);
    assert.equal(text(store.get('a')), '1');
    const [record] = await store.changes(0, 10);
    assert.deepEqual(record, {
      seq: 1,
      time: 1_000,
      ops: [
        { type: 'put', key: 'a', value: Buffer.from('1').toString('base64') },
        { type: 'put', key: 'b', value: Buffer.from('2').toString('base64') },
        { type: 'del', key: 'c' },
      ],
    });
  });

  it('writes nothing and keeps the sequence when the mutation throws', async () => {
    await assert.rejects(
      store.mutate((tx) => {
        tx.put('a', bytes('1'));
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(store.get('a'), undefined);
    assert.equal(store.lastSeq, 0);
    assert.deepEqual(await store.changes(0, 10), []);
    await store.mutate((tx) => tx.put('b', bytes('2')));
    assert.equal(store.lastSeq, 1, 'a failed mutation does not block the queue');
  });

  it('lets a mutation read its own staged writes and deletes', async () => {
    await store.mutate((tx) => tx.put('k', bytes('old')));
    await store.mutate((tx) => {
      tx.put('k', bytes('new'));
      assert.equal(text(tx.get('k')), 'new');
      tx.del('k');
      assert.equal(tx.get('k'), undefined);
    });
    assert.equal(store.get('k'), undefined);
  });

  it('runs concurrent mutations one at a time (no lost read-modify-write)', async () => {
    await Promise.all(
      Array.from({ length: 50 }, () =>
        store.mutate(async (tx) => {
          const n = Number(text(tx.get('counter')) ?? '0');
          await new Promise((r) => setImmediate(r));
          tx.put('counter', bytes(String(n + 1)));
        }),
      ),
    );
    assert.equal(text(store.get('counter')), '50');
    assert.equal(store.lastSeq, 50);
  });

  it('commits concurrent mutations together: one synced batch for many, each with its own record', async () => {
    await store.mutate((tx) => tx.put('warm', bytes('1'))); // a batch in flight lets the next ones gather
    const before = store.syncedBatches;
    const seqs = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.mutate((tx) => {
          tx.put(`g${i}`, bytes(String(i)));
          return i;
        }),
      ),
    );
    assert.deepEqual(
      seqs,
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.equal(store.lastSeq, 51);
    assert.ok(
      store.syncedBatches - before <= 2,
      `50 concurrent mutations took ${store.syncedBatches - before} synced batches`,
    );
    const records = await store.changes(46, 100);
    assert.deepEqual(
      records.map((r) => r.seq),
      [47, 48, 49, 50, 51],
      'each mutation keeps its own change-log record',
    );
    assert.deepEqual(records.at(-1)?.ops, [{ type: 'put', key: 'g49', value: Buffer.from('49').toString('base64') }]);
    for (let i = 0; i < 50; i++) assert.equal(text(store.get(`g${i}`)), String(i));
  });

  it('drops a failing mutation from its group alone: the others commit, the sequence has no gap', async () => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 9 }, (_, i) =>
        store.mutate((tx) => {
          tx.put(`m${i}`, bytes('v'));
          if (i % 3 === 1) throw new Error(`boom ${i}`);
          return i;
        }),
      ),
    );
    assert.deepEqual(
      outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message)),
      [0, 'boom 1', 2, 3, 'boom 4', 5, 6, 'boom 7', 8],
    );
    for (const i of [1, 4, 7]) assert.equal(store.get(`m${i}`), undefined);
    for (const i of [0, 2, 3, 5, 6, 8]) assert.equal(text(store.get(`m${i}`)), 'v');
    assert.equal(store.lastSeq, 6);
    const records = await store.changes(0, 100);
    assert.deepEqual(
      records.map((r) => r.seq),
      [2, 3, 4, 5, 6],
      'retain 5: the newest five, contiguous',
    );
    assert.deepEqual(
      records.map((r) => r.ops[0]?.key),
      ['m2', 'm3', 'm5', 'm6', 'm8'],
    );
  });

  it('without a change log: writes and sequence numbers as before, no records, and those of an earlier run dropped at open', async () => {
    for (let i = 1; i <= 3; i++) await store.mutate((tx) => tx.put(`k${i}`, bytes('v')));
    await store.close();
    store = await Store.open(join(dir, 'db'), { now: () => 1_000, retain: 5, changeLog: false });
    assert.equal(store.lastSeq, 3);
    const concurrent = Array.from({ length: 4 }, (_, i) => store.mutate((tx) => tx.put(`c${i}`, bytes(String(i)))));
    await Promise.all(concurrent);
    assert.equal(store.lastSeq, 7, 'each mutation still takes its own sequence number');
    for (let i = 0; i < 4; i++) assert.equal(text(store.get(`c${i}`)), String(i));
    assert.deepEqual(
      (await store.changes(0, 100)).map((r) => r.seq),
      [],
      'records 1-3 could not continue to 4-7, for which none were written',
    );
    await store.close();
    store = await Store.open(join(dir, 'db'), { now: () => 1_000, retain: 5 });
    assert.equal(store.lastSeq, 7, 'the sequence number was stored without the records');
    await store.mutate((tx) => tx.put('after', bytes('v')));
    assert.deepEqual(
      (await store.changes(0, 100)).map((r) => r.seq),
      [8],
      'with the log back on, records resume at the next number, after a gap a shipper must notice',
    );
  });

  it('with a change log: an open keeps a log that ends at the sequence number and drops one that ends before it', async () => {
    for (let i = 1; i <= 3; i++) await store.mutate((tx) => tx.put(`k${i}`, bytes('v')));
    await store.close();
    store = await Store.open(join(dir, 'db'), { now: () => 1_000 });
    assert.deepEqual(
      (await store.changes(0, 100)).map((r) => r.seq),
      [1, 2, 3],
    );
    // A snapshot applied without records (a replica's bootstrap) moves the number past the log.
    await store.writeRaw([{ type: 'put', key: 'boot', value: bytes('b') }], 10);
    await store.close();
    store = await Store.open(join(dir, 'db'), { now: () => 1_000 });
    assert.equal(store.lastSeq, 10);
    assert.equal(text(store.get('boot')), 'b');
    assert.deepEqual(await store.changes(0, 100), [], 'records 1-3 cannot continue to 10');
    await store.mutate((tx) => tx.put('k11', bytes('v')));
    assert.deepEqual(
      (await store.changes(0, 100)).map((r) => r.seq),
      [11],
    );
  });

  it('lets a mutation read the uncommitted writes of those before it in its group, and acknowledges none before the sync', async () => {
    await store.mutate((tx) => tx.put('x', bytes('0')));
    const seen: (string | undefined)[] = [];
    let committedBeforeAck: string | undefined = 'unset';
    const first = store.mutate((tx) => tx.put('x', bytes('1')));
    const second = store.mutate((tx) => {
      seen.push(text(tx.get('x')));
      seen.push(text(store.get('x'))); // outside the mutation: the committed value only
      tx.del('x');
    });
    const third = store.mutate((tx) => {
      seen.push(text(tx.get('x')));
    });
    await first.then(() => (committedBeforeAck = text(store.get('x'))));
    await Promise.all([second, third]);
    assert.deepEqual(seen, ['1', '0', undefined]);
    assert.equal(
      committedBeforeAck,
      undefined,
      'the first was acknowledged with its whole group durable (the second deleted x)',
    );
    assert.equal(store.get('x'), undefined);
  });

  it('refuses a mutation the write guard refuses and commits the rest of its group', async () => {
    let refuse = 'g1';
    const staged: string[] = [];
    store.setWriteGuard({
      beforeWrite: () => {
        if (staged.at(-1) === refuse) throw new Error('fenced');
      },
      beforeAck: () => undefined,
    });
    const outcomes = await Promise.allSettled(
      ['g0', 'g1', 'g2'].map((k) =>
        store.mutate((tx) => {
          staged.push(k);
          tx.put(k, bytes('v'));
        }),
      ),
    );
    refuse = '';
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.equal(store.get('g1'), undefined);
    assert.equal(store.lastSeq, 2);
  });

  it('does not commit a mutation that staged nothing', async () => {
    await store.mutate(() => undefined);
    assert.equal(store.lastSeq, 0);
  });

  it('keeps the change log bounded to its retention window', async () => {
    for (let i = 0; i < 12; i++) await store.mutate((tx) => tx.put(`k${i}`, bytes('v')));
    const records = await store.changes(0, 100);
    assert.deepEqual(
      records.map((r) => r.seq),
      [8, 9, 10, 11, 12],
    );
    assert.equal(store.get(logKey(7)), undefined);
  });

  it('restores the sequence number after a reopen', async () => {
    await store.mutate((tx) => tx.put('a', bytes('1')));
    await store.mutate((tx) => tx.put('a', bytes('2')));
    await store.close();
    store = await Store.open(join(dir, 'db'));
    assert.equal(store.lastSeq, 2);
    await store.mutate((tx) => tx.put('a', bytes('3')));
    assert.equal(store.lastSeq, 3);
  });

  it('leaves no write-ahead log to replay after a clean close, and every value is there after the reopen', async () => {
    const logBytes = async () => {
      let total = 0;
      for (const name of await readdir(join(dir, 'db')))
        if (/^[0-9]+\.log$/.test(name)) total += (await stat(join(dir, 'db', name))).size;
      return total;
    };
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => store.mutate((tx) => tx.put(`big${i}`, new Uint8Array(10_000).fill(i)))),
    );
    assert.ok((await logBytes()) > 2_000_000, 'the writes are in the log, not yet in a table');
    const seq = store.lastSeq;
    await store.close();
    assert.equal(await logBytes(), 0, 'the memtable was written out as a table at the close');
    store = await Store.open(join(dir, 'db'));
    assert.equal(store.lastSeq, seq);
    for (let i = 0; i < 200; i++)
      assert.ok(Buffer.from(store.get(`big${i}`) ?? []).equals(Buffer.alloc(10_000, i)), `big${i}`);
  });

  it('refuses a second open of the same directory with a clear error', async () => {
    await assert.rejects(Store.open(join(dir, 'db')), /in use by another Coffer process/);
  });

  it('refuses reads after close', async () => {
    await store.close();
    assert.throws(() => store.get('a'), /store is closed/);
    store = await Store.open(join(dir, 'db'));
  });

  it('round-trips version keys, including single-segment paths', () => {
    for (const [path, version] of [
      ['app', 1],
      ['app/db/x', 4_294_967_295],
    ] as const) {
      assert.deepEqual(parseVersionKey(versionKey(path, version)), { path, version });
    }
    assert.ok(versionKey('app', 2) < versionKey('app', 10), 'versions sort numerically');
  });
});

describe('check-and-set under concurrency', () => {
  it('has exactly one winner per expected version among 100 concurrent writers', async () => {
    const vault = await openVault({
      source: { kind: 'env', variable: 'K' },
      env: { K: Buffer.alloc(32, 9).toString('base64') },
    });
    try {
      await vault.secrets.put('app/race', { data: { v: 'start' } });
      const results = await Promise.allSettled(
        Array.from({ length: 100 }, (_, i) => vault.secrets.put('app/race', { data: { v: `w${i}` }, cas: 1 })),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      assert.equal(won.length, 1);
      for (const r of results)
        if (r.status === 'rejected') assert.equal((r.reason as { code: string }).code, 'cas_mismatch');
      const meta = (await vault.secrets.metadata('app/race'))!;
      assert.equal(meta.current_version, 2);
      assert.deepEqual(
        meta.versions.map((v) => v.version),
        [1, 2],
      );
      // Unconditional writers all land, with strictly increasing versions.
      const versions = await Promise.all(
        Array.from({ length: 50 }, (_, i) => vault.secrets.put('app/race', { data: { v: `u${i}` } })),
      );
      assert.deepEqual(
        versions.map((v) => v.version).sort((a, b) => a - b),
        Array.from({ length: 50 }, (_, i) => i + 3),
      );
    } finally {
      await vault.cleanup();
    }
  });
});

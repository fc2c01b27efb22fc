import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeChange, encodeChange, type StoredOp } from '../../../server/store/change-log.js';
import { Store } from '../../../server/store/db.js';
import { logKey } from '../../../server/store/keys.js';
import { tempDir } from '../../helpers.js';

const ops: StoredOp[] = [
  { type: 'put', key: 'secrets/v/team/db', value: Uint8Array.from([0, 255, 1, 254, 0x7b]) },
  { type: 'put', key: 'ключ/é/☃', value: new Uint8Array(0) },
  { type: 'del', key: 'secrets/m/old' },
  { type: 'put', key: 'k', value: new Uint8Array(70_000).fill(7) },
];
const asShipped = (list: StoredOp[]) =>
  list.map((op) =>
    op.type === 'put' ? { type: 'put', key: op.key, value: Buffer.from(op.value).toString('base64') } : op,
  );

describe('change-log records', () => {
  it('round-trips puts (any bytes, empty, large), deletes and non-ASCII keys, with no base64 stored', () => {
    const stored = encodeChange(42, 1_733_000_000_123, ops);
    assert.deepEqual(decodeChange(stored), { seq: 42, time: 1_733_000_000_123, ops: asShipped(ops) });
    const json = Buffer.byteLength(JSON.stringify({ seq: 42, time: 1_733_000_000_123, ops: asShipped(ops) }));
    assert.ok(stored.length < json * 0.8, `${stored.length} bytes stored against ${json} as JSON`);
    assert.deepEqual(decodeChange(encodeChange(1, 0, [])), { seq: 1, time: 0, ops: [] });
  });

  it('still reads a record of the JSON format written before', () => {
    const legacy = {
      seq: 7,
      time: 5,
      ops: [
        { type: 'put', key: 'a', value: 'AQI=' },
        { type: 'del', key: 'b' },
      ],
    };
    assert.deepEqual(decodeChange(Buffer.from(JSON.stringify(legacy))), legacy);
    assert.throws(() => decodeChange(Buffer.from(JSON.stringify({ ...legacy, extra: 1 }))));
  });

  it('refuses every truncation, a trailing byte, an unknown format or operation, and a bad head', () => {
    const stored = encodeChange(3, 9, ops.slice(0, 3));
    for (let n = 0; n < stored.length; n++)
      assert.throws(() => decodeChange(stored.subarray(0, n)), /unreadable|JSON/, `cut to ${n} bytes`);
    assert.throws(() => decodeChange(Buffer.concat([stored, Buffer.from([0])])), /bytes after its last operation/);
    const other = Buffer.from(stored);
    other[0] = 2;
    assert.throws(() => decodeChange(other), /unknown format 2/);
    const badOp = Buffer.from(stored);
    badOp[21] = 9; // the first operation's type
    assert.throws(() => decodeChange(badOp), /unknown operation 9/);
    const zeroSeq = Buffer.from(stored);
    zeroSeq.writeDoubleBE(0, 1);
    assert.throws(() => decodeChange(zeroSeq), /positive integer/);
    const moreOps = Buffer.from(stored);
    moreOps.writeUInt32BE(4, 17); // one operation more than the record holds
    assert.throws(() => decodeChange(moreOps), /cut short/);
    const nanTime = Buffer.from(stored);
    nanTime.writeDoubleBE(Number.NaN, 9);
    assert.throws(() => decodeChange(nanTime), /time/);
  });

  it('refuses to encode a bad sequence number, time or an oversize key', () => {
    assert.throws(() => encodeChange(0, 1, []), RangeError);
    assert.throws(() => encodeChange(1.5, 1, []), RangeError);
    assert.throws(() => encodeChange(1, Number.POSITIVE_INFINITY, []), RangeError);
    assert.throws(() => encodeChange(1, 1, [{ type: 'del', key: 'x'.repeat(65_536) }]), RangeError);
  });

  it('a mutation whose record cannot be encoded (an oversize key) fails alone; its group commits', async () => {
    const dir = await tempDir('coffer-changelog-');
    const store = await Store.open(join(dir, 'db'));
    try {
      const results = await Promise.allSettled([
        store.mutate((tx) => void tx.put('a', Buffer.from('1'))),
        store.mutate((tx) => void tx.put('k'.repeat(70_000), Buffer.from('2'))),
        store.mutate((tx) => void tx.put('b', Buffer.from('3'))),
      ]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'rejected', 'fulfilled'],
      );
      assert.ok((results[1] as PromiseRejectedResult).reason instanceof RangeError);
      assert.equal(store.lastSeq, 2, 'no gap in the sequence');
      assert.deepEqual(
        (await store.changes(0, 10)).map((c) => c.ops.map((op) => op.key)),
        [['a'], ['b']],
      );
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a replica keeps the records it applies as the primary shipped them', async () => {
    const dir = await tempDir('coffer-changelog-');
    const primary = await Store.open(join(dir, 'primary'), { now: () => 7 });
    const replica = await Store.open(join(dir, 'replica'));
    try {
      await primary.mutate((tx) => {
        tx.put('a', Uint8Array.from([0, 1, 2]));
        tx.del('gone');
      });
      await primary.mutate((tx) => void tx.put('b', new Uint8Array(0)));
      const shipped = await primary.changes(0, 10);
      await replica.applyReplicated(shipped);
      assert.deepEqual(await replica.changes(0, 10), shipped);
      assert.deepEqual(Buffer.from(replica.get('a')!), Buffer.from([0, 1, 2]));
    } finally {
      await primary.close();
      await replica.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a store reads its JSON records from before the binary format and the new ones, in order', async () => {
    const dir = await tempDir('coffer-changelog-');
    const location = join(dir, 'db');
    let store = await Store.open(location, { now: () => 1_000 });
    try {
      const legacy = {
        seq: 1,
        time: 500,
        ops: [{ type: 'put', key: 'a', value: Buffer.from('old').toString('base64') }],
      };
      await store.writeRaw(
        [
          { type: 'put', key: 'a', value: Buffer.from('old') },
          { type: 'put', key: logKey(1), value: Buffer.from(JSON.stringify(legacy)) },
        ],
        1,
      );
      await store.close();
      store = await Store.open(location, { now: () => 1_000 });
      await store.mutate((tx) => void tx.put('b', Buffer.from('new')));
      assert.deepEqual(await store.changes(0, 10), [
        legacy,
        { seq: 2, time: 1_000, ops: [{ type: 'put', key: 'b', value: Buffer.from('new').toString('base64') }] },
      ]);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

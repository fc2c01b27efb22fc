import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../../server/store/db.js';
import { mountSmallFs, type SmallFs } from '../../small-fs.js';

/** The value written under `k<n>`: its number, then filler, 7 KB in all. */
const value = (n: number, size = 7000) => Buffer.from(String(n).padStart(8, '0') + 'x'.repeat(size));

/** Writes `k0`, `k1`, ... until one is refused, which must be `storage_full`; the keys acknowledged before it. */
async function fillUntilFull(store: Store): Promise<string[]> {
  const acknowledged: string[] = [];
  for (let i = 0; i < 5000; i++) {
    try {
      await store.mutate((tx) => tx.put(`k${i}`, value(i)));
      acknowledged.push(`k${i}`);
    } catch (e) {
      assert.equal((e as { code?: string }).code, 'storage_full');
      return acknowledged;
    }
  }
  assert.fail('the disk never filled');
}

/** A fresh 8 MiB tmpfs for the suite this is called in (the suite is skipped without root). */
function useSmallFs(): () => SmallFs {
  let fs: SmallFs | undefined;
  before(async function () {
    fs = await mountSmallFs(8);
    if (!fs) this.skip();
  });
  after(() => fs?.unmount());
  return () => fs!;
}

/**
 * The store on a full disk, at the LevelDB level (issue 11 item 1, G3). A full disk while
 * LevelDB appends to its log leaves a torn record there without putting LevelDB into its error
 * state: writes on the same handle then succeed, and the next open drops every one of them.
 * Found by review; on that commit 200 writes acknowledged after the recovery were lost at the
 * next open. Every failed write is now followed by a reopen before any write is taken.
 */
describe('store on a full disk', function () {
  this.timeout(60_000);
  const fs = useSmallFs();

  it('loses no write acknowledged after a recovery, across a reopen', async () => {
    const ballast = join(fs().dir, 'ballast');
    await writeFile(ballast, Buffer.alloc(5 * 1024 * 1024));
    const location = join(fs().dir, 'db');
    let store = await Store.open(location, { recoveryIntervalMs: 100 });
    const acknowledged = await fillUntilFull(store);
    // Still failed: a write is refused at once, without touching the disk.
    await assert.rejects(
      store.mutate((tx) => tx.put('again', value(0, 10))),
      (e: Error & { code?: string }) => e.code === 'storage_full',
    );
    assert.ok(store.get(acknowledged[0]!), 'reads are served meanwhile');

    await rm(ballast);
    for (let t = 0; t < 100 && store.storageFailure; t++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(store.storageFailure, undefined, 'recovered without a restart');
    const later: string[] = [];
    for (let j = 0; j < 200; j++) {
      await store.mutate((tx) => tx.put(`after${j}`, value(j, 100)));
      later.push(`after${j}`);
    }
    const seq = store.lastSeq;
    await store.close();

    store = await Store.open(location);
    try {
      assert.equal(store.lastSeq, seq, 'the sequence number survives');
      const lost = [...acknowledged, ...later].filter((k) => !store.get(k));
      assert.deepEqual(lost, [], `${lost.length} acknowledged writes lost at the reopen`);
      assert.equal(store.get('again'), undefined, 'the refused write is not there');
    } finally {
      await store.close();
    }
  });
});

describe('store on a full disk: the reopen waits for room for the log', function () {
  this.timeout(60_000);
  const fs = useSmallFs();

  it('keeps serving reads through the old handle until the disk holds the write-ahead log and a margin, then recovers', async () => {
    const first = join(fs().dir, 'ballast-1');
    const second = join(fs().dir, 'ballast-2');
    await writeFile(first, Buffer.alloc(2 * 1024 * 1024));
    await writeFile(second, Buffer.alloc(3 * 1024 * 1024));
    const store = await Store.open(join(fs().dir, 'db'), { recoveryIntervalMs: 50 });
    try {
      const acknowledged = await fillUntilFull(store);
      assert.ok(store.storageFailure, 'the store reports the failure');

      // 2 MiB free: less than the log (about 3 MiB, all of it in one memtable) and the margin.
      await rm(first);
      await new Promise((r) => setTimeout(r, 500)); // ten recovery rounds
      assert.equal(store.storageFailure?.code, 'storage_full', 'not reopened: no half-failed open');
      for (const key of [acknowledged[0]!, acknowledged.at(-1)!])
        assert.ok(store.get(key), `${key} is still served from the old handle`);

      await rm(second);
      for (let t = 0; t < 100 && store.storageFailure; t++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(store.storageFailure, undefined, 'recovered once the log fits');
      const lost = acknowledged.filter((k) => !store.get(k));
      assert.deepEqual(lost, [], `${lost.length} acknowledged writes lost at the reopen`);
      await store.mutate((tx) => tx.put('after', Buffer.from('x')));
      assert.ok(store.get('after'));
    } finally {
      await store.close();
    }
  });
});

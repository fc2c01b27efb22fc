import assert from 'node:assert/strict';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { parseSegmentName } from '../../../server/replication/format.js';
import { LOG_PREFIX, SEQ_KEY, logKey, prefixEnd } from '../../../server/store/keys.js';
import { tempDir } from '../../helpers.js';
import { FAST, readWhenThere, startNode, startPair, stopAll, until, type Track } from './cluster.js';

/**
 * A standalone server writes no change log (nothing reads it); replication configured at a
 * later start must still bring a replica everything, through the shipper's first snapshot.
 */
describe('replication after a standalone run', function () {
  this.timeout(60_000);
  const track: Track = { nodes: [], dirs: [] };
  const { nodes, dirs } = track;
  after(() => stopAll(track));

  /**
   * The sequence number and the change-log records on disk, read with LevelDB itself: opening a
   * `Store` would apply its own open-time rule to the log being inspected.
   */
  async function changeLogOf(dir: string): Promise<{ lastSeq: number; records: number[] }> {
    const db = new ClassicLevel<string, Uint8Array>(join(dir, 'db'), { valueEncoding: 'view' });
    try {
      const seq = await db.get(SEQ_KEY);
      const keys = await db.keys({ gte: LOG_PREFIX, lt: prefixEnd(LOG_PREFIX) }).all();
      return {
        lastSeq: seq === undefined ? 0 : Number(Buffer.from(seq).toString('utf8')),
        records: keys.map((k) => parseInt(k.slice(LOG_PREFIX.length), 16)),
      };
    } finally {
      await db.close();
    }
  }

  it('keeps no records while standalone, and a later primary ships all it holds to a new replica', async () => {
    const standalone = await startNode({});
    dirs.push(standalone.dir);
    const token = standalone.server.rootToken!;
    for (let i = 0; i < 5; i++)
      assert.equal(
        (await standalone.call('PUT', `/v1/secrets/app/s${i}`, { data: { n: String(i) } }, token)).status,
        200,
      );
    assert.equal((await standalone.call('PUT', '/v1/secrets/app/s0', { data: { n: 'second' } }, token)).status, 200);
    await standalone.stop();
    const before = await changeLogOf(standalone.dir);
    assert.ok(before.lastSeq >= 6, `sequence numbers advanced (${before.lastSeq})`);
    assert.deepEqual(before.records, [], 'a standalone server writes no change-log record');

    const bucket = await tempDir('coffer-bucket-');
    dirs.push(bucket);
    const primary = await startNode({ dir: standalone.dir, replicate_to: [`file://${bucket}`], ...FAST });
    nodes.push(primary);
    await until(
      async () => (await primary.call('GET', '/v1/sys/replication', undefined, token)).body.targets[0]?.ok,
      10_000,
      'primary shipping',
    );
    const replica = await startNode({ replica_of: `file://${bucket}`, kekFile: join(primary.dir, 'kek.key'), ...FAST });
    nodes.push(replica);
    dirs.push(replica.dir);
    assert.equal((await primary.call('PUT', '/v1/secrets/app/after', { data: { n: 'after' } }, token)).status, 200);

    const read = (path: string) => readWhenThere(replica, token, path);
    assert.equal((await read('app/after')).data.n, 'after', 'a write made as primary replicates');
    for (let i = 1; i < 5; i++) assert.equal((await read(`app/s${i}`)).data.n, String(i));
    const s0 = await read('app/s0');
    assert.equal(s0.data.n, 'second');
    assert.equal(s0.version, 2, 'the standalone run’s versions arrive whole');
    const first = await replica.call('GET', '/v1/secrets/app/s0?version=1', undefined, token);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.data.n, '0');

    await primary.stop();
    const shipped = await changeLogOf(primary.dir);
    assert.ok(shipped.records.length > 0, 'a primary keeps its change log');
    assert.equal(shipped.records.at(-1), shipped.lastSeq);

    // Standalone again for a while, then primary: the stream resumes where the replica is, but
    // the log lacks the records between, so the shipper starts the chain again from a snapshot.
    const gap = await startNode({ dir: standalone.dir });
    assert.equal((await gap.call('PUT', '/v1/secrets/app/gap', { data: { n: 'gap' } }, token)).status, 200);
    assert.equal((await gap.call('DELETE', '/v1/secrets/app/s4', undefined, token)).status, 204);
    await gap.stop();
    const again = await startNode({ dir: standalone.dir, replicate_to: [`file://${bucket}`], ...FAST });
    nodes.push(again);
    assert.equal((await read('app/gap')).data.n, 'gap', 'the running replica receives the standalone writes');
    await until(
      async () => (await replica.call('GET', '/v1/secrets/app/s4', undefined, token)).status === 404,
      15_000,
      'the delete made while standalone',
    );
    assert.equal((await read('app/s1')).data.n, '1');
    assert.ok(
      again.logs.some((l) => l.msg === 'replication snapshot written'),
      'the gap was bridged by a snapshot, not by records',
    );
  });

  /** Makes the bucket unreadable (its manifest a directory) until the returned function is called. */
  async function breakBucket(bucket: string): Promise<() => Promise<void>> {
    await rename(join(bucket, 'manifest.json'), `${bucket}.manifest`);
    await mkdir(join(bucket, 'manifest.json'));
    return async () => {
      await rm(join(bucket, 'manifest.json'), { recursive: true });
      await rename(`${bucket}.manifest`, join(bucket, 'manifest.json'));
    };
  }

  /** The sequence ranges of the segments in the bucket, from their names. */
  async function segmentsOf(bucket: string): Promise<{ from: number; to: number }[]> {
    const names = (await readdir(bucket, { recursive: true })).filter((n) => n.endsWith('.seg'));
    return names.map((n) => {
      const parsed = parseSegmentName(n);
      assert.ok(parsed, `segment name ${n}`);
      return parsed;
    });
  }

  /**
   * A primary with no lease (it takes writes while its bucket is down, so records wait unshipped
   * in its log) and a replica following it.
   */
  async function primaryAndReplica() {
    const { bucket, primary, replica } = await startPair(track, { replication_lease_s: 0 });
    const token = primary.server.rootToken!;
    const read = (path: string): Promise<{ data: { n: string } }> => readWhenThere(replica, token, path, 20_000);
    /** The primary started again on its data directory and bucket, still without a lease. */
    const primaryAgain = async () => {
      const again = await startNode({
        dir: primary.dir,
        replicate_to: [`file://${bucket}`],
        ...FAST,
        replication_lease_s: 0,
      });
      nodes.push(again);
      return again;
    };
    return { bucket, primary, token, replica, read, primaryAgain };
  }

  it('records on both sides of a standalone run: the stale ones are dropped, and a snapshot bridges the gap', async () => {
    const { bucket, primary, token, read, primaryAgain } = await primaryAndReplica();
    assert.equal((await primary.call('PUT', '/v1/secrets/app/a', { data: { n: 'a' } }, token)).status, 200);
    await read('app/a');
    const mend = await breakBucket(bucket);
    assert.equal((await primary.call('PUT', '/v1/secrets/app/b', { data: { n: 'b' } }, token)).status, 200);
    await primary.stop();
    const unshipped = await changeLogOf(primary.dir);
    assert.equal(unshipped.records.at(-1), unshipped.lastSeq, 'the write made while the bucket was down is in the log');

    const standalone = await startNode({ dir: primary.dir });
    assert.equal((await standalone.call('PUT', '/v1/secrets/app/gap', { data: { n: 'gap' } }, token)).status, 200);
    await standalone.stop();
    assert.deepEqual(
      (await changeLogOf(primary.dir)).records,
      [],
      'the standalone run dropped the records it could not continue',
    );

    const again = await primaryAgain();
    assert.equal((await again.call('PUT', '/v1/secrets/app/c', { data: { n: 'c' } }, token)).status, 200);
    await mend();
    for (const path of ['app/b', 'app/gap', 'app/c']) assert.equal((await read(path)).data.n, path.slice(4));
    assert.ok(
      again.logs.some((l) => l.msg === 'replication snapshot written'),
      'the gap was bridged by a snapshot',
    );
  });

  it('a hole inside the log is never shipped across: the segment ends before it and a snapshot follows', async () => {
    const { bucket, primary, token, read, primaryAgain } = await primaryAndReplica();
    assert.equal((await primary.call('PUT', '/v1/secrets/app/a', { data: { n: 'a' } }, token)).status, 200);
    await read('app/a');
    const mend = await breakBucket(bucket);
    for (const n of ['b', 'c', 'd'])
      assert.equal((await primary.call('PUT', `/v1/secrets/app/${n}`, { data: { n } }, token)).status, 200);
    await primary.stop();
    // However it came about (a bug, a hand-edited database), a record missing in the middle of
    // the log, with records after it: newest record and sequence number still agree.
    const { records, lastSeq } = await changeLogOf(primary.dir);
    assert.equal(records.at(-1), lastSeq);
    const hole = records.at(-2)!;
    const db = new ClassicLevel<string, Uint8Array>(join(primary.dir, 'db'), { valueEncoding: 'view' });
    await db.del(logKey(hole), { sync: true });
    await db.close();

    const again = await primaryAgain();
    await mend();
    for (const n of ['b', 'c', 'd']) assert.equal((await read(`app/${n}`)).data.n, n);
    await until(
      () => again.logs.some((l) => l.msg === 'replication snapshot written'),
      20_000,
      'a snapshot past the hole',
    );
    for (const seg of await segmentsOf(bucket))
      assert.ok(
        !(seg.from < hole && seg.to >= hole),
        `segment ${seg.from}-${seg.to} does not span the missing record ${hole}`,
      );
  });
});

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Store } from '../../../server/store/db.js';
import { tempDir } from '../../helpers.js';
import { FAST, removeDir, startNode, until, type Node } from './cluster.js';

/**
 * A standalone server writes no change log (nothing reads it); replication configured at a
 * later start must still bring a replica everything, through the shipper's first snapshot.
 */
describe('replication after a standalone run', function () {
  this.timeout(60_000);
  const nodes: Node[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const n of nodes.reverse()) await n.stop().catch(() => undefined);
    for (const d of dirs) await removeDir(d);
  });

  async function changeLogOf(dir: string): Promise<{ lastSeq: number; records: number[] }> {
    const store = await Store.open(join(dir, 'db'));
    try {
      return { lastSeq: store.lastSeq, records: (await store.changes(0, 100_000)).map((r) => r.seq) };
    } finally {
      await store.close();
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

    const read = (path: string) =>
      until(
        async () => {
          const r = await replica.call('GET', `/v1/secrets/${path}`, undefined, token);
          return r.status === 200 ? r.body : undefined;
        },
        15_000,
        `replica read of ${path}`,
      );
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
});

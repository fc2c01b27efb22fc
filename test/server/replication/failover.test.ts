import assert from 'node:assert/strict';
import { cp, mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../../server/store/db.js';
import { tempDir } from '../../helpers.js';
import { FAST, removeDir, startNode, until, type Node, readWhenThere } from './cluster.js';
import { startS3, type TestS3 } from './s3rver.js';

describe('replication failover and fencing', function () {
  this.timeout(60_000);
  const nodes: Node[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const n of nodes.splice(0)) await n.stop().catch(() => undefined);
    for (const d of dirs.splice(0)) await removeDir(d);
  });
  const track = (n: Node) => (nodes.push(n), dirs.push(n.dir), n);
  const put = (n: Node, token: string, path: string, v: string) =>
    n.call('PUT', `/v1/secrets/${path}`, { data: { v } }, token);
  const shipped = (p: Node) =>
    until(
      () => p.server.replication.status().targets.every((t) => t.ok && t.last_shipped_seq === p.server.store.lastSeq),
      10_000,
      'shipped',
    );

  it('H11: another replica follows the promotion into the new epoch; the old primary is fenced and a promoted server stays primary after a restart', async () => {
    const bucket = await tempDir('coffer-bucket-');
    dirs.push(bucket);
    const p = track(await startNode({ replicate_to: [`file://${bucket}`], ...FAST }));
    const token = p.server.rootToken!;
    const kekFile = join(p.dir, 'kek.key');
    const r1 = track(await startNode({ replica_of: `file://${bucket}`, kekFile, ...FAST }));
    const r2 = track(await startNode({ replica_of: `file://${bucket}`, kekFile, ...FAST }));
    assert.equal((await put(p, token, 'app/a', 'alpha')).status, 200);
    await until(
      async () => (await r1.call('GET', '/v1/secrets/app/a', undefined, token)).status === 200,
      10_000,
      'r1 has a',
    );
    const promoted = await r1.call('POST', '/v1/sys/replication/promote', {}, token);
    assert.equal(promoted.status, 200, JSON.stringify(promoted.body));
    assert.equal((await put(r1, token, 'app/b', 'bravo')).status, 200);
    const got = await readWhenThere(r2, token, 'app/b', 10_000);
    assert.equal(got.data.v, 'bravo', 'r2 follows epoch 2');
    // A replica keeps a change log, so once promoted it ships records, not a snapshot a turn.
    const store = r1.server.store;
    assert.equal(
      (await store.changes(store.lastSeq - 1, 1))[0]?.seq,
      store.lastSeq,
      'the promoted write has its record',
    );
    const snapshots = () => r1.logs.filter((l) => l.msg === 'replication snapshot written').length;
    const before = snapshots();
    for (const path of ['app/b2', 'app/b3']) {
      assert.equal((await put(r1, token, path, 'x')).status, 200);
      await readWhenThere(r2, token, path, 10_000);
    }
    assert.equal(snapshots(), before, 'writes after the promotion went out as segments');
    assert.equal(r2.server.replication.status().epoch, 2);
    assert.equal(r2.server.replication.status().primary, r1.url);
    const refused = await put(r2, token, 'app/c', 'x');
    assert.equal(refused.status, 409);
    assert.match(refused.body.error.message, new RegExp(r1.url.replace(/[.:/]/g, '.')));
    await until(async () => (await put(p, token, 'app/old', 'x')).status === 409, 10_000, 'old primary fenced');
    // Segments the fenced primary could still put under its old epoch are never read.
    assert.ok((await readdir(join(bucket))).includes('epoch-2'));

    // A second promotion of the same epoch by the other replica loses: it is at epoch 2 now,
    // and the epoch-2 claim exists.
    // The promoted server keeps its role across a restart even though --replica-of is set.
    await r1.stop();
    nodes.splice(nodes.indexOf(r1), 1);
    const again = track(await startNode({ dir: r1.dir, replica_of: `file://${bucket}`, kekFile, ...FAST }));
    assert.equal(again.server.replication.role, 'primary');
    assert.equal((await put(again, token, 'app/d', 'delta')).status, 200);
    await until(
      async () => (await r2.call('GET', '/v1/secrets/app/d', undefined, token)).status === 200,
      10_000,
      'r2 follows the restarted primary',
    );
  });

  /** A primary (lease 1 s) and a replica that polls only when told. */
  const pair = async () => {
    const bucket = await tempDir('coffer-bucket-');
    dirs.push(bucket);
    const p = track(await startNode({ replicate_to: [`file://${bucket}`], ...FAST, replication_lease_s: 1 }));
    const r = track(
      await startNode({
        replica_of: `file://${bucket}`,
        kekFile: join(p.dir, 'kek.key'),
        ...FAST,
        poll_interval: 3600,
      }),
    );
    return { bucket, p, r, token: p.server.rootToken! };
  };

  it('C1/C3: promotion first applies every write already shipped, and reuses the epoch claim of its own earlier attempt', async () => {
    const { bucket, p, r, token } = await pair();
    assert.equal((await put(p, token, 'app/b', 'bravo')).status, 200);
    await shipped(p);
    // An earlier attempt of this server claimed epoch 2, then failed.
    await mkdir(join(bucket, 'epoch-2'), { recursive: true });
    await writeFile(
      join(bucket, 'epoch-2', 'claim'),
      JSON.stringify({ node: r.server.replication.status().node, at: Date.now() }),
    );
    const promoted = await r.call('POST', '/v1/sys/replication/promote', {}, token);
    assert.equal(promoted.status, 200, JSON.stringify(promoted.body));
    assert.ok(r.logs.some((l) => /reusing this server's own claim/.test(l.msg)));
    const b = await r.call('GET', '/v1/secrets/app/b', undefined, token);
    assert.equal(b.status, 200, 'the write shipped before the promotion is on the new primary');
    assert.equal(b.body.data.v, 'bravo');
    assert.equal((await put(r, token, 'app/c', 'charlie')).status, 200);
  });

  it('C1/C3: a replica that cannot apply everything shipped refuses promotion (409) and keeps replicating', async () => {
    const { bucket, p, r, token } = await pair();
    assert.equal((await put(p, token, 'app/a', 'alpha')).status, 200);
    await shipped(p);
    const segDir = join(bucket, 'epoch-1', 'seg');
    const [segment] = (await readdir(segDir))
      .filter((n) => n.endsWith('.seg'))
      .sort()
      .slice(-1);
    await rename(join(segDir, segment!), join(bucket, 'hidden'));
    const refused = await r.call('POST', '/v1/sys/replication/promote', {}, token);
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match(refused.body.error.message, /promotion refused: .*drop acknowledged writes/);
    assert.equal(r.server.replication.role, 'replica');
    assert.equal((await put(p, token, 'app/b', 'bravo')).status, 200, 'the primary was not fenced');
    await rename(join(bucket, 'hidden'), join(segDir, segment!));
    await shipped(p);
    // Its follower runs again (pollNow polls through it).
    await r.server.replication.pollNow();
    assert.equal((await r.call('GET', '/v1/secrets/app/b', undefined, token)).status, 200);
  });

  it("C4: a primary fenced by a promotion that still finishes a snapshot at the same sequence cannot replace the new epoch's snapshot index", async () => {
    const bucket = await tempDir('coffer-bucket-');
    dirs.push(bucket);
    // No lease: the old primary writes its manifest only when it has something to announce, so
    // it learns about the promotion only after it wrote its next snapshot's objects.
    const p = track(await startNode({ replicate_to: [`file://${bucket}`], ...FAST, replication_lease_s: 0 }));
    const token = p.server.rootToken!;
    const kekFile = join(p.dir, 'kek.key');
    await shipped(p); // its first manifest is there before the replica (polling once an hour) looks
    const r = track(
      await startNode({
        replica_of: `file://${bucket}`,
        kekFile,
        ...FAST,
        poll_interval: 3600,
        replication_lease_s: 0,
      }),
    );
    assert.equal((await put(p, token, 'app/a', 'alpha')).status, 200);
    await shipped(p);
    assert.equal((await r.call('POST', '/v1/sys/replication/promote', {}, token)).status, 200);
    const seq = p.server.store.lastSeq;
    // The new epoch starts with its own snapshot, at the sequence the old primary is at.
    await until(
      () =>
        r.server.replication.status().targets[0]?.snapshot_seq === seq &&
        r.server.replication.status().targets[0]?.epoch === 2,
      10_000,
      'epoch 2 snapshot',
    );
    assert.equal(r.server.store.lastSeq, seq);
    p.server.replication.requestSnapshot();
    await until(() => p.server.replication.status().fenced, 10_000, 'old primary fenced');
    // A fresh replica bootstraps from the new epoch's snapshot.
    const fresh = track(await startNode({ replica_of: `file://${bucket}`, kekFile, ...FAST }));
    assert.equal(fresh.server.replication.status().epoch, 2);
    assert.equal((await fresh.call('GET', '/v1/secrets/app/a', undefined, token)).status, 200);
  });

  it('H10: a second server that believes it is primary for the same stream is fenced before it writes anything', async () => {
    const bucket = await tempDir('coffer-bucket-');
    dirs.push(bucket);
    const p = track(await startNode({ replicate_to: [`file://${bucket}`], ...FAST }));
    const token = p.server.rootToken!;
    assert.equal((await put(p, token, 'app/a', 'alpha')).status, 200);
    await shipped(p);
    // A copy of the primary's data directory (a restored backup, a cloned VM) started as a
    // second primary: it has its own node id.
    await p.stop();
    nodes.splice(nodes.indexOf(p), 1);
    const cloneDir = await tempDir('coffer-clone-');
    await cp(p.dir, cloneDir, { recursive: true });
    const store = await Store.open(join(cloneDir, 'db'));
    await store.writeRaw([{ type: 'put', key: 'sys/repl/node', value: Buffer.from('f'.repeat(32)) }]);
    await store.close();
    const original = track(await startNode({ dir: p.dir, replicate_to: [`file://${bucket}`], ...FAST }));
    const clone = track(await startNode({ dir: cloneDir, replicate_to: [`file://${bucket}`], ...FAST }));
    const w = await put(clone, token, 'app/clone', 'x');
    assert.equal(w.status, 409, JSON.stringify(w.body));
    assert.match(w.body.error.message, /no longer is the primary/);
    assert.equal((await put(original, token, 'app/b', 'bravo')).status, 200);
  });

  it('H12: the bucket unreachable for a while: both sides keep serving and the replica catches up; past the lease the primary refuses writes, then recovers', async () => {
    const s3: TestS3 = await startS3();
    try {
      const p = track(await startNode({ replicate_to: [s3.url('outage')], ...FAST, replication_lease_s: 3 }));
      const token = p.server.rootToken!;
      const r = track(
        await startNode({
          replica_of: s3.url('outage'),
          kekFile: join(p.dir, 'kek.key'),
          ...FAST,
          max_staleness_s: 30,
        }),
      );
      assert.equal((await put(p, token, 'app/a', 'alpha')).status, 200);
      await until(
        async () => (await r.call('GET', '/v1/secrets/app/a', undefined, token)).status === 200,
        10_000,
        'replica has a',
      );
      s3.down = true;
      assert.equal((await put(p, token, 'app/b', 'bravo')).status, 200, 'writes continue within the lease');
      await new Promise((res) => setTimeout(res, 800));
      assert.equal(
        (await r.call('GET', '/v1/secrets/app/a', undefined, token)).status,
        200,
        'the replica serves what it has',
      );
      assert.ok(r.server.replication.status().replica?.error, 'and says the bucket fails');
      assert.equal(p.server.replication.status().targets[0]!.ok, false);
      await until(async () => (await put(p, token, 'app/c', 'x')).status === 503, 10_000, 'lease runs out');
      const refused = await put(p, token, 'app/c', 'x');
      assert.equal(refused.body.error.code, 'lease_expired');
      assert.equal(
        (await p.call('GET', '/v1/secrets/app/a', undefined, token)).status,
        200,
        'the primary still serves reads',
      );
      s3.down = false;
      await until(
        async () => (await put(p, token, 'app/c', 'charlie')).status === 200,
        40_000,
        'writes again once the bucket is back',
      );
      await until(
        async () => (await r.call('GET', '/v1/secrets/app/c', undefined, token)).status === 200,
        20_000,
        'replica catches up',
      );
      assert.equal(
        (await r.call('GET', '/v1/secrets/app/b', undefined, token)).body.data.v,
        'bravo',
        'nothing written during the outage is lost',
      );
    } finally {
      for (const n of nodes.splice(0)) await n.stop().catch(() => undefined);
      await s3.close();
    }
  });
});

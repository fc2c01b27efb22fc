import assert from 'node:assert/strict';
import { cp, readFile, readdir, rename, rm, truncate, writeFile, copyFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tempDir } from '../../helpers.js';
import { FAST, removeDir, startNode, until, type Node, readWhenThere, stopAll, type Track } from './cluster.js';

/**
 * SECURITY-CASES H: the bucket is untrusted. Each case tampers with a real file bucket between
 * a real primary and a real replica (LevelDB, HTTP); the replica polls only when the test says
 * so, so every step is deterministic. In each case the replica applies nothing bad, says what
 * is wrong in its status and log, and keeps serving what it has.
 */
describe('replication faults (the bucket is untrusted)', function () {
  this.timeout(60_000);
  let bucketDir: string;
  let primary: Node;
  let replica: Node;
  let token: string;
  const dirs: string[] = [];

  const put = async (path: string, value: string) => {
    const r = await primary.call('PUT', `/v1/secrets/${path}`, { data: { v: value } }, token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };
  const shipped = () =>
    until(
      async () =>
        primary.server.replication
          .status()
          .targets.every((t) => t.last_shipped_seq === primary.server.store.lastSeq && t.ok),
      10_000,
      'shipping',
    );
  const read = async (path: string) => {
    const r = await replica.call('GET', `/v1/secrets/${path}`, undefined, token);
    return r.status === 200 ? (r.body.data.v as string) : r.status;
  };
  const poll = () => replica.server.replication.pollNow();
  const replicaError = () => replica.server.replication.status().replica?.error?.code;
  const segments = async () =>
    (await readdir(join(bucketDir, 'epoch-1', 'seg'))).filter((n) => n.endsWith('.seg')).sort();
  const segmentWith = async (seq: number) => {
    for (const name of await segments()) {
      const [from, to] = name
        .replace('.seg', '')
        .split('-')
        .map((h) => parseInt(h, 16));
      if (from! <= seq && seq <= to!) return join(bucketDir, 'epoch-1', 'seg', name);
    }
    throw new Error(`no segment holds ${seq}`);
  };

  async function start(options: { replica?: object; primary?: object } = {}): Promise<void> {
    bucketDir = await tempDir('coffer-bucket-');
    primary = await startNode({ replicate_to: [`file://${bucketDir}`], ...FAST, ...options.primary });
    token = primary.server.rootToken!;
    await put('app/a', 'alpha');
    await shipped();
    replica = await startNode({
      replica_of: `file://${bucketDir}`,
      kekFile: join(primary.dir, 'kek.key'),
      ...FAST,
      poll_interval: 3600,
      ...options.replica,
    });
    dirs.push(bucketDir, primary.dir, replica.dir);
    assert.equal(await read('app/a'), 'alpha');
  }

  afterEach(async () => {
    await replica?.stop().catch(() => undefined);
    await primary?.stop().catch(() => undefined);
    for (const d of dirs.splice(0)) await removeDir(d);
  });

  it('H1: a segment with one flipped byte is refused whole; the replica stays at the last good record', async () => {
    await start();
    const before = replica.server.store.lastSeq;
    await put('app/b', 'bravo');
    await shipped();
    const file = await segmentWith(primary.server.store.lastSeq);
    const bytes = await readFile(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(file, bytes);
    await poll();
    assert.equal(replicaError(), 'bad_mac');
    assert.equal(replica.server.store.lastSeq, before);
    assert.equal(await read('app/b'), 404);
    assert.equal(await read('app/a'), 'alpha');
    assert.ok(
      replica.logs.some((l) => l.code === 'bad_mac' && l.level === 40),
      'the refusal is logged as a warning',
    );
  });

  it('H5: a truncated or zero-byte segment is refused', async () => {
    await start();
    await put('app/b', 'bravo');
    await shipped();
    const file = await segmentWith(primary.server.store.lastSeq);
    const size = (await readFile(file)).length;
    await truncate(file, Math.floor(size / 2));
    await poll();
    assert.equal(replicaError(), 'bad_mac');
    await truncate(file, 0);
    await poll();
    assert.equal(replicaError(), 'truncated');
    assert.equal(await read('app/b'), 404);
  });

  it('H6: a segment deleted from the middle stalls the replica at the gap; a newer snapshot resumes it', async () => {
    await start();
    await put('app/b', 'bravo');
    await shipped();
    const gap = await segmentWith(primary.server.store.lastSeq);
    await put('app/c', 'charlie');
    await shipped();
    await rm(gap);
    await poll();
    assert.equal(replicaError(), 'gap');
    assert.equal(await read('app/c'), 404, 'nothing after the gap is applied');
    const snap = await primary.call('POST', '/v1/sys/replication/snapshot', {}, token);
    assert.equal(snap.status, 202);
    await until(
      async () => (primary.server.replication.status().targets[0]!.snapshot_seq ?? 0) >= primary.server.store.lastSeq,
      10_000,
      'snapshot',
    );
    await poll();
    assert.equal(replicaError(), undefined);
    assert.equal(await read('app/b'), 'bravo');
    assert.equal(await read('app/c'), 'charlie');
  });

  it('C2: a snapshot with a missing part is refused before the store is touched; a load interrupted after clearing the store keeps reads refused until a poll completes it', async () => {
    await start();
    await put('app/b', 'bravo');
    await shipped();
    const gap = await segmentWith(primary.server.store.lastSeq);
    await put('app/c', 'charlie');
    await shipped();
    await rm(gap);
    await poll();
    assert.equal(replicaError(), 'gap');
    assert.equal((await primary.call('POST', '/v1/sys/replication/snapshot', {}, token)).status, 202);
    await until(
      async () => (primary.server.replication.status().targets[0]!.snapshot_seq ?? 0) >= primary.server.store.lastSeq,
      10_000,
      'snapshot',
    );
    // The new snapshot's parts (older snapshots leave empty directories behind).
    let partDir: string | undefined;
    let part: string | undefined;
    for (const d of await readdir(join(bucketDir, 'snap'), { withFileTypes: true })) {
      const files = d.isDirectory() ? await readdir(join(bucketDir, 'snap', d.name)) : [];
      if (files.length > 0) [partDir, part] = [join(bucketDir, 'snap', d.name), files[0]];
    }
    assert.ok(partDir && part, 'the snapshot has parts');
    await rename(join(partDir!, part!), join(bucketDir, 'hidden-part'));
    const before = replica.server.store.lastSeq;
    await poll();
    assert.equal(replicaError(), 'snapshot_missing');
    assert.equal(await read('app/a'), 'alpha', 'the store was not cleared: it keeps serving what it had');
    assert.equal(await read('app/c'), 404);
    assert.equal(replica.server.store.lastSeq, before);
    assert.equal(replica.server.replication.status().replica?.bootstrapping, false);

    // A load that cleared the store and then failed (or crashed) leaves its persisted marker:
    // reads stay refused, and the status says so, until a poll loads the snapshot again.
    await replica.server.store.writeRaw([{ type: 'put', key: 'sys/repl/bootstrapping', value: Buffer.from('1') }]);
    await poll();
    assert.equal(replicaError(), 'snapshot_missing');
    const refused = await replica.call('GET', '/v1/secrets/app/a', undefined, token);
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'replica_stale');
    assert.equal(replica.server.replication.status().replica?.bootstrapping, true);
    await rename(join(bucketDir, 'hidden-part'), join(partDir!, part!));
    await poll();
    assert.equal(replicaError(), undefined);
    assert.equal(replica.server.replication.status().replica?.bootstrapping, false);
    assert.equal(await read('app/c'), 'charlie');
  });

  it('H3/H4: two segments swapped, or an old segment put under a newer name, are refused', async () => {
    await start();
    await put('app/b', 'bravo');
    await shipped();
    const first = await segmentWith(primary.server.store.lastSeq);
    await put('app/c', 'charlie');
    await shipped();
    const second = await segmentWith(primary.server.store.lastSeq);
    const [a, b] = [await readFile(first), await readFile(second)];
    await writeFile(first, b);
    await writeFile(second, a);
    const before = replica.server.store.lastSeq;
    await poll();
    assert.equal(replicaError(), 'misnamed');
    assert.equal(replica.server.store.lastSeq, before);
    // Put them back: the replica applies both, then refuses a replay of the first under the
    // name of the next segment.
    await writeFile(first, a);
    await writeFile(second, b);
    await poll();
    assert.equal(await read('app/c'), 'charlie');
    await put('app/d', 'delta');
    await shipped();
    const third = await segmentWith(primary.server.store.lastSeq);
    await copyFile(second, third);
    await poll();
    assert.equal(replicaError(), 'misnamed');
    assert.equal(await read('app/d'), 404);
  });

  it('H7: a manifest rolled back to an older authentic version is refused; the primary puts its own back', async () => {
    await start();
    const old = await readFile(join(bucketDir, 'manifest.json'));
    await put('app/b', 'bravo');
    await shipped();
    await poll();
    assert.equal(await read('app/b'), 'bravo');
    await primary.stop(); // so the rollback stays in place while the replica looks
    await writeFile(join(bucketDir, 'manifest.json'), old);
    await poll();
    assert.equal(replicaError(), 'rollback');
    assert.equal(await read('app/b'), 'bravo', 'never moves backwards');
  });

  it('H8/S2: a frozen manifest makes the replica refuse token reads and logins after max_staleness, so a revoked token or a deleted user dies; it resumes when the head moves', async () => {
    // The replica reads a mirror of the primary's bucket that the test (the attacker) controls:
    // freezing is simply not copying any more.
    const mirror = await tempDir('coffer-mirror-');
    dirs.push(mirror);
    const sync = () => cp(bucketDirRef(), mirror, { recursive: true, force: true });
    bucketDir = await tempDir('coffer-bucket-');
    primary = await startNode({ replicate_to: [`file://${bucketDir}`], ...FAST });
    token = primary.server.rootToken!;
    const bucketDirRef = () => bucketDir;
    await put('app/a', 'alpha');
    const child = await primary.call('POST', '/v1/auth/token/create', { identity: 'ci', groups: [], ttl: 600 }, token);
    assert.equal(child.status, 200, JSON.stringify(child.body));
    const ciToken = child.body.token as string;
    const bob = { username: 'bob', password: 'bob has a long password' };
    assert.equal(
      (await primary.call('PUT', '/v1/auth/userpass/users/bob', { password: bob.password }, token)).status,
      200,
    );
    await shipped();
    await sync();
    replica = await startNode({
      replica_of: `file://${mirror}`,
      kekFile: join(primary.dir, 'kek.key'),
      ...FAST,
      poll_interval: 3600,
      max_staleness_s: 2,
    });
    dirs.push(bucketDir, primary.dir, replica.dir);
    assert.equal((await replica.call('GET', '/v1/auth/token/self', undefined, ciToken)).status, 200);
    assert.equal((await replica.call('POST', '/v1/auth/userpass/login', bob)).status, 200);

    assert.equal((await primary.call('POST', '/v1/auth/token/revoke', { token: ciToken }, token)).status, 204);
    assert.equal((await primary.call('DELETE', '/v1/auth/userpass/users/bob', undefined, token)).status, 204);
    await shipped(); // the revocation is in the real bucket, but the mirror is frozen
    await poll();
    assert.equal(
      (await replica.call('GET', '/v1/auth/token/self', undefined, ciToken)).status,
      200,
      'within the bound the frozen replica cannot know',
    );
    await new Promise((r) => setTimeout(r, 2300));
    await poll();
    const refused = await replica.call('GET', '/v1/auth/token/self', undefined, ciToken);
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'replica_stale');
    const login = await replica.call('POST', '/v1/auth/userpass/login', bob);
    assert.equal(login.status, 503, 'a stale replica issues no token to a user deleted on the primary');
    assert.equal(login.body.error.code, 'replica_stale');
    assert.equal((await replica.call('GET', '/v1/secrets/app/a', undefined, token)).status, 503);
    assert.equal(replica.server.replication.status().stale, true);
    assert.equal(
      (await replica.call('GET', '/v1/sys/replication', undefined, token)).status,
      200,
      'status stays reachable',
    );

    await sync(); // the head moves again
    await poll();
    assert.equal((await replica.call('GET', '/v1/secrets/app/a', undefined, token)).status, 200);
    assert.equal(
      (await replica.call('GET', '/v1/auth/token/self', undefined, ciToken)).status,
      401,
      'the revocation arrived',
    );
    assert.equal((await replica.call('POST', '/v1/auth/userpass/login', bob)).status, 401, 'and the deletion');
  });

  it('S2: a login a replica cannot cover (the signing key must be extended on the primary) is refused every time, not just the first', async () => {
    await start();
    const bob = { username: 'bob', password: 'bob has a long password' };
    assert.equal(
      (await primary.call('PUT', '/v1/auth/userpass/users/bob', { password: bob.password }, token)).status,
      200,
    );
    // A new signing key has signed nothing yet: the first login under it must record how long
    // its tokens live, which only the primary can write.
    assert.equal((await primary.call('POST', '/v1/auth/jwks/rotate', {}, token)).status, 200);
    await shipped();
    await poll();
    assert.equal(replicaError(), undefined);
    for (let i = 0; i < 2; i++) {
      const r = await replica.call('POST', '/v1/auth/userpass/login', bob);
      assert.equal(r.status, 409, `attempt ${i + 1}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'read_only_replica');
    }
    assert.equal((await primary.call('POST', '/v1/auth/userpass/login', bob)).status, 200);
  });

  it('H18/H13: when a segment must be found by listing, junk is skipped, a well-named forgery is tried and refused, and the real segment is applied once listed', async () => {
    // Listing is needed when the manifest does not name the segment: a replica still in epoch 1
    // when another server was promoted finishes epoch 1 up to the new epoch's base by listing
    // (the new manifest names none of epoch 1's segments). The replica reads a mirror the test
    // (the attacker) controls, so the new primary's pruning of epoch 1 does not get in the way.
    bucketDir = await tempDir('coffer-bucket-');
    const mirror = await tempDir('coffer-mirror-');
    primary = await startNode({ replicate_to: [`file://${bucketDir}`], ...FAST, replication_lease_s: 0 });
    dirs.push(bucketDir, mirror, primary.dir);
    token = primary.server.rootToken!;
    const kekFile = join(primary.dir, 'kek.key');
    await put('app/a', 'alpha');
    await shipped();
    await cp(bucketDir, mirror, { recursive: true });
    replica = await startNode({ replica_of: `file://${mirror}`, kekFile, ...FAST, poll_interval: 3600 });
    dirs.push(replica.dir);
    assert.equal(await read('app/a'), 'alpha');
    const from = replica.server.store.lastSeq + 1;
    await put('app/b', 'bravo');
    await put('app/c', 'charlie');
    await shipped();
    await cp(bucketDir, mirror, { recursive: true, force: true });
    const base = primary.server.store.lastSeq;
    assert.ok(base > from, 'at least two records to finish');
    const other = await startNode({ replica_of: `file://${bucketDir}`, kekFile, ...FAST, poll_interval: 3600 });
    dirs.push(other.dir);
    try {
      assert.equal((await other.call('POST', '/v1/sys/replication/promote', {}, token)).status, 200);
    } finally {
      await other.stop();
    }
    await copyFile(join(bucketDir, 'manifest.json'), join(mirror, 'manifest.json')); // epoch 2, base at `base`

    const segDir = join(mirror, 'epoch-1', 'seg');
    const names = (await readdir(segDir)).filter((n) => /^[0-9a-f]{16}-[0-9a-f]{16}\.seg$/.test(n));
    for (let i = 0; i < 300; i++) await writeFile(join(segDir, `junk-${i}.seg`), 'x');
    const real = names.find((n) => parseInt(n.split('-')[0]!, 16) === from)!;
    assert.ok(real, `a segment starts at ${from}`);
    const realTo = parseInt(real.replace('.seg', '').split('-')[1]!, 16);
    const hex = (n: number) => n.toString(16).padStart(16, '0');
    // A forgery under another valid name starting at the same sequence, within the base.
    const forged = `${hex(from)}-${hex(realTo === from ? from + 1 : from)}.seg`;
    await writeFile(join(segDir, forged), Buffer.alloc(2000, 7));
    // The real segment is not listed yet (H13: visible late): only the forgery is found.
    await rename(join(segDir, real), join(mirror, 'late.seg'));
    await poll();
    assert.equal(replicaError(), 'bad_mac', 'the forgery was read and refused');
    assert.equal(replica.server.store.lastSeq, from - 1, 'nothing applied');
    assert.equal(replica.server.replication.status().epoch, 1);
    await rename(join(mirror, 'late.seg'), join(segDir, real));
    await poll();
    assert.equal(replicaError(), undefined);
    assert.equal(replica.server.replication.status().epoch, 2);
    assert.equal(replica.server.store.lastSeq, base);
    assert.equal(await read('app/b'), 'bravo');
    assert.equal(await read('app/c'), 'charlie');
  });
});

describe('replication: snapshots and vaults', function () {
  this.timeout(60_000);

  it('H2: a segment of another vault put under the name the replica expects next is refused', async () => {
    const bucketA = await tempDir('coffer-bucket-');
    const bucketB = await tempDir('coffer-bucket-');
    const a = await startNode({ replicate_to: [`file://${bucketA}`], ...FAST });
    const b = await startNode({ replicate_to: [`file://${bucketB}`], ...FAST });
    const replica = await startNode({
      replica_of: `file://${bucketA}`,
      kekFile: join(a.dir, 'kek.key'),
      ...FAST,
      poll_interval: 3600,
    });
    const dirs = [bucketA, bucketB, a.dir, b.dir, replica.dir];
    try {
      const tokenA = a.server.rootToken!;
      const tokenB = b.server.rootToken!;
      // Bring both streams to the same sequence, then write one record on each.
      while (b.server.store.lastSeq < a.server.store.lastSeq)
        await b.call('PUT', `/v1/secrets/pad/${b.server.store.lastSeq}`, { data: { v: 'p' } }, tokenB);
      while (a.server.store.lastSeq < b.server.store.lastSeq)
        await a.call('PUT', `/v1/secrets/pad/${a.server.store.lastSeq}`, { data: { v: 'p' } }, tokenA);
      await until(
        () => a.server.replication.status().targets[0]!.last_shipped_seq === a.server.store.lastSeq,
        10_000,
        'a shipped',
      );
      await replica.server.replication.pollNow();
      const seq = a.server.store.lastSeq + 1;
      await a.call('PUT', '/v1/secrets/app/mine', { data: { v: 'a' } }, tokenA);
      await b.call('PUT', '/v1/secrets/app/theirs', { data: { v: 'b' } }, tokenB);
      await until(
        () =>
          a.server.replication.status().targets[0]!.last_shipped_seq === seq &&
          b.server.replication.status().targets[0]!.last_shipped_seq === seq,
        10_000,
        'both shipped',
      );
      const name = `${seq.toString(16).padStart(16, '0')}-${seq.toString(16).padStart(16, '0')}.seg`;
      await copyFile(join(bucketB, 'epoch-1', 'seg', name), join(bucketA, 'epoch-1', 'seg', name));
      const before = replica.server.store.lastSeq;
      await replica.server.replication.pollNow();
      assert.equal(replica.server.replication.status().replica?.error?.code, 'bad_mac');
      assert.equal(replica.server.store.lastSeq, before);
      assert.equal((await replica.call('GET', '/v1/secrets/app/theirs', undefined, tokenA)).status, 404);
    } finally {
      for (const n of [replica, a, b]) await n.stop();
      for (const d of dirs) await removeDir(d);
    }
  });

  it('H9/H19: a replica refuses to bootstrap from a snapshot of another vault swapped into the bucket', async () => {
    const bucketA = await tempDir('coffer-bucket-');
    const bucketB = await tempDir('coffer-bucket-');
    const a = await startNode({ replicate_to: [`file://${bucketA}`], ...FAST });
    const b = await startNode({ replicate_to: [`file://${bucketB}`], ...FAST });
    const dirs = [bucketA, bucketB, a.dir, b.dir];
    try {
      await until(
        () => a.server.replication.status().targets[0]?.ok && b.server.replication.status().targets[0]?.ok,
        10_000,
        'shipping',
      );
      await a.stop();
      await b.stop();
      // B's snapshot index under the name A's manifest expects.
      const indexA = (await readdir(join(bucketA, 'snap'))).find((n) => n.endsWith('.snap'))!;
      const indexB = (await readdir(join(bucketB, 'snap'))).find((n) => n.endsWith('.snap'))!;
      await copyFile(join(bucketB, 'snap', indexB), join(bucketA, 'snap', indexA));
      const replicaDir = await tempDir('coffer-repl-');
      dirs.push(replicaDir);
      await assert.rejects(
        startNode({ dir: replicaDir, replica_of: `file://${bucketA}`, kekFile: join(a.dir, 'kek.key'), ...FAST }),
        /MAC does not verify|not the one/,
      );
      // And a replica opened with A's key against B's bucket cannot unseal B's identity.
      const otherDir = await tempDir('coffer-repl-');
      dirs.push(otherDir);
      await assert.rejects(
        startNode({ dir: otherDir, replica_of: `file://${bucketB}`, kekFile: join(a.dir, 'kek.key'), ...FAST }),
        /does not open this vault/,
      );
    } finally {
      for (const d of dirs) await removeDir(d);
    }
  });
});

describe('replication: a first snapshot that fails', function () {
  this.timeout(60_000);
  const track: Track = { nodes: [], dirs: [] };
  const { nodes, dirs } = track;
  after(() => stopAll(track));

  it('starts the stream again from a snapshot once the bucket works, never from records with no chain before them', async () => {
    const parent = await tempDir('coffer-bucket-');
    dirs.push(parent);
    const bucket = join(parent, 'bucket');
    // A file where the bucket's directory should be: the manifest reads as absent, every write fails.
    await writeFile(bucket, 'not a directory');
    const primary = await startNode({ replicate_to: [`file://${bucket}`], ...FAST, replication_lease_s: 0 });
    nodes.push(primary);
    dirs.push(primary.dir);
    const token = primary.server.rootToken!;
    assert.equal((await primary.call('PUT', '/v1/secrets/app/a', { data: { v: 'a' } }, token)).status, 200);
    await until(() => primary.server.replication.status().targets[0]?.error, 10_000, 'a failed turn');
    await rm(bucket);
    await until(
      () =>
        primary.server.replication.status().targets[0]?.ok &&
        primary.server.replication.status().targets[0]?.last_shipped_seq === primary.server.store.lastSeq,
      15_000,
      'shipping once the bucket works',
    );
    const replica = await startNode({ replica_of: `file://${bucket}`, kekFile: join(primary.dir, 'kek.key'), ...FAST });
    nodes.push(replica);
    dirs.push(replica.dir);
    assert.equal((await readWhenThere(replica, token, 'app/a')).data.v, 'a');
  });
});

describe('replication: a resumed stream whose orphaned segment cannot be dropped', function () {
  this.timeout(60_000);
  const track: Track = { nodes: [], dirs: [] };
  const { nodes, dirs } = track;
  let pinned: string | undefined;
  after(async () => {
    if (pinned) spawnSync('chattr', ['-i', pinned]);
    await stopAll(track);
  });

  it('ships nothing until the orphan is gone, then drops it and resumes the stream', async function () {
    const bucket = await tempDir('coffer-bucket-');
    dirs.push(bucket);
    const settings = { replicate_to: [`file://${bucket}`], ...FAST, replication_lease_s: 0 };
    const first = await startNode(settings);
    nodes.push(first);
    dirs.push(first.dir);
    const token = first.server.rootToken!;
    assert.equal((await first.call('PUT', '/v1/secrets/app/a', { data: { v: 'a' } }, token)).status, 200);
    const shippedAll = (n: Node) =>
      until(
        () => {
          const t = n.server.replication.status().targets[0];
          return t?.ok && t.last_shipped_seq === n.server.store.lastSeq;
        },
        15_000,
        'shipping',
      );
    await shippedAll(first);
    const head = first.server.store.lastSeq;
    await first.stop();
    nodes.splice(nodes.indexOf(first), 1);

    // A segment uploaded past the manifest's head by a turn that never announced it (a crash
    // between upload and manifest), made undeletable: unlink fails with EPERM, even for root.
    const epochDir = (await readdir(bucket)).find((name) => name.startsWith('epoch-'))!;
    const hex = (n: number) => n.toString(16).padStart(16, '0');
    const orphan = join(bucket, epochDir, 'seg', `${hex(head + 1)}-${hex(head + 5)}.seg`);
    await writeFile(orphan, 'never announced');
    if (spawnSync('chattr', ['+i', orphan]).status !== 0) this.skip(); // needs root and ext4/xfs/btrfs
    pinned = orphan;

    const primary = await startNode({ dir: first.dir, ...settings });
    nodes.push(primary);
    await until(() => primary.server.replication.status().targets[0]?.error, 10_000, 'a failed turn');
    assert.equal((await primary.call('PUT', '/v1/secrets/app/b', { data: { v: 'b' } }, token)).status, 200);
    await new Promise((r) => setTimeout(r, 500)); // many turns at a 20 ms batch
    const shippedPastHead = async () =>
      (await readdir(join(bucket, epochDir, 'seg'))).filter((name) => parseInt(name.slice(0, 16), 16) > head);
    assert.deepEqual(
      await shippedPastHead(),
      [`${hex(head + 1)}-${hex(head + 5)}.seg`],
      'nothing shipped past the orphan',
    );
    assert.equal(primary.server.replication.status().targets[0]?.ok, false);

    spawnSync('chattr', ['-i', orphan]);
    pinned = undefined;
    await shippedAll(primary);
    assert.ok(
      !(await shippedPastHead()).includes(`${hex(head + 1)}-${hex(head + 5)}.seg`),
      'the orphan is dropped before the stream ships again',
    );
    const replica = await startNode({ replica_of: `file://${bucket}`, kekFile: join(first.dir, 'kek.key'), ...FAST });
    nodes.push(replica);
    dirs.push(replica.dir);
    assert.equal((await readWhenThere(replica, token, 'app/b')).data.v, 'b');
    assert.equal((await readWhenThere(replica, token, 'app/a')).data.v, 'a');
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { recordKeyringVersion } from '../../server/secrets/record.js';
import { SealManager } from '../../server/keys/seal.js';
import { Store } from '../../server/store/db.js';
import { tempDir } from '../helpers.js';
import { assertAllRead, call, listAll, seed, sleep, startWriters, waitFor } from './load-helpers.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

/**
 * kill -9 in the middle of the three long key and replication operations (issue 11): a keyring
 * rotation with a background DEK rewrap, a master-key rotation, and a replication snapshot
 * upload. Each round runs writers beside the operation, kills the server at a random point of
 * it, restarts it on the same data directory and checks that no acknowledged write is lost,
 * that the keys are in one consistent state (and the operation completes), and, for the
 * snapshot, that a replica bootstrapped from the bucket afterwards matches the primary.
 */
const LONG = Boolean(process.env.COFFER_LONG);
const ROUNDS = LONG ? 5 : 1;

interface Timing {
  scenario: string;
  round: number;
  killedAt: string;
  recoverMs: number;
  roundMs: number;
}
const timings: Timing[] = [];

async function rootToken(dir: string): Promise<string> {
  return (await readFile(join(dir, 'root-token'), 'utf8')).trim();
}

describe(`crash rounds: kill -9 during a keyring rewrap, a master rotation and a snapshot upload (${ROUNDS} round${ROUNDS > 1 ? 's' : ''} each)`, function () {
  this.timeout(ROUNDS * 120_000 + 60_000);
  const procs: ServerProcess[] = [];
  const dirs: string[] = [];
  const start = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const p = await startServerProcess(args, env);
    procs.push(p);
    return p;
  };

  after(async () => {
    for (const p of procs) await p.kill('SIGKILL');
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    if (timings.length > 0) {
      const rows = timings.map(
        (t) =>
          `  ${t.scenario.padEnd(9)} ${String(t.round).padStart(5)}  ${t.killedAt.padEnd(52)} ${String(t.recoverMs).padStart(8)} ${String(t.roundMs).padStart(8)}`,
      );
      console.log(`\n  scenario  round  killed at${' '.repeat(43)}recover ms  round ms\n${rows.join('\n')}\n`);
    }
  });

  it('keyring rotation with rewrap: the job resumes after kill -9 and every DEK ends under the new keyring version', async () => {
    const dir = await tempDir('coffer-crash-rewrap-');
    dirs.push(dir);
    const args = ['--dev', '--data-dir', dir];
    let server = await start(args);
    const token = await rootToken(dir);
    const seeded = await seed(server.url, token, LONG ? 5_000 : 2_500, 16, (i) => ({
      path: `rewrap/seed/s${i}`,
      data: { v: `seed-${i}` },
    }));
    const acked = new Map<string, string>();

    for (let round = 0; round < ROUNDS; round++) {
      const t0 = Date.now();
      const writers = startWriters(server.url, token, {
        writers: 4,
        acked,
        tag: `rewrap-r${round}`,
        paths: (w, i) => `${i % 2 ? 'rewrap' : 'other'}/r${round}/w${w}-${i}`,
      });
      const rotated = await call(server.url, 'POST', '/v1/sys/keyrings/rewrap/rotate', token, { rewrap: true });
      assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
      assert.equal(rotated.body.rewrap.state, 'running');
      const target = rotated.body.version as number;
      const total = rotated.body.rewrap.total as number;
      const fraction = 0.1 + Math.random() * 0.7;
      let seen: { state: string; scanned: number } | undefined;
      await waitFor(
        async () => {
          seen = (await call(server.url, 'GET', '/v1/sys/keyrings/rewrap', token)).body.rewrap;
          return seen!.state !== 'running' || seen!.scanned >= fraction * total;
        },
        60_000,
        'the rewrap to make progress',
        2,
      );
      await server.kill('SIGKILL');
      await writers.stop();
      assert.ok(seen, 'progress was read');
      const killedAt =
        seen.state === 'running'
          ? `rewrap running, ${seen.scanned}/${total} scanned`
          : `rewrap already ${seen.state} (missed)`;
      assert.ok(acked.size > 0, 'writes were acknowledged beside the rewrap');

      const t1 = Date.now();
      server = await start(args);
      const done = await waitFor(
        async () => {
          const k = (await call(server.url, 'GET', '/v1/sys/keyrings/rewrap', token)).body;
          return k.rewrap.state !== 'running' && k;
        },
        60_000,
        'the rewrap job to finish after the restart',
      );
      const recoverMs = Date.now() - t1;
      assert.equal(done.rewrap.state, 'done', `rewrap job: ${JSON.stringify(done.rewrap)}`);
      assert.equal(done.rewrap.target_version, target);
      assert.equal(done.current, target, 'the keyring stays at the rotated version');
      assert.ok(
        done.rewrap.scanned >= total,
        `the resumed job covered every version (${done.rewrap.scanned} of ${total})`,
      );
      await assertAllRead(server.url, token, seeded, `round ${round} seeded`);
      await assertAllRead(server.url, token, acked, `round ${round} acknowledged`);

      // On disk: not one DEK of the namespace is left under an older keyring version. The version
      // records are sealed by the storage barrier: opened offline with the dev server's key file.
      await server.kill('SIGTERM');
      const store = await Store.open(join(dir, 'db'));
      const seal = new SealManager(store, { source: { kind: 'file', path: join(dir, 'kek.key') }, env: {} });
      try {
        await seal.autoUnsealNow();
        const rows = await seal.barrier.scanPrefix('ver/rewrap/');
        assert.ok(rows.length >= seeded.size, `${rows.length} version records`);
        const behind = rows.filter(([, v]) => recordKeyringVersion(v) < target).map(([k]) => k);
        assert.deepEqual(behind.slice(0, 5), [], `${behind.length} DEKs still wrapped under an older keyring version`);
      } finally {
        await seal.seal();
        await store.close();
      }
      server = await start(args);
      timings.push({ scenario: 'rewrap', round, killedAt, recoverMs, roundMs: Date.now() - t0 });
    }

    // A further rotation after the crashes works and completes.
    const again = await call(server.url, 'POST', '/v1/sys/keyrings/rewrap/rotate', token, { rewrap: true });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    const final = await waitFor(
      async () => {
        const k = (await call(server.url, 'GET', '/v1/sys/keyrings/rewrap', token)).body;
        return k.rewrap.state !== 'running' && k;
      },
      60_000,
      'the last rewrap',
    );
    assert.equal(final.rewrap.state, 'done');
    assert.equal(final.rewrap.target_version, again.body.version);
    await assertAllRead(server.url, token, seeded, 'after the last rotation');
    await assertAllRead(server.url, token, acked, 'after the last rotation');
    await server.kill('SIGTERM');
  });

  it('master rotation: after kill -9 mid-rotation every keyring ends under one master version, and rotation works again', async () => {
    const dir = await tempDir('coffer-crash-master-');
    dirs.push(dir);
    const args = ['--dev', '--data-dir', dir];
    let server = await start(args);
    const token = await rootToken(dir);
    const NS = LONG ? 1_500 : 600;
    const namespaces = Array.from({ length: NS }, (_, i) => `m${i}`);
    const seeded = await seed(server.url, token, NS, 16, (i) => ({ path: `m${i}/seed`, data: { v: `m-${i}` } }));
    const acked = new Map<string, string>();

    const masterVersion = async () => {
      const s = await call(server.url, 'GET', '/v1/sys/seal-status', undefined);
      return s.body.master_key.version as number;
    };
    /** Keyrings with a version not wrapped by master version `v`. */
    const keyringsNotUnder = async (v: number) => {
      const off: string[] = [];
      let next = 0;
      const all = ['sys', ...namespaces];
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < all.length) {
            const ns = all[next++]!;
            const k = await call(server.url, 'GET', `/v1/sys/keyrings/${ns}`, token);
            assert.equal(k.status, 200, `keyring ${ns}: ${JSON.stringify(k.body)}`);
            if (k.body.versions.some((e: { master_version: number }) => e.master_version !== v)) off.push(ns);
          }
        }),
      );
      return off;
    };

    // Calibration: how long one rotation takes here, with writers running.
    const calibrationWriters = startWriters(server.url, token, {
      writers: 4,
      acked,
      tag: 'master-cal',
      paths: (w, i) => `m${(w * 7 + i) % NS}/cal-w${w}-${i}`,
    });
    const c0 = Date.now();
    const first = await call(server.url, 'POST', '/v1/sys/rotate', token, {});
    const rotationMs = Date.now() - c0;
    await calibrationWriters.stop();
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.ok(first.body.keyrings_rewrapped >= NS, `${first.body.keyrings_rewrapped} keyrings re-wrapped`);

    for (let round = 0; round < ROUNDS; round++) {
      const t0 = Date.now();
      const before = await masterVersion();
      const writers = startWriters(server.url, token, {
        writers: 4,
        acked,
        tag: `master-r${round}`,
        paths: (w, i) => `m${(w * 7 + i) % NS}/r${round}-w${w}-${i}`,
      });
      let answered: number | undefined;
      const request = call(server.url, 'POST', '/v1/sys/rotate', token, {}).then(
        (r) => void (answered = r.status),
        () => undefined,
      );
      const delay = Math.round(rotationMs * (0.15 + Math.random() * 0.7));
      await sleep(delay);
      await server.kill('SIGKILL');
      await writers.stop();
      await request;

      const t1 = Date.now();
      server = await start(args);
      const after = await masterVersion();
      assert.ok(after === before || after === before + 1, `master version ${after} after a rotation from ${before}`);
      // No half-rotated state survives: the restarted server finishes the re-wrap by itself
      // (its log says when), and then every keyring is under the current master version.
      const logLine = (msg: string) =>
        server
          .output()
          .split('\n')
          .filter((l) => l.includes(msg))
          .map((l) => JSON.parse(l) as { time: number; keyrings: number })[0];
      await waitFor(
        () =>
          logLine('interrupted master key rotation finished') ||
          (!logLine('left keyrings under an older master version') && Date.now() - t1 > 3_000),
        60_000,
        'the restarted server to finish the rotation',
      );
      assert.deepEqual(await keyringsNotUnder(after), [], `keyrings not under master version ${after}`);
      const recoverMs = Date.now() - t1;
      const resumed = logLine('left keyrings under an older master version');
      const finished = logLine('interrupted master key rotation finished');
      const killedAt =
        answered !== undefined
          ? `after the answer (${answered}), ${delay} ms in (missed)`
          : after === before
            ? `${delay} ms in, before the new master version was stored`
            : `${delay} ms in; restart re-wrapped ${finished?.keyrings ?? 0}/${NS + 1} (${resumed && finished ? finished.time - resumed.time : '-'} ms)`;
      await assertAllRead(server.url, token, seeded, `round ${round} seeded`);
      await assertAllRead(server.url, token, acked, `round ${round} acknowledged`);
      timings.push({ scenario: 'master', round, killedAt, recoverMs, roundMs: Date.now() - t0 });
    }

    // Rotation works again and re-wraps everything.
    const v = await masterVersion();
    const again = await call(server.url, 'POST', '/v1/sys/rotate', token, {});
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.master_version, v + 1);
    assert.deepEqual(await keyringsNotUnder(v + 1), []);
    await assertAllRead(server.url, token, seeded, 'after the last rotation');
    await assertAllRead(server.url, token, acked, 'after the last rotation');
    await server.kill('SIGTERM');
  });

  it('snapshot upload: after kill -9 mid-upload the primary resumes and a replica bootstrapped from the bucket matches it', async () => {
    const bucket = await tempDir('coffer-crash-bucket-');
    const pdir = await tempDir('coffer-crash-primary-');
    dirs.push(bucket, pdir);
    const env = {
      COFFER_SERVER_REPLICATION_BATCH_MS: '20',
      COFFER_SERVER_REPLICATION_LEASE_S: '3',
      COFFER_SERVER_REPLICATION_CLOCK_SKEW_MS: '200',
      COFFER_SERVER_POLL_INTERVAL: '0.1',
      COFFER_SERVER_SNAPSHOT_EVERY: '1000',
    };
    const args = ['--dev', '--data-dir', pdir, '--replicate-to', `file://${bucket}`];
    let primary = await start(args, env);
    const token = await rootToken(pdir);
    // ~8 MiB of values: a snapshot of several 1 MiB parts.
    const seeded = await seed(primary.url, token, 160, 8, (i) => ({
      path: `snap/big/b${i}`,
      data: { v: randomBytes(30_000).toString('base64') },
    }));
    const acked = new Map<string, string>();
    const snapDir = join(bucket, 'snap');
    const snapshotIds = async () =>
      (await readdir(snapDir, { withFileTypes: true }).catch(() => []))
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    const partsOf = async (id: string) =>
      (await readdir(join(snapDir, id)).catch(() => [])).filter((n) => n.endsWith('.part')).length;
    const status = async (url: string) => (await call(url, 'GET', '/v1/sys/replication', token)).body;
    const shipped = async () => {
      const s = await status(primary.url);
      return (
        s.targets[0]?.ok && s.targets[0].last_shipped_seq === s.last_seq && s.targets[0].snapshot_seq !== null && s
      );
    };

    // A first snapshot that holds the big values, to know how many parts one has.
    await call(primary.url, 'POST', '/v1/sys/replication/snapshot', token, {});
    await waitFor(
      async () =>
        (await shipped()) &&
        (await status(primary.url)).targets[0].snapshot_seq >= (await status(primary.url)).last_seq - 5,
      60_000,
      'a first full snapshot',
    );
    const partCounts = await Promise.all((await snapshotIds()).map(partsOf));
    const parts = Math.max(...partCounts);
    assert.ok(parts >= 4, `a snapshot has ${parts} parts`);

    for (let round = 0; round < ROUNDS; round++) {
      const t0 = Date.now();
      const known = new Set(await snapshotIds());
      const writers = startWriters(primary.url, token, {
        writers: 4,
        acked,
        tag: `snap-r${round}`,
        paths: (w, i) => `snap/r${round}/w${w}-${i}`,
      });
      await sleep(100);
      const k = 1 + Math.floor(Math.random() * parts); // 1..parts: up to the index and manifest writes
      const asked = await call(primary.url, 'POST', '/v1/sys/replication/snapshot', token, {});
      assert.equal(asked.status, 202);
      let uploading = '';
      let seenParts = 0;
      await waitFor(
        async () => {
          for (const id of await snapshotIds()) {
            if (known.has(id)) continue;
            const n = await partsOf(id);
            if (n >= k) {
              uploading = id;
              seenParts = n;
              return true;
            }
          }
          return false;
        },
        60_000,
        `a new snapshot with ${k} parts in the bucket`,
        2,
      );
      await primary.kill('SIGKILL');
      await writers.stop();
      const killedAt = `${seenParts}/${parts} parts of snapshot ${uploading.slice(0, 8)}`;
      assert.ok(acked.size > 0, 'writes were acknowledged beside the upload');

      const t1 = Date.now();
      primary = await start(args, env);
      // A kill during a manifest write leaves the file bucket's lock behind (stale after 10 s).
      const marker = `snap/after/r${round}`;
      await waitFor(
        async () =>
          (await call(primary.url, 'PUT', `/v1/secrets/${marker}`, token, { data: { v: marker } })).status === 200,
        40_000,
        'the restarted primary to take writes',
        100,
      );
      acked.set(marker, marker);
      const head = await waitFor(shipped, 40_000, 'the restarted primary to ship its head');
      const recoverMs = Date.now() - t1;
      await assertAllRead(primary.url, token, seeded, `round ${round} primary seeded`);
      await assertAllRead(primary.url, token, acked, `round ${round} primary acknowledged`);

      // A fresh replica from the bucket: identity, snapshot, then segments, up to the primary's head.
      const rdir = await tempDir('coffer-crash-replica-');
      dirs.push(rdir);
      const replica = await start(
        ['--dev', '--data-dir', rdir, '--kek', `file:${join(pdir, 'kek.key')}`, '--replica-of', `file://${bucket}`],
        env,
      );
      await waitFor(
        async () => (await status(replica.url)).last_seq === head.last_seq,
        60_000,
        `the replica to reach sequence ${head.last_seq}`,
        100,
      );
      const onPrimary = await listAll(primary.url, token);
      const onReplica = await listAll(replica.url, token);
      assert.deepEqual(onReplica, onPrimary, 'the replica lists the same secrets');
      const everything = new Map<string, Record<string, string>>();
      for (let i = 0; i < onPrimary.length; i += 100) {
        const r = await call(primary.url, 'POST', '/v1/secrets:batch', token, { paths: onPrimary.slice(i, i + 100) });
        for (const [p, s] of Object.entries(r.body.secrets as Record<string, { data: Record<string, string> }>))
          everything.set(p, s.data);
      }
      assert.equal(everything.size, onPrimary.length);
      await assertAllRead(replica.url, token, everything, `round ${round} replica`);
      await assertAllRead(replica.url, token, acked, `round ${round} replica acknowledged`);
      await replica.kill('SIGTERM');
      await rm(rdir, { recursive: true, force: true });
      timings.push({ scenario: 'snapshot', round, killedAt, recoverMs, roundMs: Date.now() - t0 });
    }
    await primary.kill('SIGTERM');
  });
});

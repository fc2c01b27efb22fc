/**
 * Replication benchmark (npm run bench:replication), through s3rver on loopback:
 *  1. write -> replica-read lag: a write acknowledged by the primary, then the replica polled
 *     every 5 ms until it serves it; replica poll interval 1 s (target: p50 < 1.5 x poll).
 *  2. bootstrap: a fresh replica loads a snapshot of BENCH_SECRETS (default 100,000) secrets.
 * Primary and replicas run in this one process (one event loop), which inflates the numbers a
 * little compared with separate machines.
 */
import { join } from 'node:path';
import { FAST, removeDir, startNode, until } from '../server/replication/cluster.js';
import { startS3 } from '../server/replication/s3rver.js';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 40);
const SECRETS = Number(process.env.BENCH_SECRETS ?? 100_000);
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

const s3 = await startS3();
const settings = {
  ...FAST,
  poll_interval: 1,
  replication_batch_ms: 200,
  replication_lease_s: 30,
  max_staleness_s: 60,
  log_level: 'warn' as const,
};
const primary = await startNode({ replicate_to: [s3.url('bench')], ...settings, snapshot_every: 10_000_000 });
const token = primary.server.rootToken!;
const kekFile = join(primary.dir, 'kek.key');
const replica = await startNode({ replica_of: s3.url('bench'), kekFile, ...settings });
const dirs = [primary.dir, replica.dir];
try {
  const lags: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    await new Promise((r) => setTimeout(r, Math.random() * 500)); // writes land at random points of the poll cycle
    const put = await primary.call('PUT', `/v1/secrets/bench/lag-${i}`, { data: { v: String(i) } }, token);
    if (put.status !== 200) throw new Error(`write failed: ${JSON.stringify(put.body)}`);
    const acked = performance.now();
    for (;;) {
      const r = await replica.call('GET', `/v1/secrets/bench/lag-${i}`, undefined, token);
      if (r.status === 200) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    lags.push(performance.now() - acked);
  }
  console.log(
    `write -> replica read lag, poll 1 s, ${SAMPLES} writes through s3rver: p50 ${pct(lags, 50).toFixed(0)} ms, p99 ${pct(lags, 99).toFixed(0)} ms, max ${Math.max(...lags).toFixed(0)} ms`,
  );

  // Bootstrap: fill the primary, snapshot, then time a fresh replica.
  const fillStart = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < SECRETS) {
      const i = next++;
      const r = await primary.call(
        'PUT',
        `/v1/secrets/fill/s${i % 100}/k${i}`,
        { data: { value: `v${i}-${'x'.repeat(64)}` } },
        token,
      );
      if (r.status !== 200) throw new Error(`fill failed: ${JSON.stringify(r.body)}`);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  console.log(`filled ${SECRETS} secrets in ${((performance.now() - fillStart) / 1000).toFixed(1)} s`);
  await primary.call('POST', '/v1/sys/replication/snapshot', {}, token);
  await until(
    () => (primary.server.replication.status().targets[0]?.snapshot_seq ?? 0) >= primary.server.store.lastSeq - 5,
    600_000,
    'snapshot',
  );
  const started = performance.now();
  const fresh = await startNode({ replica_of: s3.url('bench'), kekFile, ...settings });
  const seconds = (performance.now() - started) / 1000;
  dirs.push(fresh.dir);
  const check = await fresh.call('GET', `/v1/secrets/fill/s7/k${SECRETS - 93}`, undefined, token);
  if (check.status !== 200) throw new Error('bootstrapped replica lacks a secret');
  console.log(
    `bootstrap of a fresh replica from a snapshot of ${SECRETS} secrets (${fresh.server.store.lastSeq} records): ${seconds.toFixed(1)} s, ${Math.round(SECRETS / seconds)} secrets/s`,
  );
  await fresh.stop();
} finally {
  await replica.stop();
  await primary.stop();
  await s3.close();
  for (const d of dirs) await removeDir(d);
}

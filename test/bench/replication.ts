/**
 * Replication benchmark (npm run bench:replication; `npm run bench` runs both parts for its
 * table), through s3rver (the S3 protocol, on loopback):
 *  1. write -> replica-read lag: a write acknowledged by the primary, then the replica polled
 *     every 5 ms until it serves it; replica poll interval 1 s (target: p50 < 1.5 x poll).
 *  2. bootstrap: a fresh replica loads a snapshot of BENCH_SECRETS (default 100,000) secrets,
 *     timed from its start to its first answer (startServer returns once the snapshot and the
 *     segments after it are applied).
 * Primary and replicas run in this one process (one event loop), which inflates the numbers a
 * little compared with separate machines.
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { FAST, removeDir, startNode, until, type Node } from '../server/replication/cluster.js';
import { startS3 } from '../server/replication/s3rver.js';

const settings = {
  ...FAST,
  poll_interval: 1,
  replication_batch_ms: 200,
  replication_lease_s: 30,
  max_staleness_s: 60,
  log_level: 'warn' as const,
};

export const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

/**
 * A primary shipping to an s3rver bucket and (unless `replica` is false) one replica following
 * it; `body` runs with them, then everything is removed.
 */
async function withPair<T>(
  primaryOptions: Record<string, unknown>,
  body: (pair: { primary: Node; replica?: Node; bucket: string; kekFile: string; dirs: string[] }) => Promise<T>,
  { replica: follow = true } = {},
): Promise<T> {
  const s3 = await startS3();
  const bucket = s3.url('bench');
  const primary = await startNode({ replicate_to: [bucket], ...settings, ...primaryOptions });
  const kekFile = join(primary.dir, 'kek.key');
  const replica = follow ? await startNode({ replica_of: bucket, kekFile, ...settings }) : undefined;
  const dirs = [primary.dir, ...(replica ? [replica.dir] : [])];
  try {
    return await body({ primary, ...(replica ? { replica } : {}), bucket, kekFile, dirs });
  } finally {
    await replica?.stop();
    await primary.stop();
    await s3.close();
    for (const d of dirs) await removeDir(d);
  }
}

/** Write-to-replica-read lag of `samples` writes landing at random points of the replica's 1 s poll. */
export function measureLag(samples = 40): Promise<{ p50: number; p99: number; max: number }> {
  return withPair({}, async ({ primary, replica }) => {
    if (!replica) throw new Error('no replica');
    const token = primary.server.rootToken!;
    const lags: number[] = [];
    for (let i = 0; i < samples; i++) {
      await new Promise((r) => setTimeout(r, Math.random() * 500));
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
    return { p50: percentile(lags, 50), p99: percentile(lags, 99), max: Math.max(...lags) };
  });
}

export interface BootstrapResult {
  secrets: number;
  records: number;
  fillSeconds: number;
  seconds: number;
}

/**
 * A primary filled with `secrets` through batch-write, one batch of 1,000 at a time, a snapshot
 * shipped, then a fresh replica timed to its first answer. Everything shares this process's
 * event loop, so the lease is long: a loop kept busy by the fill must not fence the primary.
 */
export function measureBootstrap(secrets: number): Promise<BootstrapResult> {
  const fill = { snapshot_every: 100_000_000, replication_lease_s: 600 };
  return withPair(
    fill,
    async ({ primary, bucket, kekFile, dirs }) => {
      const token = primary.server.rootToken!;
      const fillStart = performance.now();
      let next = 0;
      const worker = async () => {
        while (next < secrets) {
          const from = next;
          next = Math.min(secrets, from + 1000);
          const batch = [];
          for (let i = from; i < next; i++)
            batch.push({ path: `fill/s${i % 100}/k${i}`, data: { value: `v${i}`.padEnd(64, 'x') } });
          const r = await primary.call('POST', '/v1/secrets:batch-write', { secrets: batch }, token);
          if (r.status !== 200 || r.body.results.some((x: { error?: unknown }) => x.error))
            throw new Error(`fill failed at ${from}: ${JSON.stringify(r.body).slice(0, 300)}`);
        }
      };
      await worker();
      const fillSeconds = (performance.now() - fillStart) / 1000;
      await primary.call('POST', '/v1/sys/replication/snapshot', {}, token);
      await until(
        () => (primary.server.replication.status().targets[0]?.snapshot_seq ?? 0) >= primary.server.store.lastSeq - 5,
        3_600_000,
        'snapshot',
      );
      const started = performance.now();
      const fresh = await startNode({ replica_of: bucket, kekFile, ...settings });
      const seconds = (performance.now() - started) / 1000;
      dirs.push(fresh.dir);
      try {
        const check = await fresh.call('GET', `/v1/secrets/fill/s7/k${secrets - 93}`, undefined, token);
        if (check.status !== 200) throw new Error('the bootstrapped replica lacks a secret');
        return { secrets, records: fresh.server.store.lastSeq, fillSeconds, seconds };
      } finally {
        await fresh.stop();
      }
    },
    { replica: false },
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const samples = Number(process.env.BENCH_SAMPLES ?? 40);
  const lag = await measureLag(samples);
  console.log(
    `write -> replica read lag, poll 1 s, ${samples} writes through s3rver: p50 ${lag.p50.toFixed(0)} ms, p99 ${lag.p99.toFixed(0)} ms, max ${lag.max.toFixed(0)} ms`,
  );
  const b = await measureBootstrap(Number(process.env.BENCH_SECRETS ?? 100_000));
  console.log(`filled ${b.secrets} secrets with batch-write in ${b.fillSeconds.toFixed(1)} s`);
  console.log(
    `bootstrap of a fresh replica from a snapshot of ${b.secrets} secrets (${b.records} records): ${b.seconds.toFixed(1)} s, ${Math.round(b.secrets / b.seconds)} secrets/s`,
  );
}

import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { startServerProcess, type ServerProcess } from '../integration/server-process.js';
import { DURATION, measure } from './measure.js';

const PER_BATCH = 1000;
const PER_FOLDER = 1000;

/** `scale/f<folder>/s<index>`: 1,000 secrets per folder, so a folder is a list prefix of known size. */
const pathOf = (i: number) =>
  `scale/f${String(Math.floor(i / PER_FOLDER)).padStart(5, '0')}/s${String(i % PER_FOLDER).padStart(4, '0')}`;

export interface ScaleRow {
  secrets: number;
  loadSeconds: number;
  read1: { p50: number; p99: number };
  read50: number;
  list1: { p50: number; p99: number };
  rssMiB: number;
  startMs: number;
}

async function load(server: ServerProcess, auth: Record<string, string>, from: number, to: number): Promise<void> {
  let next = from;
  // Two batches in flight: each is 1,000 mutations that group commit folds into few fsyncs.
  const worker = async () => {
    for (;;) {
      const start = next;
      if (start >= to) return;
      next = Math.min(to, start + PER_BATCH);
      const secrets = [];
      for (let i = start; i < next; i++) secrets.push({ path: pathOf(i), data: { value: `v${i}`.padEnd(64, 'x') } });
      const res = await fetch(`${server.url}/v1/secrets:batch-write`, {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ secrets }),
      });
      const body = (await res.json()) as { results?: { error?: unknown }[] };
      const failed = body.results?.filter((r) => r.error).length ?? -1;
      if (res.status !== 200 || failed !== 0)
        throw new Error(`batch at ${start}: ${res.status}, ${failed} failed: ${JSON.stringify(body).slice(0, 300)}`);
    }
  };
  await Promise.all([worker(), worker()]);
}

async function rssMiB(server: ServerProcess): Promise<number> {
  const status = await readFile(`/proc/${server.child.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

async function startTimed(dir: string): Promise<{ server: ServerProcess; ms: number }> {
  const started = performance.now();
  const server = await startServerProcess(['--dev', '--data-dir', dir]);
  for (;;) {
    const res = await fetch(`${server.url}/v1/sys/health`).catch(() => undefined);
    if (res?.status === 200) return { server, ms: performance.now() - started };
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Loads one dev server process with secrets up to each of `steps` in turn, measuring at each step (see scale.ts). */
export async function runScale(steps: number[]): Promise<ScaleRow[]> {
  const dir = await tempDir('coffer-scale-');
  let { server } = await startTimed(dir);
  const rows: ScaleRow[] = [];
  try {
    const auth = { Authorization: `Bearer ${(await readFile(join(dir, 'root-token'), 'utf8')).trim()}` };
    let loaded = 0;
    for (const target of steps) {
      const t0 = performance.now();
      await load(server, auth, loaded, target);
      const loadSeconds = (performance.now() - t0) / 1000;
      loaded = target;
      const spread = Array.from(
        { length: 100 },
        (_, k) => `/v1/secrets/${pathOf(Math.floor((k * (target - 1)) / 99))}`,
      );
      const read1 = await measure(server.url, auth, spread, { connections: 1, runs: 1 });
      const read50 = await measure(server.url, auth, spread, { connections: 50, runs: 1 });
      const rss = await rssMiB(server);
      const folder = pathOf(target - 1)
        .split('/')
        .slice(0, 2)
        .join('/');
      const list1 = await measure(server.url, auth, [`/v1/secrets?prefix=${folder}&limit=100`], {
        connections: 1,
        runs: 1,
      });
      await server.kill('SIGTERM');
      const restarted = await startTimed(dir);
      server = restarted.server;
      rows.push({ secrets: target, loadSeconds, read1, read50: read50.rps, list1, rssMiB: rss, startMs: restarted.ms });
      console.error(`${target} secrets: ${JSON.stringify(rows.at(-1))}`);
    }
  } finally {
    await server.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}

/** The scale table in markdown; every ratio is against the first step. */
export function scaleTable(rows: ScaleRow[]): string {
  const base = rows[0]!;
  const x = (v: number, b: number) => `${(v / b).toFixed(2)}x`;
  return [
    `Scale (autocannon ${DURATION} s per figure, one dev server process, secrets loaded with batch-write; ratios against ${base.secrets.toLocaleString('en')} secrets, same run)`,
    '',
    '| secrets | load (s, secrets/s) | read p50 / p99 ms (1 conn) | read req/s (50 conns) | list 100 p50 / p99 ms (1 conn) | RSS MiB | start-up to health 200 (ms) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.secrets.toLocaleString('en')} | ${r.loadSeconds.toFixed(0)} s, ${Math.round((r.secrets - (rows[rows.indexOf(r) - 1]?.secrets ?? 0)) / r.loadSeconds).toLocaleString('en')}/s | ${r.read1.p50} / ${r.read1.p99} (p99 ${x(r.read1.p99 || 1, base.read1.p99 || 1)}) | ${Math.round(r.read50).toLocaleString('en')} (${x(r.read50, base.read50)}) | ${r.list1.p50} / ${r.list1.p99} (p99 ${x(r.list1.p99 || 1, base.list1.p99 || 1)}) | ${r.rssMiB.toFixed(0)} (${x(r.rssMiB, base.rssMiB)}) | ${r.startMs.toFixed(0)} (${x(r.startMs, base.startMs)}) |`,
    ),
  ].join('\n');
}

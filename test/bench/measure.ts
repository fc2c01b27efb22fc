import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

/** autocannon settings shared by the HTTP benchmarks; BENCH_SECONDS shortens a run. */
export const DURATION = Number(process.env.BENCH_SECONDS ?? 5);
export const RUNS = Number(process.env.BENCH_RUNS ?? 3);
export const CONNECTIONS = 50;

export interface Result {
  rps: number;
  p50: number;
  p99: number;
}

/** The median (by req/s) of results. */
export const median = (results: Result[]): Result =>
  [...results].sort((a, b) => a.rps - b.rps)[Math.floor(results.length / 2)]!;

/** The median of `runs` (RUNS) autocannon runs of `options` after a warm-up; any non-2xx answer fails the run. */
export async function autocannonMedian(options: autocannon.Options, runs = RUNS): Promise<Result> {
  await autocannon({ ...options, duration: 1 }); // warm-up
  const results: Result[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await autocannon({ ...options, duration: DURATION });
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`${options.url}: ${r.non2xx} non-2xx and ${r.errors} errors`);
    results.push({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 });
  }
  return median(results);
}

/** `autocannonMedian` of GETs; `paths` (optional) are requested in turn on each connection instead of `url`'s own path. */
export function measure(
  url: string,
  headers: Record<string, string>,
  paths?: string[],
  { connections = CONNECTIONS, runs = RUNS }: { connections?: number; runs?: number } = {},
): Promise<Result> {
  const requests = paths?.map((path) => ({ method: 'GET' as const, path }));
  return autocannonMedian({ url, connections, headers, ...(requests ? { requests } : {}) }, runs);
}

/**
 * One baseline server of test/bench/baseline-server.ts in its own process (`bare`, `express`, or
 * `express-level` over the LevelDB directory `dir`), once it listens.
 */
export async function startBaseline(
  kind: 'bare' | 'express' | 'express-level',
  dir?: string,
): Promise<{ url: string; child: ChildProcess }> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'baseline-server.js');
  const child = spawn(process.execPath, [script, kind, ...(dir ? [dir] : [])], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((done) => createInterface({ input: child.stdout! }).once('line', done));
  return { url: `http://127.0.0.1:${line.trim()}`, child };
}

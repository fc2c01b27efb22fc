import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Coffer } from '../../sdk/client.js';
import { tempDir } from '../helpers.js';
import { CLI, startServerProcess } from '../integration/server-process.js';

/**
 * Bulk load (issue 15 item 3): N secrets (BENCH_N, default 20,000; 64-byte values) written to one
 * dev server process, three ways in the same run, each on its own prefix:
 *
 * - `POST /v1/secrets:batch-write` through the SDK (`batchWrite`), 500 per request, one request
 *   at a time (what `coffer import` does);
 * - `PUT /v1/secrets/:path` through the SDK, 50 concurrent writers (so group commit shares their
 *   syncs too: the strongest single-write baseline, not one writer at a time);
 * - `coffer import --from-json` as a child process (start-up, reading and checking the file
 *   included).
 *
 * Prints secrets/s and the ratios as a markdown table (tool: in-process SDK client over HTTP).
 * `npm run bench:bulk`.
 */
const N = Number(process.env.BENCH_N ?? 20_000);
const CHUNK = 500;
const WRITERS = 50;
const value = (i: number) => `v${i}`.padEnd(64, 'x');

const dir = await tempDir('coffer-bench-bulk-');
const server = await startServerProcess(['--dev', '--data-dir', join(dir, 'vault')]);
try {
  const token = (await readFile(join(dir, 'vault', 'root-token'), 'utf8')).trim();
  const client = new Coffer({ addr: server.url, token });
  const timed = async (run: () => Promise<void>) => {
    const start = performance.now();
    await run();
    return N / ((performance.now() - start) / 1000);
  };
  const load = loadavg()[0]!.toFixed(1);

  const batched = await timed(async () => {
    for (let from = 0; from < N; from += CHUNK) {
      const entries = [];
      for (let i = from; i < Math.min(N, from + CHUNK); i++)
        entries.push({ path: `batch/s${i}`, data: { v: value(i) } });
      const { results } = await client.batchWrite(entries);
      const failed = results.filter((r) => 'error' in r);
      if (failed.length > 0) throw new Error(`batch at ${from}: ${JSON.stringify(failed[0])}`);
    }
  });
  console.error(`batch-write: ${batched.toFixed(0)} secrets/s`);

  const single = await timed(async () => {
    let next = 0;
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        for (let i = next++; i < N; i = next++) await client.putSecret(`single/s${i}`, { data: { v: value(i) } });
      }),
    );
  });
  console.error(`single PUTs: ${single.toFixed(0)} secrets/s`);

  const file = join(dir, 'import.json');
  await writeFile(
    file,
    JSON.stringify(Object.fromEntries(Array.from({ length: N }, (_, i) => [`cli/s${i}`, { v: value(i) }]))),
  );
  const imported = await timed(
    () =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [CLI, 'import', '--from-json', file, '--quiet'], {
          env: { ...process.env, COFFER_ADDR: server.url, COFFER_TOKEN: token },
          stdio: ['ignore', 'ignore', 'inherit'],
        });
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`coffer import exited ${code}`))));
      }),
  );
  console.error(`coffer import: ${imported.toFixed(0)} secrets/s`);

  const fmt = (v: number) => Math.round(v).toLocaleString('en');
  console.log(
    [
      `Bulk load of ${N.toLocaleString('en')} secrets (64-byte values), one dev server process, same run, load average ${load} at start`,
      '',
      '| what | tool | secrets/s | same-run ratio |',
      '|---|---|---|---|',
      `| \`POST /v1/secrets:batch-write\`, ${CHUNK} per request, one request at a time | in-process SDK client | ${fmt(batched)} | **${(batched / single).toFixed(2)}x** single PUTs |`,
      `| \`PUT /v1/secrets/:path\`, ${WRITERS} concurrent writers | in-process SDK client | ${fmt(single)} | |`,
      `| \`coffer import --from-json\` (child process, file checked first, ${CHUNK} per request) | coffer CLI | ${fmt(imported)} | ${(imported / single).toFixed(2)}x single PUTs |`,
    ].join('\n'),
  );
} finally {
  await server.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}

import { spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { CLI, startServerProcess } from '../integration/server-process.js';

/**
 * `coffer run -- true` as a whole process (fetch one secret, spawn, exit) against a local
 * server, next to a bare `node -e ""` measured in the same run: medians of 11 each.
 */
const dir = await tempDir('coffer-startup-bench-');
// The server runs in its own process: spawnSync below blocks this one.
const server = await startServerProcess(['--dev', '--data-dir', dir]);
const token = (await readFile(join(dir, 'root-token'), 'utf8')).trim();
const env = { ...process.env, COFFER_ADDR: server.url, COFFER_TOKEN: token };
await fetch(`${server.url}/v1/secrets/bench/startup`, {
  method: 'PUT',
  headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
  body: '{"data":{"k":"v"}}',
});

function median(args: string[]): number {
  const times: number[] = [];
  for (let i = 0; i < 11; i++) {
    const start = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { env, stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return times.sort((a, b) => a - b)[5]!;
}

try {
  const bare = median(['-e', '']);
  const run = median([CLI, 'run', '--path', 'bench/startup', '--', 'true']);
  console.log(`bare node -e "":                 ${bare.toFixed(0)} ms`);
  console.log(`coffer run --path … -- true:     ${run.toFixed(0)} ms`);
  console.log(`ratio: ${(run / bare).toFixed(2)}x (target <= 2x)`);
} finally {
  await server.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}

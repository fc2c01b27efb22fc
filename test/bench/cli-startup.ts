import { spawnSync } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers.js';
import { CLI, startServerProcess, type ServerProcess } from '../integration/server-process.js';

/**
 * `coffer run --path P -- true` as a whole process (start, fetch one secret, spawn, exit)
 * against a local server, next to a bare `node -e ""`: the commands run in turn, 21 rounds,
 * so a slow patch of the machine slows all of them alike; the medians are compared.
 * `viaMain` is the same through dist/cli/main.js, the ES-module entry the binary replaces.
 * `floor` does the same job with nothing but node: one GET through node:http, then `true`
 * spawned with stdio inherited: what node itself costs for it, which no CLI can go below.
 */
export interface StartupResult {
  bare: number;
  floor: number;
  binary: number;
  viaMain: number;
}

const FLOOR = `const { request } = require('node:http'), { spawn } = require('node:child_process');
const url = new URL('/v1/secrets/bench/startup', process.env.COFFER_ADDR);
request(url, { headers: { authorization: 'Bearer ' + process.env.COFFER_TOKEN } }, (res) => {
  res.resume().on('end', () => {
    if (res.statusCode !== 200) process.exit(1);
    spawn('true', { stdio: 'inherit' }).on('exit', (code) => process.exit(code));
  });
}).end();`;

const MAIN = join(dirname(CLI), 'main.js');
const ROUNDS = 21;

export async function measureStartup(server: ServerProcess, token: string): Promise<StartupResult> {
  const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const put = await fetch(`${server.url}/v1/secrets/bench/startup`, {
    method: 'PUT',
    headers: auth,
    body: '{"data":{"k":"v"}}',
  });
  if (put.status !== 200) throw new Error(`seeding bench/startup: ${put.status}`);
  const env = { ...process.env, COFFER_ADDR: server.url, COFFER_TOKEN: token };
  const run = ['run', '--path', 'bench/startup', '--', 'true'];
  const commands = { bare: ['-e', ''], floor: ['-e', FLOOR], binary: [CLI, ...run], viaMain: [MAIN, ...run] };
  const times: Record<keyof StartupResult, number[]> = { bare: [], floor: [], binary: [], viaMain: [] };
  for (let i = 0; i < ROUNDS; i++) {
    for (const [name, args] of Object.entries(commands) as [keyof StartupResult, string[]][]) {
      const start = process.hrtime.bigint();
      const r = spawnSync(process.execPath, args, { env, stdio: 'ignore' });
      if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
      times[name].push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[ROUNDS >> 1]!;
  return {
    bare: median(times.bare),
    floor: median(times.floor),
    binary: median(times.binary),
    viaMain: median(times.viaMain),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = await tempDir('coffer-startup-bench-');
  // The server runs in its own process: spawnSync blocks this one.
  const server = await startServerProcess(['--dev', '--data-dir', dir]);
  try {
    const r = await measureStartup(server, (await readFile(join(dir, 'root-token'), 'utf8')).trim());
    console.log(`bare node -e "":                             ${r.bare.toFixed(0)} ms`);
    console.log(
      `the same job in plain node (http GET, spawn): ${r.floor.toFixed(0)} ms, ${(r.floor / r.bare).toFixed(2)}x`,
    );
    console.log(
      `coffer run (dist/cli/coffer.cjs, the binary): ${r.binary.toFixed(0)} ms, ${(r.binary / r.bare).toFixed(2)}x`,
    );
    console.log(
      `coffer run (dist/cli/main.js, ES modules):    ${r.viaMain.toFixed(0)} ms, ${(r.viaMain / r.bare).toFixed(2)}x`,
    );
    console.log(
      `medians of ${ROUNDS} rounds; NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'unset'} (node loads it at every start)`,
    );
  } finally {
    await server.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

import { spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers.js';
import { startServerProcess } from '../integration/server-process.js';
import { DURATION, RUNS, autocannonMedian, median, startBaseline, type Result } from './measure.js';

/**
 * `npm run bench`: one table of the HTTP hot path, every row measured in this run. Reads of a
 * 1 KiB secret (a policy token: group, policy, decryption, fdatasync'd audit line) against a
 * bare node:http server and an express 5 hello route returning the same JSON; writes of 1 KiB
 * secrets on distinct paths against an express 5 route doing one raw `level` sync put; at 1, 10
 * and 50 connections, each with autocannon and with wrk (Debian's, installed when missing and
 * run as root; its rows are left out otherwise). Then a batch read of 50 against 50 single
 * reads, and the read with 1, 100 and 1,000 policies in the vault (the token's group holding up
 * to 64 of them). Prints the table and writes
 * it into test/bench/RESULTS.md between its markers. BENCH_SECONDS and BENCH_RUNS shorten it.
 */
const here = dirname(fileURLToPath(import.meta.url));
const VALUE = 'x'.repeat(1024);
const PUT_BODY = JSON.stringify({ data: { value: VALUE } });

interface Load {
  url: string;
  connections: number;
  headers?: Record<string, string>;
  /** Writes: a PUT of PUT_BODY to a fresh path under `/v1/secrets/bench/` per request. */
  put?: boolean;
  /** A POST of this JSON body to the url. */
  post?: string;
}

function withAutocannon(load: Load): Promise<Result> {
  let n = 0;
  const run = `${process.pid}-${Date.now()}`;
  const headers = { ...load.headers, ...(load.put || load.post ? { 'content-type': 'application/json' } : {}) };
  const options = {
    url: load.url,
    connections: load.connections,
    headers,
    ...(load.put
      ? {
          requests: [
            {
              method: 'PUT' as const,
              body: PUT_BODY,
              setupRequest: (req: { path?: string | undefined }) => ({
                ...req,
                path: `/v1/secrets/bench/a${run}/${n++}`,
              }),
            },
          ],
        }
      : load.post
        ? { method: 'POST' as const, body: load.post }
        : {}),
  };
  return autocannonMedian(options);
}

/** wrk's latency figure (`812.00us`, `1.23ms`, `2.00s`) in milliseconds. */
function wrkMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) throw new Error(`wrk latency not understood: ${text}`);
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms'];
}

const WRK_PUT = (token: string, run: string) => `
local n = 0
local body = '${PUT_BODY}'
local headers = { ["Content-Type"] = "application/json"${token ? `, ["Authorization"] = "Bearer ${token}"` : ''} }
request = function()
  n = n + 1
  return wrk.format("PUT", "/v1/secrets/bench/w${run}-" .. n .. "-" .. math.random(1000000000), headers, body)
end`;

async function withWrk(load: Load, scriptDir: string): Promise<Result> {
  const args = ['-t1', `-c${load.connections}`, '--latency'];
  for (const [k, v] of Object.entries(load.headers ?? {})) args.push('-H', `${k}: ${v}`);
  let script: string | undefined;
  if (load.put) {
    script = join(scriptDir, `put-${Date.now()}.lua`);
    const token = /^Bearer (.+)$/.exec(load.headers?.authorization ?? '')?.[1] ?? '';
    await writeFile(script, WRK_PUT(token, `${process.pid}-${Date.now()}`));
    args.push('-s', script);
  }
  const once = (seconds: number): Result => {
    const out = spawnSync('wrk', [...args, `-d${seconds}s`, load.url], { encoding: 'utf8' });
    if (out.status !== 0) throw new Error(`wrk failed: ${out.stderr}`);
    if (/Non-2xx or 3xx responses: \d+/.test(out.stdout) || /Socket errors/.test(out.stdout))
      throw new Error(`${load.url}: wrk saw errors:\n${out.stdout}`);
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(out.stdout)?.[1];
    const p50 = /^\s+50%\s+(\S+)$/m.exec(out.stdout)?.[1];
    const p99 = /^\s+99%\s+(\S+)$/m.exec(out.stdout)?.[1];
    if (!rps || !p50 || !p99) throw new Error(`wrk output not understood:\n${out.stdout}`);
    return { rps: Number(rps), p50: wrkMs(p50), p99: wrkMs(p99) };
  };
  once(1);
  const results: Result[] = [];
  for (let i = 0; i < RUNS; i++) results.push(once(DURATION));
  return median(results);
}

/** Whether wrk is here; installs Debian's when missing and running as root. */
function haveWrk(): boolean {
  if (spawnSync('wrk', ['--version']).error === undefined) return true;
  if (process.getuid?.() !== 0) return false;
  console.error('installing wrk (apt-get install -y wrk)');
  spawnSync('apt-get', ['install', '-y', '-q', 'wrk'], { stdio: 'inherit' });
  return spawnSync('wrk', ['--version']).error === undefined;
}

const dir = await tempDir('coffer-bench-table-');
const bare = await startBaseline('bare');
const express = await startBaseline('express');
const expressLevel = await startBaseline('express-level', join(dir, 'baseline-db'));
const coffer = await startServerProcess(['--dev', '--data-dir', join(dir, 'coffer'), '--log-level', 'info']);
try {
  const root = { authorization: `Bearer ${(await readFile(join(dir, 'coffer', 'root-token'), 'utf8')).trim()}` };
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${coffer.url}${path}`, {
      method,
      headers: { ...root, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, unknown>>;
  };
  await api('PUT', '/v1/secrets/bench/secret', { data: { value: VALUE } });
  const paths = Array.from({ length: 50 }, (_, i) => `bench/batch/s${String(i).padStart(2, '0')}`);
  await api('POST', '/v1/secrets:batch-write', { secrets: paths.map((path) => ({ path, data: { value: VALUE } })) });
  // The policy rows: the vault holds 1, 100 or 1,000 policies; the reading token's group holds
  // the one granting the read plus as many others as a group may (64 at most), each on another prefix.
  const tokens: Record<number, Record<string, string>> = {};
  let defined = 0;
  for (const count of [1, 100, 1000]) {
    for (; defined < count; defined++)
      await api('PUT', `/v1/policies/bench-p${defined}`, {
        rules: [{ path: defined === 0 ? 'bench/**' : `other/p${defined}/*`, capabilities: ['read'] }],
      });
    await api('PUT', `/v1/groups/bench-${count}`, {
      policies: Array.from({ length: Math.min(count, 64) }, (_, i) => `bench-p${i}`),
    });
    const made = await api('POST', '/v1/auth/token/create', {
      identity: `svc:bench-${count}`,
      groups: [`bench-${count}`],
      ttl: '2h',
    });
    tokens[count] = { authorization: `Bearer ${made.token as string}` };
  }
  const reader = tokens[1]!;
  const read = '/v1/secrets/bench/secret';

  const wrk = haveWrk();
  type Row = { row: string; what: string; tool: string; conns: number; result: Result; ratio: string };
  const rows: Row[] = [];
  const ratio = (a: Result, b: Result, name: string) => `${(a.rps / b.rps).toFixed(2)}x ${name}`;
  let id = 0;
  const add = (what: string, tool: string, conns: number, result: Result, versus = '') => {
    const row = { row: `T${++id}`, what, tool, conns, result, ratio: versus };
    rows.push(row);
    console.error(`${row.row} ${tool} ${conns} ${what}: ${Math.round(result.rps)} req/s`);
    return row.result;
  };
  for (const tool of wrk ? ['autocannon', 'wrk'] : ['autocannon']) {
    const run = (load: Load) => (tool === 'wrk' ? withWrk(load, dir) : withAutocannon(load));
    for (const connections of [1, 10, 50]) {
      const b = add('bare node:http, 1 KiB JSON', tool, connections, await run({ url: bare.url + read, connections }));
      const e = add(
        'express 5 hello, 1 KiB JSON',
        tool,
        connections,
        await run({ url: express.url + read, connections }),
      );
      const c = await run({ url: coffer.url + read, connections, headers: reader });
      add(
        'Coffer `GET /v1/secrets/:path`, policy token',
        tool,
        connections,
        c,
        `${ratio(c, e, 'express')}, ${ratio(c, b, 'bare')}`,
      );
      const l = add(
        'express 5 + one raw `level` sync put',
        tool,
        connections,
        await run({ url: expressLevel.url, connections, put: true }),
      );
      const w = await run({ url: coffer.url, connections, headers: root, put: true });
      add('Coffer `PUT /v1/secrets/:path`, distinct paths', tool, connections, w, ratio(w, l, 'express + level'));
    }
  }
  const single = rows.find(
    (r) => r.tool === 'autocannon' && r.conns === 50 && r.what.startsWith('Coffer `GET'),
  )!.result;
  const batch = await withAutocannon({
    url: `${coffer.url}/v1/secrets:batch`,
    connections: 50,
    headers: reader,
    post: JSON.stringify({ paths }),
  });
  add(
    'Coffer `POST /v1/secrets:batch` of 50 secrets (secrets/s = req/s x 50)',
    'autocannon',
    50,
    batch,
    `${((batch.rps * 50) / single.rps).toFixed(1)}x the secrets/s of single reads`,
  );
  const policyRow = (count: number) =>
    `Coffer read, ${count.toLocaleString('en')} ${count === 1 ? 'policy' : 'policies'} in the vault, ${Math.min(count, 64)} on the token's group`;
  const onePolicy = await withAutocannon({ url: coffer.url + read, connections: 50, headers: tokens[1]! });
  add(policyRow(1), 'autocannon', 50, onePolicy);
  for (const count of [100, 1000]) {
    const r = await withAutocannon({ url: coffer.url + read, connections: 50, headers: tokens[count]! });
    add(policyRow(count), 'autocannon', 50, r, ratio(r, onePolicy, '1 policy'));
  }

  const fmt = (n: number) => Math.round(n).toLocaleString('en');
  const ms = (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(0));
  const table = [
    '| row | what | tool | conns | req/s | p50 / p99 ms | same-run ratio |',
    '|---|---|---|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.row} | ${r.what} | ${r.tool} | ${r.conns} | ${fmt(r.result.rps)} | ${ms(r.result.p50)} / ${ms(r.result.p99)} | ${r.ratio} |`,
    ),
  ].join('\n');
  const cpu = cpus();
  const section = [
    '<!-- bench:table:start (written by `npm run bench`, test/bench/table.ts) -->',
    `Machine: ${cpu.length} x ${cpu[0]?.model ?? 'unknown CPU'}, shared by the load generator and the servers. Node ${process.version}. ${new Date().toISOString()}.`,
    `Command: \`BENCH_SECONDS=${DURATION} BENCH_RUNS=${RUNS} npm run bench\`: each figure the median of ${RUNS} run(s) of ${DURATION} s after a 1-second warm-up; every row of one table comes from one run of the script.`,
    '',
    table,
    '<!-- bench:table:end -->',
  ].join('\n');
  console.log(table);
  const resultsFile = join(here, '..', '..', '..', 'test', 'bench', 'RESULTS.md');
  const current = await readFile(resultsFile, 'utf8');
  const marked = /<!-- bench:table:start[\s\S]*?<!-- bench:table:end -->/;
  const next = marked.test(current)
    ? current.replace(marked, section)
    : current.replace(/^(# .*\n)/, `$1\n${section}\n`);
  await writeFile(resultsFile, next);
  console.error(`written to ${resultsFile}`);
} finally {
  bare.child.kill();
  express.child.kill();
  expressLevel.child.kill();
  await coffer.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}

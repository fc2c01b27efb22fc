import { spawnSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hsmAvailable } from '../hsm.js';
import { tempDir } from '../helpers.js';
import { startServerProcess } from '../integration/server-process.js';
import { startIssuer } from '../oidc-issuer.js';
import { measureStartup } from './cli-startup.js';
import { hsmVsSoftware } from './hsm.js';
import { DURATION, RUNS, autocannonMedian, median, startBaseline, type Result } from './measure.js';
import { measureBootstrap, measureLag } from './replication.js';
import { runScale } from './scale-run.js';

/**
 * `npm run bench`: one table of the HTTP hot path, every row measured in this run. Reads of a
 * 1 KiB secret (a policy token: group, policy, decryption, fdatasync'd audit line) against a
 * bare node:http server and an express 5 hello route returning the same JSON; writes of 1 KiB
 * secrets on distinct paths against an express 5 route doing one raw `level` sync put; at 1, 10
 * and 50 connections, each with autocannon and with wrk (Debian's, installed when missing and
 * run as root; its rows are left out otherwise). Then a batch read of 50 against 50 single
 * reads, and the read with 1, 100 and 1,000 policies in the vault (the token's group holding up
 * to 64 of them). Then the rest of the hot path a CI job pays: JWT logins (RS256 tokens of a
 * loopback OIDC issuer, its JWKS cached), `coffer run` start-up against bare node, replication
 * lag and a replica's bootstrap through an S3 protocol server (s3rver), reads with the master
 * key in SoftHSM2 (PKCS#11) against the software KEK, and the scale steps of scale-run.ts.
 * Prints the table and writes it into test/bench/RESULTS.md between its markers. BENCH_SECONDS
 * and BENCH_RUNS shorten it; BENCH_SCALE (default `10000,100000`) and BENCH_BOOTSTRAP (default
 * 100000) set the scale steps and the bootstrap's size (`npm run bench:scale` goes to 1,000,000).
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
  /** A POST of a body made per request (autocannon only). */
  postEach?: () => string;
}

function withAutocannon(load: Load): Promise<Result> {
  let n = 0;
  const run = `${process.pid}-${Date.now()}`;
  const headers = {
    ...load.headers,
    ...(load.put || load.post || load.postEach ? { 'content-type': 'application/json' } : {}),
  };
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
      : load.postEach
        ? {
            requests: [
              {
                method: 'POST' as const,
                setupRequest: (req: object) => ({ ...req, body: load.postEach!() }),
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
  const fmt = (n: number) => Math.round(n).toLocaleString('en');
  const ms = (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(0));
  type Row = {
    row: string;
    what: string;
    tool: string;
    conns: number | '';
    figure: string;
    latency: string;
    ratio: string;
    result?: Result;
  };
  const rows: Row[] = [];
  const ratio = (a: Result, b: Result, name: string) => `${(a.rps / b.rps).toFixed(2)}x ${name}`;
  let id = 0;
  /** A row of any unit: `figure` as it reads ("12 ms", "3,100 logins/s"), `latency` as "p50 / p99". */
  const addFigure = (what: string, tool: string, conns: number | '', figure: string, latency = '', versus = '') => {
    const row: Row = { row: `T${++id}`, what, tool, conns, figure, latency, ratio: versus };
    rows.push(row);
    console.error(`${row.row} ${tool} ${conns} ${what}: ${figure}`);
    return row;
  };
  const add = (what: string, tool: string, conns: number, result: Result, versus = '') => {
    const row = addFigure(
      what,
      tool,
      conns,
      `${fmt(result.rps)} req/s`,
      `${ms(result.p50)} / ${ms(result.p99)}`,
      versus,
    );
    row.result = result;
    return result;
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
  const at50 = (tool: string, what: string) =>
    rows.find((r) => r.tool === tool && r.conns === 50 && r.what.startsWith(what))!.result!;
  if (wrk) {
    // The rows above are a standalone server, which keeps no change log; a primary writes one
    // record a write, repeating the values (docs/storage.md "Change log").
    const primary = await startServerProcess([
      '--dev',
      '--data-dir',
      join(dir, 'primary'),
      '--replicate-to',
      `file://${join(dir, 'bucket')}`,
      '--log-level',
      'info',
    ]);
    try {
      const token = (await readFile(join(dir, 'primary', 'root-token'), 'utf8')).trim();
      const w = await withWrk(
        { url: primary.url, connections: 50, headers: { authorization: `Bearer ${token}` }, put: true },
        dir,
      );
      add(
        'Coffer `PUT /v1/secrets/:path` on a primary shipping to a directory bucket (change log kept)',
        'wrk',
        50,
        w,
        ratio(w, at50('wrk', 'express 5 + one raw'), 'express + level'),
      );
    } finally {
      await primary.kill('SIGTERM');
    }
  }
  const single = at50('autocannon', 'Coffer `GET');
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

  // Logins: a CI job's OIDC token (RS256) from a loopback issuer; the server fetches its JWKS
  // once and caches it. 500 distinct tokens in turn, so no answer can come from a token seen before.
  const issuer = await startIssuer({ claims: { repository: 'acme/api' } });
  try {
    await api('PUT', '/v1/auth/jwt/roles/bench', {
      issuer: issuer.issuer,
      jwks_url: issuer.jwksUrl,
      bound_audiences: ['coffer'],
      bound_claims: { repository: 'acme/api' },
      groups: ['bench-1'],
    });
    const jwts = await Promise.all(Array.from({ length: 500 }, () => issuer.sign()));
    let n = 0;
    const login = await withAutocannon({
      url: `${coffer.url}/v1/auth/jwt/login`,
      connections: 50,
      postEach: () => JSON.stringify({ role: 'bench', jwt: jwts[n++ % jwts.length] }),
    });
    add(
      'Coffer `POST /v1/auth/jwt/login`, RS256 CI token, JWKS cached (a token minted per login)',
      'autocannon',
      50,
      login,
      `${ratio(login, at50('autocannon', 'express 5 hello'), 'express')}; JWKS fetched ${issuer.fetches()}x`,
    );
  } finally {
    await issuer.close();
  }

  const startup = await measureStartup(coffer, root.authorization.slice('Bearer '.length));
  const spawnTool = 'spawnSync, median of 21 rounds';
  addFigure('bare `node -e ""`: process start to exit', spawnTool, '', `${startup.bare.toFixed(0)} ms`);
  const startupRow = (what: string, ms: number, more = '') =>
    addFigure(what, spawnTool, '', `${ms.toFixed(0)} ms`, '', `${(ms / startup.bare).toFixed(2)}x bare node${more}`);
  startupRow('the same job in plain node: one GET through node:http, then `true` spawned (the floor)', startup.floor);
  startupRow(
    '`coffer run --path P -- true` (dist/cli/coffer.cjs, the binary): start, one read, spawn, exit',
    startup.binary,
    `; ${(startup.binary - startup.floor).toFixed(0)} ms over the floor`,
  );
  startupRow('the same through dist/cli/main.js (ES modules)', startup.viaMain);

  const samples = Number(process.env.BENCH_SAMPLES ?? 40);
  const lag = await measureLag(samples);
  addFigure(
    'replication: write acknowledged on the primary to readable on a replica polling every 1 s (s3rver bucket)',
    `fetch every 5 ms, ${samples} writes`,
    '',
    `p50 ${fmt(lag.p50)} ms`,
    `${fmt(lag.p50)} / ${fmt(lag.p99)}`,
    `${(lag.p50 / 1000).toFixed(2)}x the poll interval`,
  );
  const boot = await measureBootstrap(Number(process.env.BENCH_BOOTSTRAP ?? 100_000));
  addFigure(
    `replication: a fresh replica bootstraps from a snapshot of ${fmt(boot.secrets)} secrets (${fmt(boot.records)} records), start to ready`,
    'wall clock',
    '',
    `${boot.seconds.toFixed(1)} s`,
    '',
    `${fmt(boot.secrets / boot.seconds)} secrets/s`,
  );

  if (hsmAvailable) {
    const h = await hsmVsSoftware();
    add('Coffer read, software KEK, 3 namespaces', 'autocannon', 50, h.software);
    add(
      'Coffer read, master key in SoftHSM2 over PKCS#11, 3 namespaces',
      'autocannon',
      50,
      h.hsm,
      `${ratio(h.hsm, h.software, 'software')}; ${h.duringReads} HSM operations in ~${fmt(h.reads)} reads`,
    );
  } else console.error('SoftHSM2 missing (apt-get install -y softhsm2): the HSM rows are left out');

  const steps = (process.env.BENCH_SCALE ?? '10000,100000').split(',').map(Number);
  const scale = await runScale(steps);
  const first = scale[0]!;
  const times = (v: number, b: number) => `${(v / b).toFixed(2)}x ${fmt(first.secrets)}`;
  for (const s of scale) {
    const at = `${fmt(s.secrets)} secrets`;
    const vs = (v: number, b: number) => (s === first ? '' : times(v, b));
    addFigure(
      `scale: read at ${at}, 100 paths across the range`,
      'autocannon',
      1,
      '',
      `${s.read1.p50} / ${s.read1.p99}`,
    );
    addFigure(`scale: read at ${at}`, 'autocannon', 50, `${fmt(s.read50)} req/s`, '', vs(s.read50, first.read50));
    addFigure(`scale: list of 100 by prefix at ${at}`, 'autocannon', 1, '', `${s.list1.p50} / ${s.list1.p99}`);
    addFigure(
      `scale: server RSS after the reads at ${at}`,
      '/proc VmRSS',
      '',
      `${fmt(s.rssMiB)} MiB`,
      '',
      vs(s.rssMiB, first.rssMiB),
    );
    addFigure(
      `scale: start-up to a 200 health answer at ${at}`,
      'fetch every 5 ms',
      '',
      `${fmt(s.startMs)} ms`,
      '',
      vs(s.startMs, first.startMs),
    );
  }

  const table = [
    '| row | what | tool | conns | figure | p50 / p99 ms | same-run ratio |',
    '|---|---|---|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.row} | ${r.what} | ${r.tool} | ${r.conns} | ${r.figure} | ${r.latency} | ${r.ratio} |`),
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

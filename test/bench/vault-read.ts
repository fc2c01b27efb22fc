import { loadavg } from 'node:os';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { startServerProcess } from '../integration/server-process.js';
import autocannon from 'autocannon';
import { CONNECTIONS, DURATION, type Result } from './measure.js';

/**
 * The Vault route's read against the native read of the same 1 KiB secret, in the same server
 * and the same run (docs/vault-compatibility.md; the requirement: within 10%). A policy token
 * (a group policy, as a CI job holds) reads through each route in turn, ROUNDS pairs of one
 * autocannon run each (50 connections), which route goes first alternating so that drift in a
 * shared machine's load falls on both. Two figures per side: the request rate (median of the
 * pairs' ratios) and the server process's CPU time per request (from /proc, summed over the
 * rounds), which other processes' load disturbs far less. Every read is audited (fsync'd).
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const TICK_MS = 10; // USER_HZ is 100 on Linux

interface Side extends Result {
  requests: number;
  cpuMs: number;
}

/** The user + system CPU time of a process so far, in ms. */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime, stime (fields 14 and 15 of stat)
}

async function once(pid: number, url: string, headers: Record<string, string>, duration = DURATION): Promise<Side> {
  const before = await cpuMs(pid);
  const r = await autocannon({ url, connections: CONNECTIONS, headers, duration });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx and ${r.errors} errors`);
  const used = (await cpuMs(pid)) - before;
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, requests: r.requests.total, cpuMs: used };
}

const dir = await tempDir('coffer-bench-');
const coffer = await startServerProcess(['--dev', '--data-dir', dir, '--log-level', 'info']);
try {
  const root = (await readFile(join(dir, 'root-token'), 'utf8')).trim();
  const admin = { Authorization: `Bearer ${root}`, 'Content-Type': 'application/json' };
  const call = async (method: string, path: string, body: object) => {
    const res = await fetch(`${coffer.url}${path}`, { method, headers: admin, body: JSON.stringify(body) });
    if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status}`);
    return res.json() as Promise<Record<string, unknown>>;
  };
  await call('PUT', '/v1/secrets/bench/secret', { data: { value: 'x'.repeat(1024) } });
  await call('PUT', '/v1/policies/bench-read', { rules: [{ path: 'bench/*', capabilities: ['read'] }] });
  await call('PUT', '/v1/groups/bench', { policies: ['bench-read'] });
  const { token } = (await call('POST', '/v1/auth/token/create', {
    identity: 'svc:bench',
    groups: ['bench'],
    ttl: '1h',
  })) as { token: string };

  const pid = coffer.child.pid!;
  const native = (duration?: number) =>
    once(pid, `${coffer.url}/v1/secrets/bench/secret`, { Authorization: `Bearer ${token}` }, duration);
  const vault = (duration?: number) =>
    once(
      pid,
      `${coffer.url}/v1/secret/data/bench/secret`,
      { 'X-Vault-Token': token, 'X-Vault-Request': 'true' },
      duration,
    );
  await native(1); // warm-up of both routes
  await vault(1);
  const load = [loadavg()[0]!];
  const rounds: { native: Side; vault: Side }[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    if (i % 2 === 0) {
      const n = await native();
      rounds.push({ native: n, vault: await vault() });
    } else {
      const v = await vault();
      rounds.push({ native: await native(), vault: v });
    }
  }
  load.push(loadavg()[0]!);

  console.log(
    `autocannon, ${CONNECTIONS} connections, ${ROUNDS} alternating pairs of ${DURATION}s runs, 1 KiB secret, policy token`,
  );
  console.log(`load average (1 min) before / after: ${load.map((l) => l.toFixed(2)).join(' / ')}`);
  const perRequest = (s: Side) => (s.cpuMs / s.requests).toFixed(3);
  console.table(
    rounds.map((r) => ({
      'native req/s': Math.round(r.native.rps),
      'native p50/p99 ms': `${r.native.p50} / ${r.native.p99}`,
      'native CPU ms/req': perRequest(r.native),
      'vault req/s': Math.round(r.vault.rps),
      'vault p50/p99 ms': `${r.vault.p50} / ${r.vault.p99}`,
      'vault CPU ms/req': perRequest(r.vault),
      'vault / native req/s': (r.vault.rps / r.native.rps).toFixed(2),
    })),
  );
  const ratios = rounds.map((r) => r.vault.rps / r.native.rps).sort((a, b) => a - b);
  const median = ratios[Math.floor(ROUNDS / 2)]!;
  const sum = (side: 'native' | 'vault', key: 'cpuMs' | 'requests') => rounds.reduce((t, r) => t + r[side][key], 0);
  const cpuNative = sum('native', 'cpuMs') / sum('native', 'requests');
  const cpuVault = sum('vault', 'cpuMs') / sum('vault', 'requests');
  console.log(`Vault read / native read, req/s: ${median.toFixed(2)}x median of the pairs (target >= 0.90x)`);
  console.log(
    `server CPU per request: native ${cpuNative.toFixed(3)} ms, vault ${cpuVault.toFixed(3)} ms: ${(cpuVault / cpuNative).toFixed(2)}x (target <= 1.10x)`,
  );
} finally {
  await coffer.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}

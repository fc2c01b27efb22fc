import { rm } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { startServerProcess } from '../integration/server-process.js';
import { CONNECTIONS, DURATION, RUNS, measure, startBaseline } from './measure.js';

/**
 * Authenticated GET of a 1 KiB secret (root token, and a token whose access comes from a group
 * policy) against two baselines measured in the same run: a bare node:http server and an
 * express 5 route, each returning the same 1 KiB JSON. Every Coffer read is audited (fsync'd). One server
 * process each, autocannon with 50 connections, median of 3 runs. Reports ratios, which are
 * meaningful on a noisy machine where absolute numbers are not.
 */
const dir = await tempDir('coffer-bench-');
const bare = await startBaseline('bare');
const express = await startBaseline('express');
const coffer = await startServerProcess(['--dev', '--data-dir', dir, '--log-level', 'info']);
try {
  const token = (await readFile(join(dir, 'root-token'), 'utf8')).trim();
  const auth = { Authorization: `Bearer ${token}` };
  const put = await fetch(`${coffer.url}/v1/secrets/bench/secret`, {
    method: 'PUT',
    headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ data: { value: 'x'.repeat(1024) } }),
  });
  if (put.status !== 200) throw new Error(`seeding the secret failed: ${put.status}`);

  // A non-root token whose access comes from a group and a policy: the path every CI job takes.
  const admin = { ...auth, 'Content-Type': 'application/json' };
  await fetch(`${coffer.url}/v1/policies/bench-read`, {
    method: 'PUT',
    headers: admin,
    body: JSON.stringify({ rules: [{ path: 'bench/*', capabilities: ['read'] }] }),
  });
  await fetch(`${coffer.url}/v1/groups/bench`, {
    method: 'PUT',
    headers: admin,
    body: JSON.stringify({ policies: ['bench-read'] }),
  });
  const created = await fetch(`${coffer.url}/v1/auth/token/create`, {
    method: 'POST',
    headers: admin,
    body: JSON.stringify({ identity: 'svc:bench', groups: ['bench'], ttl: '1h' }),
  });
  const policyAuth = { Authorization: `Bearer ${((await created.json()) as { token: string }).token}` };

  const path = '/v1/secrets/bench/secret';
  const rows = {
    'node:http (bare)': await measure(bare.url + path, {}),
    'express 5 hello': await measure(express.url + path, {}),
    'coffer GET secret': await measure(coffer.url + path, auth),
    'coffer GET, policy token': await measure(coffer.url + path, policyAuth),
  };
  const c = rows['coffer GET secret'];
  const p = rows['coffer GET, policy token'];
  console.log(`autocannon, ${CONNECTIONS} connections, ${DURATION}s x ${RUNS} runs (median), 1 KiB JSON body`);
  console.table(
    Object.fromEntries(
      Object.entries(rows).map(([k, r]) => [k, { 'req/s': Math.round(r.rps), 'p50 ms': r.p50, 'p99 ms': r.p99 }]),
    ),
  );
  console.log(`coffer / express hello-world: ${(c.rps / rows['express 5 hello'].rps).toFixed(2)}x (target >= 0.70x)`);
  console.log(`coffer / bare node:http:     ${(c.rps / rows['node:http (bare)'].rps).toFixed(2)}x`);
  console.log(`policy token / root token:   ${(p.rps / c.rps).toFixed(2)}x (target >= 0.85x)`);
} finally {
  bare.child.kill();
  express.child.kill();
  await coffer.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}

import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { hsmAvailable, hsmEnv, tokenWithKey } from '../hsm.js';
import { startServerProcess, type ServerProcess } from '../integration/server-process.js';
import { CONNECTIONS, DURATION, RUNS, measure } from './measure.js';

/**
 * Reads through the HSM provider against the software provider in the same run: 1 KiB secrets
 * in 3 namespaces, read in turn by 50 connections. Also counts the HSM operations the reads
 * caused (from the server's metrics): keyrings are cached, so that count must stay O(keyrings).
 * Target: HSM read rate within 15% of software.
 */
if (!hsmAvailable) throw new Error('SoftHSM2 is needed: apt-get install -y softhsm2');
const NAMESPACES = ['alpha', 'beta', 'gamma'];
const paths = NAMESPACES.map((ns) => `/v1/secrets/${ns}/secret`);

async function seeded(server: ServerProcess, dir: string): Promise<Record<string, string>> {
  const auth = { Authorization: `Bearer ${(await readFile(join(dir, 'root-token'), 'utf8')).trim()}` };
  for (const path of paths) {
    const put = await fetch(server.url + path, {
      method: 'PUT',
      headers: { ...auth, 'Content-Type': 'application/json' },
      body: JSON.stringify({ data: { value: 'x'.repeat(1024) } }),
    });
    if (put.status !== 200) throw new Error(`seeding ${path} failed: ${put.status}`);
  }
  return auth;
}

async function hsmOperations(server: ServerProcess, auth: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${server.url}/v1/sys/metrics`, { headers: auth })).text();
  return [...text.matchAll(/^coffer_hsm_operations\{op="\w+"\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

const softwareDir = await tempDir('coffer-bench-sw-');
const hsmDir = await tempDir('coffer-bench-hsm-');
const { uri } = tokenWithKey();
const software = await startServerProcess(['--dev', '--data-dir', softwareDir, '--log-level', 'info']);
const hsm = await startServerProcess(['--dev', '--data-dir', hsmDir, '--log-level', 'info', '--kek', uri], {
  ...hsmEnv(),
  SOFTHSM2_CONF: process.env.SOFTHSM2_CONF,
});
try {
  const softwareAuth = await seeded(software, softwareDir);
  const hsmAuth = await seeded(hsm, hsmDir);
  const before = await hsmOperations(hsm, hsmAuth);
  const sw = await measure(software.url, softwareAuth, paths);
  const hw = await measure(hsm.url, hsmAuth, paths);
  const reads = Math.round(hw.rps * DURATION * RUNS + hw.rps); // measured runs plus the 1 s warm-up (approximate)
  const operations = (await hsmOperations(hsm, hsmAuth)) - before;
  console.log(
    `autocannon, ${CONNECTIONS} connections, ${DURATION}s x ${RUNS} runs (median), 1 KiB secrets in ${NAMESPACES.length} namespaces`,
  );
  console.table({
    software: { 'req/s': Math.round(sw.rps), 'p50 ms': sw.p50, 'p99 ms': sw.p99 },
    'pkcs11 (SoftHSM2)': { 'req/s': Math.round(hw.rps), 'p50 ms': hw.p50, 'p99 ms': hw.p99 },
  });
  console.log(`pkcs11 / software read rate: ${(hw.rps / sw.rps).toFixed(2)}x (target >= 0.85x)`);
  console.log(
    `HSM operations: ${before} while seeding (${NAMESPACES.length} keyrings created), ${operations} during ~${reads} reads (${((operations / reads) * 10_000).toFixed(2)} per 10,000 reads)`,
  );
} finally {
  await software.kill('SIGTERM');
  await hsm.kill('SIGTERM');
  await rm(softwareDir, { recursive: true, force: true });
  await rm(hsmDir, { recursive: true, force: true });
}

import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers.js';
import { hsmAvailable, hsmEnv, tokenWithKey } from '../hsm.js';
import { startServerProcess, type ServerProcess } from '../integration/server-process.js';
import { CONNECTIONS, DURATION, RUNS, measure, type Result } from './measure.js';

/**
 * Reads through the HSM provider against the software provider in the same run: 1 KiB secrets
 * in 3 namespaces, read in turn by 50 connections. Also counts the HSM operations the reads
 * caused (from the server's metrics): keyrings are cached, so that count must stay O(keyrings).
 * Target: HSM read rate within 15% of software.
 */
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

export interface HsmResult {
  software: Result;
  hsm: Result;
  /** HSM operations while seeding (the keyrings created) and during the reads. */
  seeding: number;
  duringReads: number;
  /** About how many reads the HSM server answered (measured runs plus the warm-up). */
  reads: number;
}

/** The same read load on a software-KEK server and a SoftHSM2 (PKCS#11) one, each in its own process, one after the other. */
export async function hsmVsSoftware(): Promise<HsmResult> {
  if (!hsmAvailable) throw new Error('SoftHSM2 is needed: apt-get install -y softhsm2');
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
    const seeding = await hsmOperations(hsm, hsmAuth);
    const sw = await measure(software.url, softwareAuth, paths);
    const hw = await measure(hsm.url, hsmAuth, paths);
    const duringReads = (await hsmOperations(hsm, hsmAuth)) - seeding;
    return { software: sw, hsm: hw, seeding, duringReads, reads: Math.round(hw.rps * DURATION * RUNS + hw.rps) };
  } finally {
    await software.kill('SIGTERM');
    await hsm.kill('SIGTERM');
    await rm(softwareDir, { recursive: true, force: true });
    await rm(hsmDir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const r = await hsmVsSoftware();
  console.log(
    `autocannon, ${CONNECTIONS} connections, ${DURATION}s x ${RUNS} runs (median), 1 KiB secrets in ${NAMESPACES.length} namespaces`,
  );
  console.table({
    software: { 'req/s': Math.round(r.software.rps), 'p50 ms': r.software.p50, 'p99 ms': r.software.p99 },
    'pkcs11 (SoftHSM2)': { 'req/s': Math.round(r.hsm.rps), 'p50 ms': r.hsm.p50, 'p99 ms': r.hsm.p99 },
  });
  console.log(`pkcs11 / software read rate: ${(r.hsm.rps / r.software.rps).toFixed(2)}x (target >= 0.85x)`);
  console.log(
    `HSM operations: ${r.seeding} while seeding (${NAMESPACES.length} keyrings created), ${r.duringReads} during ~${r.reads} reads (${((r.duringReads / r.reads) * 10_000).toFixed(2)} per 10,000 reads)`,
  );
}

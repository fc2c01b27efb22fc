import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Level } from 'level';
import { openVault, tempDir } from '../helpers.js';
import { startServerProcess } from '../integration/server-process.js';
import { DURATION, RUNS, autocannonMedian, startBaseline, type Result } from './measure.js';

/**
 * Writes, every one synced. In process (same run, median of 3): writers doing
 * `secrets.put` on distinct paths with group commit (the default) and with it off
 * (`maxGroup: 1`: one sync per mutation, as before group commit), and raw `level` sync puts at
 * the same concurrency. Over HTTP (autocannon, 50 connections, distinct paths): Coffer's
 * `PUT /v1/secrets/:path` (authenticated, policy-checked, sealed, audited) against an express 5
 * route doing one raw `level` `put({ sync: true })` per request. Run: npm run bench:write.
 */
const value = 'x'.repeat(1024);

async function median(run: () => Promise<number>): Promise<number> {
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) out.push(await run());
  return out.sort((a, b) => a - b)[Math.floor(RUNS / 2)]!;
}

/** Operations per second of `writers` loops calling `op` for DURATION seconds. */
async function rate(writers: number, op: (w: number, i: number) => Promise<unknown>): Promise<number> {
  const end = Date.now() + DURATION * 1000;
  let done = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; Date.now() < end; i++) {
        await op(w, i);
        done++;
      }
    }),
  );
  return done / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function engineRate(writers: number, maxGroup?: number): Promise<number> {
  const vault = await openVault({ audit: { checkpointEvery: 1000 }, ...(maxGroup ? { store: { maxGroup } } : {}) });
  try {
    let run = 0;
    return await median(() => {
      run++;
      return rate(writers, (w, i) => vault.secrets.put(`bench/r${run}/w${w}/s${i}`, { data: { value } }));
    });
  } finally {
    await vault.cleanup();
  }
}

async function levelRate(writers: number): Promise<number> {
  const dir = await tempDir('coffer-bench-level-');
  const db = new Level<string, string>(join(dir, 'db'));
  await db.open();
  try {
    return await median(() => rate(writers, (w, i) => db.put(`w${w}/s${i}/${Math.random()}`, value, { sync: true })));
  } finally {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function httpRate(url: string, headers: Record<string, string>): Promise<Result> {
  let n = 0;
  const body = JSON.stringify({ data: { value } });
  const options = {
    url,
    connections: 50,
    headers: { ...headers, 'content-type': 'application/json' },
    requests: [
      {
        method: 'PUT' as const,
        body,
        setupRequest: (req: { path?: string | undefined }) => ({
          ...req,
          path: `/v1/secrets/bench/h${process.pid}/${n++}`,
        }),
      },
    ],
  };
  return autocannonMedian(options);
}

const rows: Record<string, { 'writes/s': number }> = {};
for (const writers of [32, 50]) {
  rows[`secrets.put, ${writers} writers, one sync each (maxGroup 1)`] = {
    'writes/s': Math.round(await engineRate(writers, 1)),
  };
  rows[`secrets.put, ${writers} writers, group commit`] = { 'writes/s': Math.round(await engineRate(writers)) };
  rows[`raw level put sync, ${writers} writers`] = { 'writes/s': Math.round(await levelRate(writers)) };
}
console.log(`in process, ${DURATION}s x ${RUNS} runs (median), 1 KiB values, distinct paths`);
console.table(rows);
for (const writers of [32, 50]) {
  const before = rows[`secrets.put, ${writers} writers, one sync each (maxGroup 1)`]!['writes/s'];
  const after = rows[`secrets.put, ${writers} writers, group commit`]!['writes/s'];
  console.log(`group commit / one sync each, ${writers} writers: ${(after / before).toFixed(2)}x`);
}

const dir = await tempDir('coffer-bench-write-');
const express = await startBaseline('express-level', join(dir, 'baseline-db'));
const coffer = await startServerProcess(['--dev', '--data-dir', join(dir, 'coffer'), '--log-level', 'info']);
try {
  const token = (await readFile(join(dir, 'coffer', 'root-token'), 'utf8')).trim();
  const http = {
    'express 5 + level put sync': await httpRate(express.url, {}),
    'coffer PUT secret': await httpRate(coffer.url, { authorization: `Bearer ${token}` }),
  };
  console.log(`autocannon, 50 connections, ${DURATION}s x ${RUNS} runs (median), distinct paths, 1 KiB values`);
  console.table(
    Object.fromEntries(
      Object.entries(http).map(([k, r]) => [k, { 'req/s': Math.round(r.rps), 'p50 ms': r.p50, 'p99 ms': r.p99 }]),
    ),
  );
  console.log(
    `coffer PUT / express + level put sync: ${(http['coffer PUT secret'].rps / http['express 5 + level put sync'].rps).toFixed(2)}x (target >= 1.0x)`,
  );
} finally {
  express.child.kill();
  await coffer.kill('SIGTERM');
  await rm(dir, { recursive: true, force: true });
}

import { runScale, scaleTable } from './scale-run.js';

/**
 * Coffer at scale (issue 15, item 4): one dev server process is loaded with secrets through
 * `POST /v1/secrets:batch-write` in steps (BENCH_SCALE, default `10000,100000,1000000`), and at
 * each step measures, with autocannon:
 *
 * - a single read (one 1 KiB-ish secret, 100 paths spread over the whole range, in turn): p50/p99
 *   at 1 connection, req/s at 50;
 * - list by prefix, 100 names per page, on a prefix of 1,000 secrets: p50/p99 at 1 connection;
 * - the server's RSS after the read load (VmRSS, /proc);
 * - start-up: the server is stopped (SIGTERM) and started again on the same data directory,
 *   timed from spawn to the first 200 of `/v1/sys/health`.
 *
 * Prints one markdown table; every ratio is against the first step, same run. `npm run bench:scale`
 * (not part of `npm test`). BENCH_SECONDS sets each autocannon run (default 5).
 */
const STEPS = (process.env.BENCH_SCALE ?? '10000,100000,1000000').split(',').map(Number);
console.log(scaleTable(await runScale(STEPS)));

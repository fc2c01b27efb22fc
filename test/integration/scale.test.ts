import assert from 'node:assert/strict';
import { runScale, scaleTable } from '../bench/scale-run.js';

/**
 * Issue 15's scale criteria at 100,000 secrets against 10,000, in one run of one dev server
 * process (`npm run test:long` only; `npm run bench:scale` takes it to 1,000,000). Loaded through
 * `POST /v1/secrets:batch-write`. Within 1.5x: a single read's and a 100-name listing's p50 at 1
 * connection, the read rate at 50 connections, start-up to a 200 health answer (no full scan at
 * start); RSS under 2x. The p99s of a few seconds at 1 connection swing with the machine, so they
 * are held to 2x; autocannon reports whole milliseconds, hence a few ms of slack.
 */
const ENABLED = Boolean(process.env.COFFER_LONG);

(ENABLED ? describe : describe.skip)('scale: 100,000 secrets against 10,000 (test:long)', function () {
  this.timeout(20 * 60_000);

  it('keeps reads, listing, memory and start-up flat', async () => {
    const [small, large] = await runScale([10_000, 100_000]);
    console.log(scaleTable([small!, large!]));
    assert.ok(large!.read1.p50 <= small!.read1.p50 * 1.5 + 2, 'read p50 at 1 connection');
    assert.ok(large!.read1.p99 <= small!.read1.p99 * 2 + 5, 'read p99 at 1 connection');
    assert.ok(large!.read50 >= small!.read50 / 1.5, 'read req/s at 50 connections');
    assert.ok(large!.list1.p50 <= small!.list1.p50 * 1.5 + 2, 'list p50 at 1 connection');
    assert.ok(large!.list1.p99 <= small!.list1.p99 * 2 + 5, 'list p99 at 1 connection');
    assert.ok(large!.rssMiB < small!.rssMiB * 2, 'RSS');
    assert.ok(large!.startMs <= small!.startMs * 1.5 + 300, 'start-up to health 200');
  });
});

import assert from 'node:assert/strict';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AuditLog } from '../../../server/audit/log.js';
import { requestRecord } from './request-record.js';
import { tempDir } from '../../helpers.js';

/**
 * Lines no sink makes durable are refused after `timeoutMs`, each counted from its own
 * enqueue, by one timer for all of them (server/audit/log.ts `armExpiry`): a line enqueued
 * later is not refused with the first, and each refusal is named in a `withheld` line.
 */
const rec = requestRecord;

describe('audit log: lines refused past their own deadline', function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(async () => (dir = await tempDir('coffer-audit-expiry-')));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('refuses each line timeoutMs after its own enqueue, and not before', async () => {
    const file = join(dir, 'audit.log');
    const timeoutMs = 400;
    const log = new AuditLog({
      files: [file],
      stdout: false,
      checkpointEvery: 1000,
      timeoutMs,
      retryMs: 50,
      now: Date.now,
    });
    await log.start();
    await rm(file);
    await mkdir(file); // every write fails from here on: nothing becomes durable
    const t0 = performance.now();
    const settled = (p: Promise<void>) =>
      p.then(
        () => ({ ok: true, at: performance.now() - t0 }),
        (e: Error) => ({ ok: false, at: performance.now() - t0, message: e.message }),
      );
    const first = settled(log.record(rec(1)));
    await new Promise((r) => setTimeout(r, timeoutMs / 2));
    const second = settled(log.record(rec(2)));
    const third = settled(log.record(rec(3)));
    const a = await first;
    assert.equal(a.ok, false);
    assert.ok(a.at >= timeoutMs - 1, `the first line is refused at its deadline, not before (${a.at} ms)`);
    const raced = await Promise.race([second, new Promise((r) => setTimeout(() => r('waiting'), 20))]);
    assert.equal(raced, 'waiting', 'a line enqueued later still waits when the first is refused');
    const [b, c] = await Promise.all([second, third]);
    for (const late of [b, c]) {
      assert.equal(late.ok, false);
      assert.ok(late.at >= timeoutMs * 1.5 - 1, `a later line is refused at its own deadline (${late.at} ms)`);
      assert.ok(late.at < timeoutMs * 1.5 + 1_000, `and not long after it (${late.at} ms)`);
    }
    // Once the file is writable again, the refusals are named.
    await rm(file, { recursive: true });
    await log.record(rec(4));
    await log.close();
    const withheld = (await readFile(file, 'utf8'))
      .split('\n')
      .filter((l) => l.includes('"type":"withheld"'))
      .map((l) => (JSON.parse(l) as { seqs: [number, number][] }).seqs);
    // The open line is 0; the first refusal is named alone, the two later ones together.
    assert.deepEqual(withheld, [[[1, 1]], [[2, 3]]]);
  });
});

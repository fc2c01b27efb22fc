import assert from 'node:assert/strict';
import { appendFile, mkdir, readFile, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import request from 'supertest';
import { verifyAuditLog } from '../../../sdk/audit.js';
import { openVault, tempDir, type TestVault } from '../../helpers.js';

const lines = (text: string) => text.split('\n').slice(0, -1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readMany(vault: TestVault, n: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++)
    statuses.push((await request(vault.app).get('/v1/secrets/app/db').set(vault.auth)).status);
  return statuses;
}

/** Waits until `GET /v1/sys/audit` reports every sink ok and caught up. */
async function caughtUp(vault: TestVault): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const sinks = (await request(vault.app).get('/v1/sys/audit').set(vault.auth)).body.sink_status as {
      state: string;
      behind: number;
    }[];
    if (sinks.every((s) => s.state === 'ok' && s.behind <= 1)) return;
    await sleep(100);
  }
  throw new Error('the sinks did not catch up');
}

describe('audit sinks: a sink that misses lines', function () {
  this.timeout(30_000);
  let dir: string;
  let a: string;
  let b: string;
  beforeEach(async () => {
    dir = await tempDir('coffer-sinks-');
    a = join(dir, 'a.log');
    b = join(dir, 'b.log');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  /** Makes `path` unwritable (a directory in its place) and returns how to put the same file back. */
  async function breakSink(path: string): Promise<() => Promise<void>> {
    const { rename } = await import('node:fs/promises');
    await rename(path, `${path}.aside`);
    await mkdir(path);
    return async () => {
      await rm(path, { recursive: true });
      await rename(`${path}.aside`, path);
    };
  }

  it('rewrites the lines it missed, in order, once it can be written again (within the backlog bound)', async () => {
    const vault = await openVault({ dir, audit: { files: [a, b], timeoutMs: 1_000, retryMs: 50 } });
    const publicKey = vault.auditSigner.publicKeyPem()!;
    await request(vault.app)
      .put('/v1/secrets/app/db')
      .set(vault.auth)
      .send({ data: { v: '1' } });
    const restore = await breakSink(b);
    assert.deepEqual(await readMany(vault, 10), Array(10).fill(200), 'a carries every request');
    await restore();
    await caughtUp(vault);
    await vault.cleanup(true);
    const [textA, textB] = [await readFile(a, 'utf8'), await readFile(b, 'utf8')];
    assert.equal(textB, textA, 'b holds every line, in order');
    const result = verifyAuditLog(textB, { publicKeyPem: publicKey, sink: b });
    assert.equal(result.ok, true, JSON.stringify(result.firstBad));
    assert.equal(result.sinkGaps.length, 0);
  });

  it('past the backlog bound: records a gap marker that verifies for that sink only', async () => {
    const vault = await openVault({ dir, audit: { files: [a, b], timeoutMs: 1_000, retryMs: 50, backlogBytes: 4096 } });
    const publicKey = vault.auditSigner.publicKeyPem()!;
    await request(vault.app)
      .put('/v1/secrets/app/db')
      .set(vault.auth)
      .send({ data: { v: '1' } });
    const restore = await breakSink(b);
    assert.deepEqual(await readMany(vault, 40), Array(40).fill(200));
    await restore();
    await caughtUp(vault);
    await readMany(vault, 2);
    await vault.cleanup(true);
    const [textA, textB] = [await readFile(a, 'utf8'), await readFile(b, 'utf8')];
    assert.equal(verifyAuditLog(textA, { publicKeyPem: publicKey, sink: a }).ok, true);
    const result = verifyAuditLog(textB, { publicKeyPem: publicKey, sink: b });
    assert.equal(result.ok, true, JSON.stringify(result.firstBad));
    assert.equal(result.sinkGaps.length, 1);
    const gap = result.sinkGaps[0]!;
    assert.ok(gap.to - gap.from >= 5, JSON.stringify(gap));
    // Every line b lacks is in a: nothing acknowledged is missing from both.
    const missing = lines(textA).filter((l) => !textB.includes(l));
    assert.ok(missing.length >= gap.to - gap.from + 1);
    // The marker is no excuse for another file: b under another name, or a with those lines cut out.
    const other = verifyAuditLog(textB, { publicKeyPem: publicKey, sink: a });
    assert.equal(other.ok, false);
    assert.match(other.firstBad!.reason, new RegExp(`gap marker for sink ${b.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const cut = lines(textA).filter((l) => {
      const seq = (JSON.parse(l) as { seq: number }).seq;
      return seq < gap.from || seq > gap.to;
    });
    const forged = verifyAuditLog(cut.map((l) => `${l}\n`).join(''), { publicKeyPem: publicKey, sink: a });
    assert.equal(forged.ok, false, "lines cut out of a healthy file are not covered by another sink's gap");
  });
});

describe('audit: a torn line', function () {
  this.timeout(30_000);

  it('a fragment after the last line (a write cut by a crash) is cut off at the next start and the log verifies', async () => {
    let vault = await openVault({ audit: { checkpointEvery: 100 } });
    const { dir, auditFile, shares } = vault;
    const publicKey = vault.auditSigner.publicKeyPem()!;
    await readMany(vault, 3);
    await vault.cleanup(true);
    const whole = await readFile(auditFile, 'utf8');
    await appendFile(auditFile, '{"type":"request","time":"2030-01-01T00:00:00.000Z","request_id":"torn'); // no newline
    vault = await openVault({ dir, init: false });
    for (const share of shares.slice(0, 3)) await vault.seal.submitShare(share);
    await readMany(vault, 1);
    await vault.cleanup(true);
    const text = await readFile(auditFile, 'utf8');
    assert.ok(text.startsWith(whole), 'the lines before the fragment are kept as they were');
    assert.ok(!text.includes('"request_id":"torn'), 'the fragment is gone');
    const result = verifyAuditLog(text, { publicKeyPem: publicKey, now: () => Date.now() + 3_600_000 });
    assert.equal(result.ok, true, JSON.stringify(result.firstBad));
    await rm(dir, { recursive: true, force: true });
  });

  it('a durable line cut short while stopped is a truncation: refused, naming both sequence numbers', async () => {
    const vault = await openVault();
    await readMany(vault, 2);
    await vault.cleanup(true);
    const text = await readFile(vault.auditFile, 'utf8');
    await truncate(vault.auditFile, Buffer.byteLength(text) - 5);
    await assert.rejects(
      openVault({ dir: vault.dir, init: false }),
      /ends at sequence \d+ but this server wrote up to sequence \d+/,
    );
    assert.equal(
      (await readFile(vault.auditFile, 'utf8')).length,
      Buffer.byteLength(text) - 5,
      'a refused start changes nothing',
    );
    await rm(vault.dir, { recursive: true, force: true });
  });
});

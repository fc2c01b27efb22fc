import assert from 'node:assert/strict';
import { appendFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import request from 'supertest';
import { verifyAuditLog } from '../../sdk/audit.js';
import { openVault, tempDir, type TestVault } from '../helpers.js';
import { mountSmallFs, type SmallFs } from '../small-fs.js';

/** Fills `dir`'s file system: 64 KiB appends, then 512-byte ones, until ENOSPC. */
async function fill(dir: string): Promise<string> {
  const ballast = join(dir, 'ballast');
  for (const size of [64 * 1024, 512]) {
    for (;;) {
      const ok = await appendFile(ballast, Buffer.alloc(size, 1)).then(
        () => true,
        (e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOSPC') throw e;
          return false;
        },
      );
      if (!ok) break;
    }
  }
  return ballast;
}

const requestLines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.includes('"type":"request"'))
    .map((l) => JSON.parse(l) as { path: string | null; request_id: string });

/**
 * The audit log on a full tmpfs (issue 11 item 2). On main a partial write (bytesWritten short
 * of the line) counted as durable: the file kept a torn line, the next lines were appended after
 * it and `coffer audit verify` failed there for good.
 */
describe('audit log on a full disk', function () {
  this.timeout(120_000);
  let fs: SmallFs | undefined;
  let other: string;

  beforeEach(async function () {
    fs = await mountSmallFs(4);
    if (!fs) return this.skip();
    other = await tempDir('coffer-audit-other-');
  });
  afterEach(async () => {
    if (!fs) return;
    await fs.unmount();
    await rm(other, { recursive: true, force: true });
  });

  /** Reads `count` distinct (absent) paths; returns how each was answered. */
  async function reads(
    vault: TestVault,
    from: number,
    count: number,
  ): Promise<{ path: string; status: number; code?: string }[]> {
    const out: { path: string; status: number; code?: string }[] = [];
    for (let i = from; i < from + count; i++) {
      const path = `app/r${i}`;
      const res = await request(vault.app).get(`/v1/secrets/${path}`).set(vault.auth);
      out.push({ path, status: res.status, ...(res.body?.error?.code ? { code: res.body.error.code } : {}) });
    }
    return out;
  }

  it('alone: refuses with 503 audit_unavailable while full, never keeps a torn line, and verifies after space is freed and a restart', async () => {
    const file = join(fs!.dir, 'audit.log');
    const dataDir = await tempDir();
    let vault = await openVault({ dir: dataDir, audit: { files: [file], timeoutMs: 300 } });
    const publicKey = vault.auditSigner.publicKeyPem()!;
    const shares = vault.shares;
    let ballast = await fill(fs!.dir);
    // The page the log ends in still has room: the first lines go in, then a write is cut short.
    const during = await reads(vault, 0, 40);
    const refused = during.filter((r) => r.status === 503);
    assert.ok(refused.length > 0, 'the disk never refused a line');
    for (const r of refused) assert.equal(r.code, 'audit_unavailable');
    assert.ok(
      during.every((r) => r.status === 404 || r.status === 503),
      JSON.stringify(during.filter((r) => r.status !== 404 && r.status !== 503)),
    );

    // Space freed: answers again without a restart.
    await rm(ballast);
    const after = await reads(vault, 1000, 5);
    assert.deepEqual(
      after.map((r) => r.status),
      [404, 404, 404, 404, 404],
      'answers again once space is freed',
    );

    // Full again, and stopped while full: what is left on disk holds whole lines only.
    ballast = await fill(fs!.dir);
    const again = await reads(vault, 2000, 20);
    assert.ok(again.some((r) => r.status === 503));
    await vault.cleanup(true);
    assert.ok((await readFile(file, 'utf8')).endsWith('\n'), 'no torn line is left in the file');
    await rm(ballast);
    during.push(...again);

    vault = await openVault({ dir: dataDir, init: false, audit: { files: [file] } });
    for (const share of shares.slice(0, 3)) await vault.seal.submitShare(share); // the restart's lines get signed
    await vault.cleanup(true);

    const text = await readFile(file, 'utf8');
    const result = verifyAuditLog(text, { publicKeyPem: publicKey, sink: file });
    assert.equal(result.ok, true, JSON.stringify(result.firstBad));
    const logged = new Set(requestLines(text).map((l) => l.path));
    for (const r of [...during, ...after].filter((x) => x.status !== 503))
      assert.ok(logged.has(r.path), `acknowledged ${r.path} is in the log`);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('beside a healthy sink: answers 200 while full, no acknowledged request is missing, and both files verify after a restart', async () => {
    const full = join(fs!.dir, 'audit.log');
    const healthy = join(other, 'audit.log');
    const dataDir = await tempDir();
    let vault = await openVault({ dir: dataDir, audit: { files: [full, healthy], timeoutMs: 1_000 } });
    const publicKey = vault.auditSigner.publicKeyPem()!;
    await request(vault.app)
      .put('/v1/secrets/app/db')
      .set(vault.auth)
      .send({ data: { v: '1' } });
    const ballast = await fill(fs!.dir);
    const during: { path: string; status: number }[] = [];
    for (let i = 0; i < 60; i++) {
      const res = await request(vault.app).get('/v1/secrets/app/db').set(vault.auth);
      during.push({ path: 'app/db', status: res.status });
    }
    assert.deepEqual(
      during.filter((r) => r.status !== 200),
      [],
      'the healthy sink carries every request',
    );
    const status = (await request(vault.app).get('/v1/sys/audit').set(vault.auth)).body;
    assert.ok(
      status.sink_status.some((s: { name: string; state: string }) => s.name === full && s.state !== 'ok'),
      JSON.stringify(status.sink_status),
    );
    const health = await request(vault.app).get('/v1/sys/health');
    assert.ok(
      (health.body.warnings ?? []).some((w: string) => /audit sink 1 of 2/.test(w)),
      JSON.stringify(health.body),
    );
    assert.ok((await readFile(full, 'utf8')).endsWith('\n'), 'no torn line in the full file');

    await rm(ballast);
    const shares = vault.shares;
    await vault.cleanup(true);
    vault = await openVault({ dir: dataDir, init: false, audit: { files: [full, healthy] } });
    for (const share of shares.slice(0, 3)) await vault.seal.submitShare(share);
    await vault.cleanup(true);
    const ids = (
      await Promise.all(
        [full, healthy].map(async (f) => {
          const text = await readFile(f, 'utf8');
          const result = verifyAuditLog(text, { publicKeyPem: publicKey, sink: f });
          assert.equal(result.ok, true, `${f}: ${JSON.stringify(result.firstBad)}`);
          return requestLines(text).map((l) => l.request_id);
        }),
      )
    ).flat();
    const healthyText = await readFile(healthy, 'utf8');
    assert.ok(requestLines(healthyText).length >= 61, 'every acknowledged request is in the healthy file');
    assert.ok(ids.length > 0);
    await rm(dataDir, { recursive: true, force: true });
  });
});

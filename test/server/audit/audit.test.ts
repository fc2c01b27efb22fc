import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import request from 'supertest';
import { verifyAuditLog } from '../../../sdk/audit.js';
import { openVault, type TestVault } from '../../helpers.js';
import { CLI } from '../../integration/server-process.js';

function runCli(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => done({ code, output }));
  });
}

const CANARY = 'CANARY-audit-7f3a9c';

describe('audit log', function () {
  this.timeout(20_000);
  let vault: TestVault;
  let publicKey: string;
  let text: string;

  before(async () => {
    vault = await openVault({ audit: { checkpointEvery: 4 } });
    const r = () => request(vault.app);
    await r()
      .put('/v1/secrets/app/db')
      .set(vault.auth)
      .send({ data: { password: CANARY } });
    await r().get('/v1/secrets/app/db').set(vault.auth);
    await r()
      .get('/v1/secrets/app/db')
      .set({ Authorization: `Bearer ${vault.rootToken}x` });
    await r()
      .put('/v1/secrets/app/bad')
      .set(vault.auth)
      .send({ data: { password: CANARY, nested: { x: CANARY } } });
    await r()
      .put('/v1/auth/userpass/users/alice')
      .set(vault.auth)
      .send({ password: `${CANARY}-pw`, groups: [] });
    await r()
      .post('/v1/auth/userpass/login')
      .send({ username: 'alice', password: `${CANARY}-pw` });
    await r().post('/v1/auth/userpass/login').send({ username: 'alice', password: 'wrong-password-123' });
    await r().get('/v1/secrets/app/missing').set(vault.auth);
    publicKey = (await r().get('/v1/sys/audit').set(vault.auth)).body.public_key_pem;
    await vault.cleanup(true);
    text = await readFile(vault.auditFile, 'utf8');
  });
  after(() => rm(vault.dir, { recursive: true, force: true }));

  it('writes one line per audited request with identity, operation, path and outcome', () => {
    const entries = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = entries.filter((e) => e.type === 'request');
    assert.ok(requests.length >= 9, `expected every request to be audited, got ${requests.length}`);
    const read = requests.find((e) => e.operation === 'GET /v1/secrets/*path' && e.status === 200)!;
    assert.equal(read.identity, 'root');
    assert.equal(read.path, 'app/db');
    assert.equal(read.outcome, 'ok');
    assert.ok(
      requests.some((e) => e.status === 401 && e.outcome === 'denied'),
      'a bad token is audited as denied',
    );
    assert.ok(
      requests.some((e) => e.operation === 'POST /v1/auth/userpass/login' && e.identity === 'user:alice'),
      'a login names who logged in',
    );
    assert.ok(
      entries.some((e) => e.type === 'checkpoint'),
      'checkpoints are written',
    );
  });

  it('never contains a secret value, a password or a token', () => {
    assert.equal(text.includes(CANARY), false);
    assert.equal(text.includes(vault.rootToken), false);
    assert.equal(text.includes(vault.rootToken.split('.')[2]!), false, 'not even the token signature');
  });

  it('verifies: chain, sequence and every checkpoint signature', () => {
    const result = verifyAuditLog(text, { publicKeyPem: publicKey, requireSignedTail: true });
    assert.equal(result.ok, true, JSON.stringify(result.firstBad));
    assert.ok(result.checkpoints >= 2);
  });

  it('names the first bad line when a line is deleted, edited or reordered', () => {
    const lines = text.split('\n');
    const deleted = [...lines.slice(0, 3), ...lines.slice(4)].join('\n');
    assert.deepEqual(verifyAuditLog(deleted).firstBad?.line, 4);
    const edited = lines.map((l, i) => (i === 2 ? l.replace('"outcome":"ok"', '"outcome":"denied"') : l)).join('\n');
    assert.equal(verifyAuditLog(edited).firstBad?.line, 4, 'the line after the edited one no longer chains');
    const swapped = [...lines];
    [swapped[2], swapped[3]] = [swapped[3]!, swapped[2]!];
    assert.equal(verifyAuditLog(swapped.join('\n')).ok, false);
  });

  it('refuses a checkpoint signed by another key, or re-signed after an edit', () => {
    const lines = text.split('\n');
    const index = lines.findIndex((l) => l.includes('"type":"checkpoint"'));
    const forged = lines
      .map((l, i) =>
        i === index ? l.replace(/"sig":"[^"]+"/, `"sig":"${Buffer.alloc(64, 1).toString('base64')}"`) : l,
      )
      .join('\n');
    assert.match(verifyAuditLog(forged, { publicKeyPem: publicKey }).firstBad?.reason ?? '', /signature/);
  });

  it("detects a truncated tail: cut inside a line, cut before the server's last sequence, or unsigned tail", () => {
    assert.match(verifyAuditLog(text.slice(0, -20)).firstBad?.reason ?? '', /truncated/);
    const lines = text.split('\n').slice(0, -1);
    const lastSeq = (JSON.parse(lines.at(-1)!) as { seq: number }).seq;
    // Cut right after a request line that follows a checkpoint: the kept part chains cleanly.
    const cut = lines.findIndex(
      (l, i) => i > 0 && l.includes('"type":"request"') && lines[i - 1]!.includes('"type":"checkpoint"'),
    );
    assert.ok(cut > 0 && cut < lines.length - 1);
    const shorter = `${lines.slice(0, cut + 1).join('\n')}\n`;
    assert.equal(verifyAuditLog(shorter).ok, true, 'a clean cut keeps the chain');
    assert.match(verifyAuditLog(shorter, { expectLastSeq: lastSeq }).firstBad?.reason ?? '', /truncated/);
    assert.match(
      verifyAuditLog(shorter, { requireSignedTail: true, maxUnsignedLines: 0 }).firstBad?.reason ?? '',
      /not signed/,
    );
  });

  it('coffer audit verify reports ok, or the first bad line with exit code 1', async () => {
    const keyFile = join(vault.dir, 'audit.pem');
    await writeFile(keyFile, publicKey);
    const good = await runCli(['audit', 'verify', vault.auditFile, '--public-key', keyFile]);
    assert.equal(good.code, 0, good.output);
    assert.match(good.output, /^ok: \d+ lines, \d+ checkpoints \(signatures verified, key from /);
    const lines = text.split('\n');
    const tampered = join(vault.dir, 'tampered.log');
    await writeFile(tampered, [...lines.slice(0, 2), ...lines.slice(3)].join('\n'));
    const bad = await runCli(['audit', 'verify', tampered, '--json']);
    assert.equal(bad.code, 1);
    assert.deepEqual(JSON.parse(bad.output.split('\n')[0]!).firstBad, {
      line: 3,
      reason: 'chain broken: a line before it was deleted, edited or reordered',
    });
    const truncated = join(vault.dir, 'truncated.log');
    await writeFile(truncated, text.slice(0, -10));
    assert.equal((await runCli(['audit', 'verify', truncated])).code, 1);
  });
});

describe('audit sinks', function () {
  this.timeout(20_000);
  let vault: TestVault;
  beforeEach(async () => {
    vault = await openVault();
    await request(vault.app)
      .put('/v1/secrets/app/db')
      .set(vault.auth)
      .send({ data: { password: 'p' } });
  });
  afterEach(() => vault.cleanup());

  it('fails closed: with no writable sink a read answers 503 audit_unavailable and returns no data', async () => {
    await rm(vault.auditFile);
    await mkdir(vault.auditFile); // the path is now a directory: every write fails
    const res = await request(vault.app).get('/v1/secrets/app/db').set(vault.auth);
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'audit_unavailable');
    assert.equal(JSON.stringify(res.body).includes('"password"'), false);
    const write = await request(vault.app)
      .put('/v1/secrets/app/other')
      .set(vault.auth)
      .send({ data: { k: 'v' } });
    assert.equal(write.status, 503);
    await rm(vault.auditFile, { recursive: true });
    assert.equal(
      (await request(vault.app).get('/v1/secrets/app/db').set(vault.auth)).status,
      200,
      'recovers once the file is writable',
    );
  });

  it('reopens a rotated file and keeps the chain across both files', async () => {
    await rename(vault.auditFile, `${vault.auditFile}.1`);
    for (let i = 0; i < 3; i++)
      assert.equal((await request(vault.app).get('/v1/secrets/app/db').set(vault.auth)).status, 200);
    await vault.audit.close();
    const first = await readFile(`${vault.auditFile}.1`, 'utf8');
    const second = await readFile(vault.auditFile, 'utf8');
    assert.equal(second.split('\n').filter((l) => l.includes('"type":"request"')).length, 3);
    assert.equal(verifyAuditLog(second).ok, true);
    assert.equal(verifyAuditLog(first + second).ok, true, 'the new file continues the chain of the rotated one');
  });

  it('continues the chain after a restart', async () => {
    const dir = vault.dir;
    await vault.cleanup(true);
    vault = await openVault({ dir, init: false });
    const text = await readFile(join(dir, 'audit.log'), 'utf8');
    assert.equal(verifyAuditLog(text).ok, true);
  });
});

describe('audit sinks: a hung sink', function () {
  this.timeout(20_000);

  it('is bounded by the timeout and never stalls the other sink', async () => {
    const { execFileSync } = await import('node:child_process');
    const { open: openFile } = await import('node:fs/promises');
    const { tempDir } = await import('../../helpers.js');
    const dir = await tempDir('coffer-hung-');
    const fifo = join(dir, 'hung.fifo');
    execFileSync('mkfifo', [fifo]);
    // Writing into a FIFO nobody reads blocks: the sink hangs.
    const vault = await openVault({ audit: { files: [join(dir, 'good.log'), fifo], timeoutMs: 300 } });
    try {
      const t = Date.now();
      const res = await request(vault.app)
        .put('/v1/secrets/app/db')
        .set(vault.auth)
        .send({ data: { v: '1' } });
      assert.equal(res.status, 200, 'answered through the good sink');
      assert.ok(Date.now() - t < 3_000, 'not stalled by the hung sink');
      assert.ok(vault.audit.failedWrites >= 1, 'the hung sink counts as failed');
      assert.match(await readFile(join(dir, 'good.log'), 'utf8'), /"path":"app\/db"/);
    } finally {
      const reader = await openFile(fifo, 'r'); // unblocks the pending open so the thread pool is freed
      await reader.close();
      await vault.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

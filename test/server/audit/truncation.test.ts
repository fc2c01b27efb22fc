import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { sha256Hex, verifyAuditLog } from '../../../sdk/audit.js';
import { openVault, tempDir, type TestVault } from '../../helpers.js';

const lines = (text: string) => text.split('\n').slice(0, -1);
const join_ = (ls: string[]) => ls.map((l) => `${l}\n`).join('');
const seqOf = (line: string) => (JSON.parse(line) as { seq: number }).seq;
const timeOf = (line: string) => Date.parse((JSON.parse(line) as { time: string }).time);

/** What an attacker without the audit key can do: fix every `prev` (and checkpoint `head`) after an edit. */
function rechain(ls: string[]): string[] {
  const out = [...ls];
  for (let i = 1; i < out.length; i++) {
    const entry = JSON.parse(out[i]!) as Record<string, unknown>;
    entry.prev = sha256Hex(out[i - 1]!);
    if (entry.type === 'checkpoint') entry.head = entry.prev;
    out[i] = JSON.stringify(entry);
  }
  return out;
}

async function traffic(vault: TestVault, n: number): Promise<void> {
  await request(vault.app)
    .put('/v1/secrets/app/db')
    .set(vault.auth)
    .send({ data: { password: 'p' } });
  for (let i = 0; i < n; i++) await request(vault.app).get('/v1/secrets/app/db').set(vault.auth);
}

describe('audit truncation and tail signing', function () {
  this.timeout(30_000);

  describe('verify with the public key known', () => {
    let dir: string;
    let text: string;
    let publicKey: string;
    before(async () => {
      const vault = await openVault({ audit: { checkpointEvery: 100 } });
      dir = vault.dir;
      await traffic(vault, 6);
      publicKey = (await request(vault.app).get('/v1/sys/audit').set(vault.auth)).body.public_key_pem;
      await vault.cleanup(true);
      text = await readFile(vault.auditFile, 'utf8');
    });
    after(() => rm(dir, { recursive: true, force: true }));

    it('accepts the whole log of a stopped server, however late it is verified', () => {
      const later = () => Date.now() + 3_600_000;
      const result = verifyAuditLog(text, { publicKeyPem: publicKey, now: later });
      assert.equal(result.ok, true, JSON.stringify(result.firstBad));
      assert.equal(result.unsignedTail, 0);
      assert.equal(result.signaturesVerified, true);
    });

    it('fails when the last lines were dropped (the tail is older than the checkpoint interval)', () => {
      const kept = lines(text).slice(0, -3);
      const lastKept = timeOf(kept.at(-1)!);
      const truncated = join_(kept);
      const result = verifyAuditLog(truncated, { publicKeyPem: publicKey, now: () => lastKept + 60_000 });
      assert.equal(result.ok, false);
      assert.match(result.firstBad!.reason, /not signed/);
      assert.match(result.firstBad!.reason, /truncated/);
      // The documented bound: within the interval (plus grace) a live server may not have signed yet.
      assert.equal(verifyAuditLog(truncated, { publicKeyPem: publicKey, now: () => lastKept + 1_000 }).ok, true);
    });

    it('fails when more lines follow the last checkpoint than the server leaves unsigned', () => {
      const kept = lines(text).slice(0, -1); // drop the final checkpoint
      const result = verifyAuditLog(join_(kept), {
        publicKeyPem: publicKey,
        maxUnsignedLines: 3,
        now: () => timeOf(kept.at(-1)!),
      });
      assert.equal(result.ok, false);
      assert.match(result.firstBad!.reason, /more than the 3/);
    });

    it('an edited line with a recomputed chain: passes the chain check alone, fails with the key', () => {
      const ls = lines(text);
      const index = ls.findIndex((l) => l.includes('"type":"request"') && l.includes('"status":200'));
      ls[index] = ls[index]!.replace('"status":200', '"status":404');
      const forged = rechain(ls);
      assert.equal(verifyAuditLog(join_(forged)).ok, true, 'without a key the recomputed chain looks fine');
      assert.match(verifyAuditLog(join_(forged), { publicKeyPem: publicKey }).firstBad?.reason ?? '', /signature/);
      // Dropping every checkpoint after the edit (and renumbering) leaves an unsigned tail instead.
      const stripped = rechain(
        forged
          .filter((l, i) => i <= index || !l.includes('"type":"checkpoint"'))
          .map((l, i) => JSON.stringify({ ...(JSON.parse(l) as object), seq: i })),
      );
      const result = verifyAuditLog(join_(stripped), { publicKeyPem: publicKey, now: () => Date.now() + 60_000 });
      assert.equal(result.ok, false);
      assert.match(result.firstBad!.reason, /not signed/);
    });

    it('without a key, says that truncation cannot be detected', () => {
      const result = verifyAuditLog(join_(lines(text).slice(0, -3)));
      assert.equal(result.ok, true);
      assert.equal(result.signaturesVerified, false);
    });
  });

  describe('start-up against the stored chain head', () => {
    let dir: string;
    let file: string;
    let shares: string[];
    let publicKey: string;
    beforeEach(async () => {
      const vault = await openVault({ audit: { checkpointEvery: 100 } });
      dir = vault.dir;
      file = vault.auditFile;
      shares = vault.shares;
      publicKey = vault.auditSigner.publicKeyPem()!;
      await traffic(vault, 4);
      await vault.cleanup(true);
    });
    afterEach(() => rm(dir, { recursive: true, force: true }));

    it('refuses to start on a log truncated while stopped, naming both sequence numbers and the file', async () => {
      const ls = lines(await readFile(file, 'utf8'));
      const stored = seqOf(ls.at(-1)!);
      const kept = ls.slice(0, -3);
      await writeFile(file, join_(kept));
      await assert.rejects(openVault({ dir, init: false }), (e: Error) => {
        assert.match(e.message, new RegExp(`ends at sequence ${seqOf(kept.at(-1)!)}\\b`));
        assert.match(e.message, new RegExp(`up to sequence ${stored}\\b`));
        assert.ok(e.message.includes(file), e.message);
        return true;
      });
      assert.equal(await readFile(file, 'utf8'), join_(kept), 'nothing is appended to the truncated log');
    });

    it('refuses to start on an emptied or deleted log', async () => {
      await writeFile(file, '');
      await assert.rejects(openVault({ dir, init: false }), /is empty but this server wrote up to sequence \d+/);
      await rm(file);
      await assert.rejects(openVault({ dir, init: false }), /is missing but this server wrote up to sequence \d+/);
    });

    it('refuses to start when the last line is not the one the server wrote (same sequence, other hash)', async () => {
      const ls = lines(await readFile(file, 'utf8'));
      const edited = rechain([...ls.slice(0, -2), ls.at(-2)!.replace('"status":200', '"status":201'), ls.at(-1)!]);
      await writeFile(file, join_(edited));
      await assert.rejects(
        openVault({ dir, init: false }),
        /sequence \d+ .*SHA-256 differs from the stored chain head/,
      );
    });

    it('starts a new chain segment on purpose when told the exact stored sequence, and records the gap', async () => {
      const ls = lines(await readFile(file, 'utf8'));
      const stored = seqOf(ls.at(-1)!);
      await writeFile(file, join_(ls.slice(0, -3)));
      await assert.rejects(
        openVault({ dir, init: false, audit: { acceptTruncationAt: stored + 1 } }),
        /up to sequence/,
      );
      const vault = await openVault({ dir, init: false, audit: { acceptTruncationAt: stored } });
      await vault.cleanup(true);
      const after = lines(await readFile(file, 'utf8'));
      const open = JSON.parse(after.find((l, i) => i >= ls.length - 3 && l.includes('"type":"open"'))!) as Record<
        string,
        unknown
      >;
      assert.deepEqual((open.gap as { stored_seq: number }).stored_seq, stored);
      const result = verifyAuditLog(join_(after));
      assert.equal(result.ok, true, JSON.stringify(result.firstBad));
      assert.equal(result.gaps.length, 1);
    });

    it('a normal restart continues the chain, keeps the head, and the whole log verifies', async () => {
      for (let round = 0; round < 2; round++) {
        const vault = await openVault({ dir, init: false });
        for (const share of shares.slice(0, 3)) await vault.seal.submitShare(share);
        await traffic({ ...vault, auth: { Authorization: '' } } as TestVault, 0); // a refused request: audited all the same
        await vault.cleanup(true);
      }
      const text = await readFile(file, 'utf8');
      const result = verifyAuditLog(text, { publicKeyPem: publicKey, now: () => Date.now() + 3_600_000 });
      assert.equal(result.ok, true, JSON.stringify(result.firstBad));
      assert.equal(result.gaps.length, 0);
      const seqs = lines(text).map(seqOf);
      assert.deepEqual(
        seqs,
        seqs.map((_, i) => i),
        'sequence numbers continue across restarts',
      );
    });
  });

  describe('checkpoint interval', () => {
    it('signs a checkpoint within the interval after an unsigned line, then stops on close', async () => {
      const vault = await openVault({ audit: { checkpointEvery: 1000, checkpointIntervalMs: 200 } });
      try {
        await request(vault.app).get('/v1/sys/audit').set(vault.auth);
        const before = lines(await readFile(vault.auditFile, 'utf8'));
        assert.notEqual(JSON.parse(before.at(-1)!).type, 'checkpoint', 'the request line is not signed yet');
        await new Promise((r) => setTimeout(r, 600));
        const after = lines(await readFile(vault.auditFile, 'utf8'));
        assert.equal(JSON.parse(after.at(-1)!).type, 'checkpoint', 'a checkpoint followed within the interval');
        assert.ok(timeOf(after.at(-1)!) - timeOf(before.at(-1)!) < 500);
        await new Promise((r) => setTimeout(r, 400));
        assert.equal(
          lines(await readFile(vault.auditFile, 'utf8')).length,
          after.length,
          'no checkpoint without new lines',
        );
      } finally {
        await vault.cleanup(true);
      }
      const closed = await readFile(vault.auditFile, 'utf8');
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(await readFile(vault.auditFile, 'utf8'), closed, 'the timer stopped on close');
      await rm(vault.dir, { recursive: true, force: true });
    });

    it('never keeps the process alive', async () => {
      const dir = await tempDir('coffer-audit-timer-');
      const logModule = join(
        fileURLToPath(new URL('.', import.meta.url)),
        '..',
        '..',
        '..',
        'server',
        'audit',
        'log.js',
      );
      const script = `
        const { AuditLog } = await import(${JSON.stringify(logModule)});
        const log = new AuditLog({ files: [${JSON.stringify(join(dir, 'a.log'))}], stdout: false, checkpointEvery: 1000, checkpointIntervalMs: 60000, timeoutMs: 1000, now: Date.now });
        await log.start();
        await log.record({ request_id: 'r', identity: null, groups: [], operation: 'GET /', path: null, status: 200, outcome: 'ok', client: 'x' });`;
      const started = Date.now();
      const code = await new Promise<number | null>((done) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', (c) => {
          clearTimeout(kill);
          done(c);
        });
      });
      await rm(dir, { recursive: true, force: true });
      assert.equal(code, 0);
      assert.ok(Date.now() - started < 8_000, 'exited without waiting for the 60 s checkpoint timer');
    });
  });
});

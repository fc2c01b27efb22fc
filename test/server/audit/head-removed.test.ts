import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import request from 'supertest';
import { sha256Hex, verifyAuditLog } from '../../../sdk/audit.js';
import { openVault, type TestVault } from '../../helpers.js';

const lines = (text: string) => text.split('\n').slice(0, -1);
const join_ = (ls: string[]) => ls.map((l) => `${l}\n`).join('');
const seqOf = (line: string) => (JSON.parse(line) as { seq: number }).seq;

/**
 * Truncating the log while the server is stopped is refused at start because the chain head is
 * kept in <data_dir>/audit.head; removing that file too must not make the truncation pass
 * (review of issue 10 item 6: it started, and verify only printed a note).
 */
describe('audit: a removed chain head file does not hide a truncation', function () {
  this.timeout(30_000);
  let dir: string;
  let publicKey: string;
  let original: string;

  async function traffic(vault: TestVault, n: number): Promise<void> {
    for (let i = 0; i < n; i++) await request(vault.app).get('/v1/sys/audit').set(vault.auth);
  }

  before(async () => {
    const vault = await openVault();
    dir = vault.dir;
    await traffic(vault, 5);
    publicKey = (await request(vault.app).get('/v1/sys/audit').set(vault.auth)).body.public_key_pem;
    await vault.cleanup(true);
    // A second run, so the log holds an `open` line of a server that kept a head.
    const again = await openVault({ dir, init: false });
    await traffic(again, 3);
    await again.cleanup(true);
    original = await readFile(join(dir, 'audit.log'), 'utf8');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('open lines say the server keeps a chain head', () => {
    const opens = lines(original)
      .map((l) => JSON.parse(l) as { type: string; head?: boolean })
      .filter((e) => e.type === 'open');
    assert.ok(opens.length >= 2);
    for (const o of opens) assert.equal(o.head, true);
  });

  it('refuses to start on a truncated log whose head file was removed, naming the head file and the way out', async () => {
    const kept = lines(original).slice(0, -4);
    await writeFile(join(dir, 'audit.log'), join_(kept));
    await rm(join(dir, 'audit.head'));
    await assert.rejects(openVault({ dir, init: false }), (e: Error) => {
      assert.match(e.message, /audit\.head/);
      assert.match(e.message, new RegExp(`COFFER_AUDIT_ACCEPT_TRUNCATION=${seqOf(kept.at(-1)!)}`));
      return true;
    });
    assert.equal(await readFile(join(dir, 'audit.log'), 'utf8'), join_(kept), 'nothing was appended');

    // Accepting it on purpose starts, records the gap, and a checkpoint signs it.
    const accepted = await openVault({ dir, init: false, audit: { acceptTruncationAt: seqOf(kept.at(-1)!) } });
    await traffic(accepted, 1);
    await accepted.cleanup(true);
    const after = await readFile(join(dir, 'audit.log'), 'utf8');
    const result = verifyAuditLog(after, { publicKeyPem: publicKey });
    assert.equal(result.ok, true, JSON.stringify(result.firstBad));
    assert.equal(result.gaps.length, 1);
    assert.equal(result.gaps[0]!.reason, 'chain head file missing');
  });

  it('verify fails on a head-less restart after a server that kept a head, when no gap was accepted (a forged log)', () => {
    // What an offline attacker would write: cut the log, then append an open line claiming a
    // first start without a head (they cannot sign a checkpoint after it, so check the chain only).
    const ls = lines(original);
    const cut = ls.slice(0, -4);
    const forged = JSON.stringify({
      type: 'open',
      time: new Date().toISOString(),
      head_missing: true,
      head: true,
      seq: seqOf(cut.at(-1)!) + 1,
      prev: sha256Hex(cut.at(-1)!),
    });
    const result = verifyAuditLog(join_([...cut, forged]), {});
    assert.equal(result.ok, false);
    assert.match(result.firstBad!.reason, /head file was removed/);
  });

  it('a log written before heads existed still starts without one (first start after an upgrade)', async () => {
    const legacy = await openVault();
    try {
      await traffic(legacy, 2);
      await legacy.cleanup(true);
      // Strip the head marks, as a log of the previous release has none.
      const stripped = lines(await readFile(legacy.auditFile, 'utf8')).map((l) => {
        const e = JSON.parse(l) as Record<string, unknown>;
        delete e.head;
        return JSON.stringify(e);
      });
      let prev = '0'.repeat(64);
      const rechained = stripped.map((l) => {
        const e = JSON.parse(l) as Record<string, unknown>;
        e.prev = prev;
        const text = JSON.stringify(e);
        prev = sha256Hex(text);
        return text;
      });
      await writeFile(legacy.auditFile, join_(rechained));
      await rm(join(legacy.dir, 'audit.head'));
      const upgraded = await openVault({ dir: legacy.dir, init: false });
      const opens = lines(await readFile(legacy.auditFile, 'utf8'))
        .map((l) => JSON.parse(l) as { type: string; head_missing?: boolean })
        .filter((e) => e.type === 'open');
      assert.equal(opens.at(-1)!.head_missing, true);
      await upgraded.cleanup();
    } finally {
      await rm(legacy.dir, { recursive: true, force: true });
    }
  });
});

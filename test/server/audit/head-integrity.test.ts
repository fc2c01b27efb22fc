import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, open, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { sha256Hex, verifyAuditLog } from '../../../sdk/audit.js';
import * as headModule from '../../../server/audit/head.js';
import { AuditLog, type AuditOptions } from '../../../server/audit/log.js';
import { requestRecord } from './request-record.js';
import { tempDir } from '../../helpers.js';
import { CLI } from '../../integration/server-process.js';
import { mountSmallFs } from '../../small-fs.js';
import { keyPair } from '../../key-pairs.js';

/**
 * Review 2 of the audit rework: forged lines after the stored head were signed by the server,
 * a full data disk refused every request (the head was replaced by temp file + rename), a
 * symlink to a FIFO hung start-up, no `withheld` line after a failed head write, and `missed`
 * was honoured on any line type.
 */
const { privateKey, publicKey } = keyPair('ed25519');
const signer = { kid: 'k1', privateKey, publicKey } as never;
const publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
const lines = (text: string) => text.split('\n').slice(0, -1);
const rec = requestRecord;
const later = () => Date.now() + 3_600_000;

/** Appends `count` correctly chained request lines (no key needed: the chain is only SHA-256). */
async function forge(file: string, count: number, pad = 0): Promise<void> {
  const ls = lines(await readFile(file, 'utf8'));
  let prev = sha256Hex(ls.at(-1)!);
  let seq = (JSON.parse(ls.at(-1)!) as { seq: number }).seq + 1;
  let out = '';
  for (let k = 0; k < count; k++) {
    const text = JSON.stringify({
      type: 'request',
      time: new Date().toISOString(),
      request_id: `forged${k}`,
      identity: 'bob',
      groups: [],
      operation: 'GET /v1/secrets/*',
      path: 'prod/db',
      status: 200,
      outcome: 'ok',
      client: '10.6.6.6',
      ...(pad ? { pad: 'x'.repeat(pad) } : {}),
      seq,
      prev,
    });
    out += `${text}\n`;
    prev = sha256Hex(text);
    seq++;
  }
  await appendFile(file, out);
}

describe('audit chain head integrity (review 2)', function () {
  this.timeout(60_000);
  let dir: string;
  let file: string;
  const opts = (extra: Partial<AuditOptions> = {}): AuditOptions => ({
    files: [file],
    headFile: join(dir, 'audit.head'),
    stdout: false,
    checkpointEvery: 100,
    timeoutMs: 2_000,
    now: Date.now,
    ...extra,
  });
  const started = async (extra: Partial<AuditOptions> = {}) => {
    const log = new AuditLog(opts(extra));
    await log.start();
    log.setSigner(signer);
    return log;
  };
  beforeEach(async () => {
    dir = await tempDir('coffer-audit-head-');
    file = join(dir, 'audit.log');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  describe('lines after the stored head', () => {
    it('after a clean stop: refuses to start on forged lines, naming both sequence numbers; accepted on purpose as a gap', async () => {
      let log = await started();
      for (let i = 0; i < 10; i++) await log.record(rec(i));
      await log.close();
      const stored = (JSON.parse(lines(await readFile(file, 'utf8')).at(-1)!) as { seq: number }).seq;
      await forge(file, 500);
      const forged = await readFile(file, 'utf8');
      await assert.rejects(started(), (e: Error) => {
        assert.match(
          e.message,
          new RegExp(`past sequence ${stored}\\b.*stopped cleanly, up to sequence ${stored + 500}\\b`),
        );
        assert.match(e.message, new RegExp(`COFFER_AUDIT_ACCEPT_TRUNCATION=${stored}\\b`));
        assert.ok(e.message.includes(file), e.message);
        return true;
      });
      assert.equal(await readFile(file, 'utf8'), forged, 'a refused start changes nothing');
      // Even a single forged line is refused after a clean stop.
      await writeFile(
        file,
        lines(forged)
          .slice(0, -500)
          .map((l) => `${l}\n`)
          .join(''),
      );
      await forge(file, 1);
      await assert.rejects(started(), /stopped cleanly/);
      await writeFile(file, forged);
      log = await started({ acceptTruncationAt: stored });
      await log.record(rec(99));
      await log.close();
      const result = verifyAuditLog(await readFile(file, 'utf8'), { publicKeyPem, sink: file, now: later });
      assert.equal(result.ok, true, JSON.stringify(result.firstBad));
      assert.equal(result.gaps.length, 1, 'the accepted lines are recorded as a gap');
      assert.equal(result.gaps[0]!.stored_seq, stored);
      assert.equal(result.gaps[0]!.file_seq, stored + 500);
    });

    it('after a crash: lines past the head (never acknowledged) are cut off and named in the open line', async () => {
      const crashed = await started();
      for (let i = 0; i < 5; i++) await crashed.record(rec(i));
      // The crash: no close (no clean head), and one group written that no head write confirmed.
      const before = await readFile(file, 'utf8');
      const stored = (JSON.parse(lines(before).at(-1)!) as { seq: number }).seq;
      await forge(file, 20);
      const log = await started();
      await log.record(rec(6));
      await log.close();
      const text = await readFile(file, 'utf8');
      assert.ok(text.startsWith(before), 'the confirmed lines are kept');
      assert.ok(!text.includes('forged'), 'the unconfirmed lines are cut off');
      const open = lines(text)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((e) => e.type === 'open')
        .at(-1)!;
      assert.deepEqual(open.unconfirmed, [{ sink: file, from: stored + 1, to: stored + 20 }]);
      assert.equal(open.seq, stored + 1, 'the chain continues after the stored head');
      const result = verifyAuditLog(text, { publicKeyPem, sink: file, now: later });
      assert.equal(result.ok, true, JSON.stringify(result.firstBad) + text);
      assert.deepEqual(result.unconfirmed, [
        { line: lines(before).length + 1, sink: file, from: stored + 1, to: stored + 20, cut: true },
      ]);
      // The CLI names the range.
      const cli = await promisify(execFile)(process.execPath, [CLI, 'audit', 'verify', file], {
        env: { PATH: process.env.PATH, HOME: dir },
      });
      assert.match(
        cli.stdout,
        new RegExp(
          `line ${lines(before).length + 1}: restart after a crash: sequences ${stored + 1} to ${stored + 20}, written to ${file} but never confirmed .*were cut off`,
        ),
      );
      await crashed.close();
    });

    it('after a crash: more than one write (CHUNK_BYTES) past the head is refused', async () => {
      const crashed = await started();
      for (let i = 0; i < 5; i++) await crashed.record(rec(i));
      const stored = (JSON.parse(lines(await readFile(file, 'utf8')).at(-1)!) as { seq: number }).seq;
      await forge(file, 300, 1024); // ~300 KiB
      await assert.rejects(started(), (e: Error) => {
        assert.match(
          e.message,
          new RegExp(
            `past sequence ${stored}\\b, the last line this server confirmed, up to sequence ${stored + 300}\\b`,
          ),
        );
        assert.match(e.message, /more than the 262144 bytes/);
        return true;
      });
      await crashed.close();
    });
  });

  describe('the head file', () => {
    it('a torn slot (garbage) falls back to the other slot; an old-format head is read and replaced', async () => {
      const path = join(dir, 'audit.head');
      const h = (seq: number) => ({
        file,
        seq,
        hash: sha256Hex(String(seq)),
        sinks: [{ seq, hash: sha256Hex(String(seq)) }],
      });
      await writeFile(path, JSON.stringify({ file, seq: 1, hash: sha256Hex('1') }));
      const head = new headModule.FileHead(path);
      assert.deepEqual(await head.read(), { file, seq: 1, hash: sha256Hex('1') }, 'old format');
      await head.write(h(2));
      await head.write(h(3));
      assert.equal((await readFile(path)).length, headModule.HEAD_FILE_BYTES, 'fixed size: rewritten in place');
      assert.deepEqual(await new headModule.FileHead(path).read(), h(3));
      // Tear the slot the last write went to (counter 2: slot 0).
      const handle = await open(path, 'r+');
      await handle.write(Buffer.from('garbage, a torn write'), 0, 21, 30);
      await handle.close();
      assert.deepEqual(await new headModule.FileHead(path).read(), h(2), 'the other slot');
      await head.write(h(4)); // goes to slot 0 again (the failed slot), keeping h(2) meanwhile
      assert.deepEqual(await new headModule.FileHead(path).read(), h(4));
      await head.close();
      // Both slots torn: unreadable, never "no head".
      await writeFile(path, Buffer.alloc(headModule.HEAD_FILE_BYTES, 7));
      await assert.rejects(new headModule.FileHead(path).read(), /unreadable/);
    });

    it('with the head on a full disk (and the log elsewhere), reads are still answered; serial latency printed', async function () {
      const small = await mountSmallFs(1);
      if (!small) return this.skip();
      try {
        const headFile = join(small.dir, 'audit.head');
        const log = new AuditLog(opts({ headFile }));
        await log.start();
        await log.record(rec(0));
        const ballast = await open(join(small.dir, 'ballast'), 'w');
        const block = Buffer.alloc(4096);
        await assert.rejects(
          (async () => {
            for (;;) await ballast.write(block);
          })(),
          /ENOSPC/,
        );
        await ballast.close();
        for (let i = 1; i <= 5; i++) await log.record(rec(i)); // rejects (503 audit_unavailable) before the fix
        assert.equal(log.failedWrites, 0);
        await log.close();
        const stored = await new headModule.FileHead(headFile).read();
        assert.equal(stored?.seq, log.lastSeq, 'the final head was written on the full disk');
        assert.equal(stored?.clean, true);
      } finally {
        await small.unmount();
      }
    });

    it('serial latency: in-place head vs. the replaced head (temp file + rename) it superseded', async () => {
      const N = 200;
      const measure = async (legacy: boolean): Promise<number> => {
        const d = await tempDir('coffer-audit-lat-');
        const log = new AuditLog({
          files: [join(d, 'audit.log')],
          headFile: join(d, 'audit.head'),
          stdout: false,
          checkpointEvery: 100,
          timeoutMs: 5_000,
          now: Date.now,
        });
        if (legacy) {
          // What every head write cost before: temp file, fsync, rename, directory fsync.
          const head = (log as unknown as { head: { path: string; write: (h: unknown) => Promise<void> } }).head;
          head.write = async (h) => {
            const handle = await open(`${head.path}.tmp`, 'w', 0o600);
            await handle.writeFile(JSON.stringify(h));
            await handle.sync();
            await handle.close();
            const { rename } = await import('node:fs/promises');
            await rename(`${head.path}.tmp`, head.path);
            const dirHandle = await open(d, 'r');
            await dirHandle.sync();
            await dirHandle.close();
          };
        }
        await log.start();
        const t = process.hrtime.bigint();
        for (let i = 0; i < N; i++) await log.record(rec(i));
        const ms = Number(process.hrtime.bigint() - t) / 1e6 / N;
        await log.close();
        await rm(d, { recursive: true, force: true });
        return ms;
      };
      const replaced = await measure(true);
      const inPlace = await measure(false);
      process.stdout.write(
        `      serial audited record: ${replaced.toFixed(3)} ms with the replaced head, ${inPlace.toFixed(3)} ms in place\n`,
      );
    });
  });

  it('a symlink to a FIFO is a stream: start-up does not block on it', async () => {
    await promisify(execFile)('mkfifo', [join(dir, 'pipe')]);
    await symlink(join(dir, 'pipe'), join(dir, 'audit.pipe'));
    const log = new AuditLog(opts({ files: [file, join(dir, 'audit.pipe')] }));
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      log.start().then(() => 'started'),
      new Promise((r) => (timer = setTimeout(() => r('blocked'), 5_000))),
    ]);
    clearTimeout(timer);
    assert.equal(outcome, 'started');
    await log.record(rec(0));
    assert.equal(log.sinkStatus()[1]!.kind, 'fifo');
    await log.close();
  });

  it('requests refused because the head write failed are named in a withheld line', async () => {
    const log = await started();
    await log.record(rec(0));
    const head = (log as unknown as { head: { write: (h: unknown) => Promise<void> } }).head;
    const write = head.write.bind(head);
    let fail = true;
    head.write = async (h) => {
      if (fail) {
        fail = false;
        throw Object.assign(new Error('EIO'), { code: 'EIO' });
      }
      return write(h);
    };
    await assert.rejects(log.record(rec(1)), /audit log cannot be written/);
    const refused = log.lastSeq;
    await log.record(rec(2));
    await log.close();
    const entries = lines(await readFile(file, 'utf8')).map(
      (l) => JSON.parse(l) as { type: string; seqs?: number[][] },
    );
    const withheld = entries.filter((e) => e.type === 'withheld');
    assert.equal(withheld.length, 1, 'a withheld line');
    assert.deepEqual(withheld[0]!.seqs, [[refused, refused]]);
  });

  it('the verifier honours `missed` only on gap and open lines', async () => {
    const log = await started();
    for (let i = 0; i < 4; i++) await log.record(rec(i));
    await log.close();
    const ls = lines(await readFile(file, 'utf8')).slice(0, -1); // without the final checkpoint
    const at = ls.length - 2; // cut the line at `at` out
    const cut = JSON.parse(ls[at]!) as { seq: number };
    const next = JSON.parse(ls[at + 1]!) as Record<string, unknown>;
    const marker = { missed: [{ sink: file, from: cut.seq, after: sha256Hex(ls[at - 1]!) }] };
    const asRequest = [...ls.slice(0, at), JSON.stringify({ ...next, ...marker })];
    const asGap = [...ls.slice(0, at), JSON.stringify({ ...next, type: 'gap', ...marker })];
    const text = (l: string[]) => l.map((x) => `${x}\n`).join('');
    const onRequest = verifyAuditLog(text(asRequest), { sink: file });
    assert.equal(onRequest.ok, false, 'a request line cannot excuse a cut');
    assert.match(onRequest.firstBad!.reason, /chain broken/);
    assert.equal(verifyAuditLog(text(asGap), { sink: file }).ok, true, 'a gap line can');
  });
});

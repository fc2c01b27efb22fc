import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex } from '../../sdk/audit.js';
import { loadConfig } from '../../server/config.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { silentLog, tempDir } from '../helpers.js';
import { CLI } from '../integration/server-process.js';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

const lines = (text: string) => text.split('\n').slice(0, -1);
const join_ = (ls: string[]) => ls.map((l) => `${l}\n`).join('');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('coffer audit verify (real CLI, real server)', function () {
  this.timeout(30_000);
  let dir: string;
  let server: RunningServer;
  let env: NodeJS.ProcessEnv;
  let auditFile: string;

  const run = (args: string[], extraEnv: NodeJS.ProcessEnv = env): Promise<Result> =>
    new Promise((done) => {
      const child = spawn(process.execPath, [CLI, ...args], { env: extraEnv, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('exit', (code) => done({ code, stdout, stderr }));
    });

  before(async () => {
    dir = await tempDir('coffer-audit-cli-');
    auditFile = join(dir, 'vault', 'audit.log');
    const config = await loadConfig({
      flags: { dev: true, data_dir: join(dir, 'vault'), listen: '127.0.0.1:0', audit_checkpoint_interval_s: 0.2 },
    });
    server = await startServer(config, { log: silentLog });
    env = { PATH: process.env.PATH, HOME: join(dir, 'home'), COFFER_ADDR: server.url, COFFER_TOKEN: server.rootToken };
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${server.url}/v1/secrets/app/db`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${server.rootToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ data: { v: String(i) } }),
      });
      assert.equal(res.status, 200);
    }
    await sleep(500); // the interval checkpoint signs these lines
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('by default fetches the checkpoint key and bounds from the server and verifies the live log', async () => {
    const r = await run(['audit', 'verify', auditFile]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /^ok: \d+ lines, \d+ checkpoints \(signatures verified, key from http:\/\/127\.0\.0\.1:\d+\)/,
    );
  });

  it('fails on a copy with an edited line and a recomputed chain', async () => {
    const ls = lines(await readFile(auditFile, 'utf8'));
    const index = ls.findIndex((l) => l.includes('"operation":"PUT /v1/secrets/*path"'));
    ls[index] = ls[index]!.replace('"status":200', '"status":403');
    for (let i = index + 1; i < ls.length; i++) {
      const entry = JSON.parse(ls[i]!) as Record<string, unknown>;
      entry.prev = sha256Hex(ls[i - 1]!);
      if (entry.type === 'checkpoint') entry.head = entry.prev;
      ls[i] = JSON.stringify(entry);
    }
    const forged = join(dir, 'forged.log');
    await writeFile(forged, join_(ls));
    const r = await run(['audit', 'verify', forged]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^FAILED at line \d+: checkpoint signature is invalid/);
  });

  it('fails on a copy whose last lines were dropped, once the checkpoint interval has passed', async () => {
    const ls = lines(await readFile(auditFile, 'utf8'));
    const lastCheckpoint = ls.findLastIndex((l) => l.includes('"type":"checkpoint"'));
    const kept = ls.slice(0, lastCheckpoint); // the last checkpoint (and anything after it) is gone
    const truncated = join(dir, 'truncated.log');
    await writeFile(truncated, join_(kept));
    const lastTime = Date.parse((JSON.parse(kept.at(-1)!) as { time: string }).time);
    await sleep(Math.max(0, lastTime + 2_600 - Date.now())); // interval 0.2 s + the default 2 s grace
    const r = await run(['audit', 'verify', truncated]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^FAILED at line \d+: .*not signed.*truncated/);
    // The same with the key from a file and the bounds given on the command line.
    const pem = join(dir, 'audit.pem');
    const info = (await (
      await fetch(`${server.url}/v1/sys/audit`, { headers: { Authorization: `Bearer ${server.rootToken}` } })
    ).json()) as { public_key_pem: string; checkpoint_interval_s: number; checkpoint_every: number };
    assert.equal(info.checkpoint_interval_s, 0.2);
    assert.equal(info.checkpoint_every, 100);
    await writeFile(pem, info.public_key_pem);
    const offline = await run(['audit', 'verify', truncated, '--public-key', pem, '--checkpoint-interval-s', '0.2'], {
      PATH: process.env.PATH,
      HOME: join(dir, 'home'),
    });
    assert.equal(offline.code, 1, offline.stdout + offline.stderr);
    // --expect-seq still reports a log that ends before the server's sequence.
    const expect = await run(
      ['audit', 'verify', truncated, '--public-key', pem, '--expect-seq', String(ls.length + 5), '--json'],
      { PATH: process.env.PATH, HOME: join(dir, 'home') },
    );
    assert.equal(expect.code, 1);
    assert.match(JSON.parse(expect.stdout).firstBad.reason, /truncated/);
  });

  it('without any key: checks the chain but says truncation and recomputed edits cannot be detected', async () => {
    const noServer = { PATH: process.env.PATH, HOME: join(dir, 'home') };
    const r = await run(['audit', 'verify', auditFile], noServer);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok: \d+ lines/);
    assert.match(
      r.stdout + r.stderr,
      /no audit public key: a truncated tail or an edit with a recomputed chain cannot be detected/,
    );
  });

  it('fails clearly, and does not fall back to no key, when the server named cannot be reached', async () => {
    const r = await run(['audit', 'verify', auditFile, '--addr', 'http://127.0.0.1:1'], {
      PATH: process.env.PATH,
      HOME: join(dir, 'home'),
    });
    assert.equal(r.code, 5, r.stdout + r.stderr);
    assert.match(r.stderr, /--public-key/);
  });
});

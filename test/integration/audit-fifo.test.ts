import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import request from 'supertest';
import { verifyAuditLog } from '../../sdk/audit.js';
import { openVault, tempDir } from '../helpers.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function get(
  url: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const req = httpRequest(new URL(path, url), { agent: new Agent(), headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => done({ status: res.statusCode!, body }));
    });
    req.on('error', fail);
    req.end();
  });
}

/**
 * A FIFO audit sink nobody reads (issue 11 item 3). On main every write into it went through
 * fs.write on the libuv thread pool and blocked there: beside a healthy file, reads took the
 * sink timeout each and then every one answered 503 once four threads were stuck; SIGTERM hung;
 * with the FIFO alone the server never started (the tail read opened it and blocked).
 */
describe('audit: a stalled FIFO sink', function () {
  this.timeout(90_000);
  let dir: string;
  let fifo: string;
  let reader: ChildProcess | undefined;
  let heldFd: number | undefined;
  beforeEach(async () => {
    dir = await tempDir('coffer-fifo-');
    fifo = join(dir, 'audit.fifo');
    execFileSync('mkfifo', [fifo]);
  });
  afterEach(async () => {
    if (reader && reader.exitCode === null) {
      reader.kill('SIGKILL');
      reader.kill('SIGCONT');
    }
    reader = undefined;
    if (heldFd !== undefined) closeSync(heldFd);
    heldFd = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('beside a healthy file: reads stay at their usual latency, health names the stalled sink', async () => {
    // A reader that drains the FIFO (cat), then stops reading (SIGSTOP) while keeping it open.
    reader = spawn('cat', [fifo], { stdio: ['ignore', 'ignore', 'inherit'] });
    const good = join(dir, 'good.log');
    const vault = await openVault({ audit: { files: [good, fifo], timeoutMs: 2_000 } });
    try {
      await request(vault.app)
        .put('/v1/secrets/app/db')
        .set(vault.auth)
        .send({ data: { v: '1' } });
      const timeReads = async (n: number) => {
        const times: number[] = [];
        for (let i = 0; i < n; i++) {
          const t = performance.now();
          const res = await request(vault.app).get('/v1/secrets/app/db').set(vault.auth);
          times.push(performance.now() - t);
          assert.equal(res.status, 200, JSON.stringify(res.body));
        }
        return times;
      };
      const before = median(await timeReads(30));
      reader.kill('SIGSTOP');
      // Fill the pipe (64 KiB) until the sink's writes no longer complete.
      const fillTimes = await timeReads(400);
      const during = median(await timeReads(30));
      process.stderr.write(
        `      median read latency: ${before.toFixed(1)} ms before, ${during.toFixed(1)} ms with the FIFO stalled (fill phase max ${Math.max(...fillTimes).toFixed(0)} ms)\n`,
      );
      assert.ok(during < before + 100, `median ${during} ms with a stalled sink vs ${before} ms before`);
      // Stalled once no write has completed for timeoutMs (2 s): the reads above may take less.
      let status = (await request(vault.app).get('/v1/sys/audit').set(vault.auth)).body;
      const stalled = () => status.sink_status.find((s: { name: string }) => s.name === fifo)?.state !== 'ok';
      for (let i = 0; i < 40 && !stalled(); i++) {
        await new Promise((r) => setTimeout(r, 100));
        await request(vault.app).get('/v1/secrets/app/db').set(vault.auth);
        status = (await request(vault.app).get('/v1/sys/audit').set(vault.auth)).body;
      }
      assert.ok(stalled(), JSON.stringify(status.sink_status));
      const health = await request(vault.app).get('/v1/sys/health');
      assert.equal(health.status, 200, 'one healthy sink is enough');
      assert.ok(
        (health.body.warnings ?? []).some((w: string) => /audit sink 2 of 2 \(fifo\)/.test(w)),
        JSON.stringify(health.body),
      );
      assert.ok(!JSON.stringify(health.body).includes(dir), 'no path in the unauthenticated health answer');
      const started = Date.now();
      await vault.cleanup(true);
      assert.ok(Date.now() - started < 4_000, 'close does not wait on the stalled sink');
      const result = verifyAuditLog(await readFile(good, 'utf8'), { sink: good });
      assert.equal(result.ok, true, JSON.stringify(result.firstBad));
    } finally {
      await vault.cleanup(true).catch(() => undefined);
    }
  });

  it('a server process: exits within the grace period on SIGTERM with the FIFO stalled', async () => {
    const dataDir = join(dir, 'data');
    const config = join(dir, 'coffer.json');
    await writeFile(
      config,
      JSON.stringify({
        dev: true,
        data_dir: dataDir,
        audit_files: [join(dataDir, 'audit.log'), fifo],
        shutdown_grace_s: 2,
      }),
    );
    // A reader that holds the FIFO open and never reads: writes succeed until the pipe is full.
    heldFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const server: ServerProcess = await startServerProcess(['--config', config]);
    try {
      const token = (await readFile(join(dataDir, 'root-token'), 'utf8')).trim();
      const auth = { Authorization: `Bearer ${token}` };
      for (let i = 0; i < 300; i++) assert.equal((await get(server.url, '/v1/sys/health')).status, 200);
      for (let i = 0; i < 300; i++) assert.equal((await get(server.url, '/v1/sys/audit', auth)).status, 200);
      // The pipe is full: the sink's write no longer completes, and after the sink timeout it is reported stalled.
      let fifoState = 'ok';
      for (let i = 0; i < 100 && fifoState === 'ok'; i++) {
        const res = await get(server.url, '/v1/sys/audit', auth);
        assert.equal(res.status, 200);
        fifoState = (JSON.parse(res.body) as { sink_status: { name: string; state: string }[] }).sink_status.find(
          (s) => s.name === fifo,
        )!.state;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(fifoState, 'stalled');
      const metrics = await get(server.url, '/v1/sys/metrics', auth);
      assert.match(metrics.body, /coffer_audit_sink_up\{sink="[^"]*audit\.fifo"\} 0/);
      assert.match(metrics.body, /coffer_audit_sink_up\{sink="[^"]*audit\.log"\} 1/);
      const exited = new Promise<number | null>((done) => server.child.once('exit', (code) => done(code)));
      const started = Date.now();
      server.child.kill('SIGTERM');
      const code = await Promise.race([
        exited,
        new Promise<string>((r) => setTimeout(() => r('still running'), 6_000)),
      ]);
      process.stderr.write(`      SIGTERM to exit: ${Date.now() - started} ms (grace 2 s)\n`);
      assert.equal(code, 0, server.output());
      assert.ok(Date.now() - started < 3_500);
    } finally {
      await server.kill();
    }
  });

  it('alone and never opened for reading: the server starts, refuses requests with 503 audit_unavailable, health says so', async () => {
    const dataDir = join(dir, 'data');
    const config = join(dir, 'coffer.json');
    await writeFile(config, JSON.stringify({ dev: true, data_dir: dataDir, audit_files: [fifo], shutdown_grace_s: 2 }));
    const starting = startServerProcess(['--config', config]);
    const server = await Promise.race([
      starting,
      new Promise<never>((_, j) => setTimeout(() => j(new Error('the server did not start within 10 s')), 10_000)),
    ]).catch(async (e) => {
      void starting.then((s) => s.kill());
      throw e;
    });
    try {
      const token = (await readFile(join(dataDir, 'root-token'), 'utf8')).trim();
      const res = await get(server.url, '/v1/secrets/app/db', { Authorization: `Bearer ${token}` });
      assert.equal(res.status, 503);
      assert.equal(JSON.parse(res.body).error.code, 'audit_unavailable');
      const health = await get(server.url, '/v1/sys/health');
      assert.equal(health.status, 503);
      assert.equal(JSON.parse(health.body).audit, 'unavailable');
      const exited = new Promise<number | null>((done) => server.child.once('exit', (code) => done(code)));
      server.child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      await server.kill();
    }
  });
});

import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { loadConfig } from '../../server/config.js';
import { startServer } from '../../server/main.js';
import { silentLog, tempDir } from '../helpers.js';
import { startServerProcess, type ServerProcess } from './server-process.js';

/** One GET on a new connection from `localAddress`; resolves with the status and the time it took. */
function timedGet(
  url: string,
  path: string,
  token: string,
  localAddress: string,
): Promise<{ status: number | string; ms: number }> {
  const started = process.hrtime.bigint();
  return new Promise((done) => {
    const req = httpRequest(
      new URL(path, url),
      { agent: false, localAddress, headers: { Authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        res.on('end', () => done({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) =>
      done({ status: e.code ?? e.message, ms: Number(process.hrtime.bigint() - started) / 1e6 }),
    );
    req.end();
  });
}

/** `count` reads, `concurrency` at a time, each on its own connection (the accept path included). */
async function measure(
  url: string,
  token: string,
  count: number,
  concurrency = 4,
): Promise<{ p50: number; p99: number; failed: number }> {
  const times: number[] = [];
  let failed = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < count) {
        const r = await timedGet(url, '/v1/secrets/load/a', token, '127.0.0.2');
        if (r.status === 200) times.push(r.ms);
        else failed++;
      }
    }),
  );
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return { p50: at(0.5), p99: at(0.99), failed };
}

/** Opens `count` sockets from 127.0.0.1; half stay silent, half trickle a never-finished request head. */
async function attack(
  url: string,
  count: number,
): Promise<{ sockets: Socket[]; closedByServer: () => number; stop: () => void }> {
  const { hostname, port } = new URL(url);
  let closed = 0;
  const sockets: Socket[] = [];
  await Promise.all(
    Array.from(
      { length: count },
      (_, i) =>
        new Promise<void>((ready) => {
          const s = connect({ host: hostname, port: Number(port), localAddress: '127.0.0.1' }, () => {
            if (i % 2) s.write('GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n');
            ready();
          });
          s.on('error', () => ready());
          s.on('close', () => closed++);
          sockets.push(s);
        }),
    ),
  );
  const trickle = setInterval(() => {
    for (const [i, s] of sockets.entries()) if (i % 2 && !s.destroyed) s.write('X-Slow: 1\r\n');
  }, 1_000);
  return {
    sockets,
    closedByServer: () => closed,
    stop: () => (clearInterval(trickle), sockets.forEach((s) => s.destroy())),
  };
}

describe('slow and idle clients (J3, J6)', function () {
  this.timeout(120_000);
  let dir: string;
  let proc: ServerProcess | undefined;
  before(async () => {
    dir = await tempDir('coffer-slow-');
  });
  after(async () => {
    await proc?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it('500 idle or trickling sockets from one address do not raise another client’s read p99 above 2x; the cap closes the surplus at once', async () => {
    const dataDir = join(dir, 'data');
    proc = await startServerProcess(['--dev', '--data-dir', dataDir]); // the default cap: 256 per address
    const token = (await readFile(join(dataDir, 'root-token'), 'utf8')).trim();
    const put = await new Promise<number>((done) => {
      // agent: false: a kept-alive connection from 127.0.0.1 would hold one of the attacker's
      // 256 slots and free it whenever keepAliveTimeout ends, in the middle of the test.
      const req = httpRequest(
        new URL('/v1/secrets/load/a', proc!.url),
        {
          method: 'PUT',
          agent: false,
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        },
        (res) => done(res.resume() && res.statusCode!),
      );
      req.end(JSON.stringify({ data: { v: 'x' } }));
    });
    assert.equal(put, 200);
    await measure(proc.url, token, 200); // warm-up: JIT, keyring cache
    const before = await measure(proc.url, token, 1000);

    const siege = await attack(proc.url, 500);
    try {
      await new Promise((r) => setTimeout(r, 500));
      const refusedAtOnce = siege.closedByServer();
      const held = siege.sockets.filter((s) => !s.destroyed).length;
      // The attacker's own address is at its cap: a further connection from it is closed unanswered.
      // (Asked now: on a slow machine the measurement below can outlast headersTimeout, which then
      // closes the silent sockets and frees the attacker's slots, as it should.)
      const fromAttacker = await timedGet(proc.url, '/v1/sys/health', token, '127.0.0.1');
      const during = await measure(proc.url, token, 1000);
      process.stdout.write(
        `      normal client read (new connection each, 4 at a time, 1000 reads): p50 ${before.p50.toFixed(2)} ms, p99 ${before.p99.toFixed(2)} ms before; ` +
          `p50 ${during.p50.toFixed(2)} ms, p99 ${during.p99.toFixed(2)} ms during 500 idle/trickling sockets ` +
          `(${refusedAtOnce} closed at once by the cap, ${held} held)\n`,
      );
      assert.equal(before.failed + during.failed, 0);
      assert.ok(refusedAtOnce >= 500 - 256, `${refusedAtOnce} closed by the cap`);
      assert.ok(held <= 256, `${held} held`);
      assert.ok(held >= 250, `${held} held: the attacker fills its cap`);
      assert.notEqual(fromAttacker.status, 200);
      assert.ok(
        during.p99 <= 2 * before.p99,
        `p99 ${during.p99.toFixed(2)} ms during vs ${before.p99.toFixed(2)} ms before`,
      );
    } finally {
      siege.stop();
    }
    // Once the attacker lets go, its address is served again.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await timedGet(proc.url, '/v1/sys/health', token, '127.0.0.1')).status, 200);
  });

  it('max_connections_per_address: the cap counts per address, and trusted proxies are exempt', async () => {
    const server = await startServer(
      await loadConfig({
        env: {},
        flags: {
          dev: true,
          data_dir: join(dir, 'cap'),
          listen: '127.0.0.1:0',
          max_connections_per_address: 3,
          trusted_proxies: ['127.0.0.3'],
        },
      }),
      { log: silentLog },
    );
    const { port } = new URL(server.url);
    const open = (localAddress: string) =>
      new Promise<Socket>((done) => {
        const s = connect({ host: '127.0.0.1', port: Number(port), localAddress }, () => done(s));
        s.on('error', () => undefined);
      });
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 5; i++) sockets.push(await open('127.0.0.1'), await open('127.0.0.3'));
      await new Promise((r) => setTimeout(r, 200));
      const alive = (address: string) =>
        sockets.filter((s) => s.localAddress === address && !s.destroyed && s.readyState === 'open').length;
      assert.equal(alive('127.0.0.1'), 3, 'three from one address, the rest closed');
      assert.equal(alive('127.0.0.3'), 5, 'a trusted proxy carries many clients: not capped');
      assert.equal(
        (await timedGet(server.url, '/v1/sys/health', '', '127.0.0.2')).status,
        200,
        'another address is served',
      );
    } finally {
      sockets.forEach((s) => s.destroy());
      await server.close();
    }
  });

  it('max_connections_per_address on IPv6 loopback [::1]: IPv6 connections are capped per /64 (loopback only)', async function () {
    // Only ::1 is used (never a non-loopback address): ::1 is one /64, so this proves a real
    // IPv6 server keys and caps IPv6 peers; the /64 grouping itself is in connection-cap.test.ts.
    const probe = await new Promise<boolean>((done) => {
      const s = createNetServer()
        .once('error', () => done(false))
        .listen(0, '::1', () => s.close(() => done(true)));
    });
    if (!probe) {
      console.warn('      SKIPPED: IPv6 loopback ::1 is not available on this host');
      return this.skip();
    }
    const server = await startServer(
      await loadConfig({
        env: {},
        flags: { dev: true, data_dir: join(dir, 'cap6'), listen: '[::1]:0', max_connections_per_address: 3 },
      }),
      { log: silentLog },
    );
    const { port } = new URL(server.url);
    const open = () =>
      new Promise<Socket>((done) => {
        const s = connect({ host: '::1', port: Number(port), localAddress: '::1', family: 6 }, () => done(s));
        s.on('error', () => undefined);
      });
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 6; i++) sockets.push(await open());
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(
        sockets.filter((s) => !s.destroyed && s.readyState === 'open').length,
        3,
        'three from ::1 (its /64), the rest closed',
      );
      sockets.forEach((s) => s.destroy());
      await new Promise((r) => setTimeout(r, 200));
      const again = await open();
      sockets.push(again);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(!again.destroyed && again.readyState === 'open', true, 'closed connections free their slots');
    } finally {
      sockets.forEach((s) => s.destroy());
      await server.close();
    }
  });
});

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { drainable } from '../../../../server/drain.js';
import { acceptListVerb } from '../../../../server/http/vault/list-verb.js';
import { makePki } from '../../../tls-pki.js';
import { echo, exchange, listening, req, seen, status, stop } from './list-echo.js';

describe('LIST verb hand-over (server/http/vault/list-verb.ts)', () => {
  let server: Server;
  let port: number;

  beforeEach(async () => {
    server = createServer(echo);
    acceptListVerb(server);
    port = await listening(server);
  });
  afterEach(() => stop(server));

  const open = () => connect(port, '127.0.0.1');

  it('leaves a connection that never lists on node’s own parser, and hands over one that lists from its LIST on', async () => {
    const plain = await exchange(open(), [req('GET /a'), req('GET /b')], 2);
    assert.deepEqual(
      plain.map((r) => [seen(r).line, seen(r).tunnel]),
      [
        ['GET /a', false],
        ['GET /b', false],
      ],
    );
    const listing = await exchange(
      open(),
      [req('GET /a'), req('LIST /v1/secret/metadata/x'), req('GET /c'), req('LIST /d?x=1')],
      4,
    );
    assert.deepEqual(
      listing.map((r) => [status(r), seen(r).line, seen(r).tunnel, seen(r).peer]),
      [
        [200, 'GET /a', false, '127.0.0.1'],
        [200, 'GET /v1/secret/metadata/x?list=true', true, '127.0.0.1'],
        [200, 'GET /c', true, '127.0.0.1'],
        [200, 'GET /d?x=1&list=true', true, '127.0.0.1'],
      ],
    );
  });

  it('keeps answers in order when a LIST is pipelined behind a slow request', async () => {
    const answers = await exchange(open(), [req('GET /slow') + req('LIST /l') + req('GET /after')], 3);
    assert.deepEqual(
      answers.map((r) => seen(r).line),
      ['GET /slow', 'GET /l?list=true', 'GET /after'],
    );
  });

  it('never rewrites a body, even one that starts with LIST', async () => {
    const body = 'LIST /not-a-request HTTP/1.1\r\n\r\n';
    const answers = await exchange(open(), [req('LIST /l'), req('POST /p', [], body), req('GET /q')], 3);
    assert.deepEqual(
      answers.map((r) => [seen(r).line, seen(r).body]),
      [
        ['GET /l?list=true', ''],
        ['POST /p', body],
        ['GET /q', ''],
      ],
    );
  });

  it('follows a LIST whose request line arrives in pieces once its LI is in the same read', async () => {
    const answers = await exchange(open(), ['LIS', 'T /split HTTP/1.1\r\nHo', 'st: x\r\n\r\n'], 1);
    assert.equal(seen(answers[0]!).line, 'GET /split?list=true');
  });

  it('refuses a LIST whose first letters came in an earlier read, and unknown verbs, as node does (400, closed)', async () => {
    for (const pieces of [
      ['L', 'IST /l HTTP/1.1\r\nHost: x\r\n\r\n'],
      [req('FOO /x')],
      [req('UNLIST /x')],
      [req('GET /a') + req('LOST /x')],
    ]) {
      const answers = await exchange(open(), pieces, 9);
      const last = answers.at(-1)!;
      assert.match(last, /^HTTP\/1\.1 400 Bad Request\r\nConnection: close\r\n\r\n$/, JSON.stringify(pieces));
    }
  });

  it('answers other parser errors as node does: 431 for an oversized head', async () => {
    const answers = await exchange(open(), [req('GET /big', [`X-Big: ${'a'.repeat(20_000)}`])], 1);
    assert.match(answers[0]!, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  });

  it("answers other parser errors as node does: 413 for chunk extensions past node's limit, after a LIST too", async () => {
    const overflow = `POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;${'e'.repeat(20_000)}\r\na\r\n0\r\n\r\n`;
    for (const before of ['', 'LIST /l HTTP/1.1\r\nHost: x\r\n\r\n']) {
      const answers = await exchange(open(), [before + overflow], before ? 2 : 1);
      assert.match(answers.at(-1)!, /^HTTP\/1\.1 413 Payload Too Large\r\nConnection: close\r\n\r\n$/, before);
    }
  });

  it('a handed-over connection closes with the server and when the client leaves', async () => {
    const socket = open();
    await exchange(socket, [req('LIST /l')], 1);
    const closed = new Promise((r) => socket.once('close', r));
    server.closeAllConnections();
    await closed;
    const gone = open();
    await exchange(gone, [req('LIST /l')], 1);
    gone.destroy();
    await new Promise<void>((r) => server.close(() => r())); // no connection left behind
    server = createServer(echo); // for afterEach
    await listening(server);
  });

  it('answers a LIST head the rewriter does not follow once, as node answers it, and keeps serving everyone', async () => {
    for (const [head, answer] of [
      ['LIST /x HTTP/1.2\r\nHost: x\r\n\r\n', '400 Bad Request'],
      ['LIST  /x HTTP/1.1\r\nHost: x\r\n\r\n', '400 Bad Request'],
      ['LIST /x HTTP/1.1\nHost: x\n\n', '400 Bad Request'],
      [`LIST /${'a'.repeat(17_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, '431 Request Header Fields Too Large'],
      // No version: node reads the rewritten line as it reads `GET /x` alone (answered, then closed).
      ['LIST /x\r\nHost: x\r\n\r\n', '200 OK'],
    ] as const) {
      const answers = await exchange(open(), [head], 9);
      assert.deepEqual(
        answers.map((a) => a.split('\r\n')[0]),
        [`HTTP/1.1 ${answer}`],
        JSON.stringify(head.slice(0, 24)),
      );
      // The event loop is free: another connection is answered at once.
      const [ok] = await exchange(open(), [req('GET /alive')], 1);
      assert.equal(seen(ok!).line, 'GET /alive');
    }
  });

  it('a LIST with a fragment lists the target (the parameter goes before the fragment)', async () => {
    const [answer] = await exchange(open(), [req('LIST /f?a=1#frag')], 1);
    assert.equal(seen(answer!).line, 'GET /f?a=1&list=true#frag');
  });

  it('a handed-over connection still has node’s headers timeout: a head sent a byte at a time is cut', async function () {
    this.timeout(10_000);
    await stop(server);
    server = createServer({ headersTimeout: 600, requestTimeout: 1000, connectionsCheckingInterval: 100 }, echo);
    acceptListVerb(server);
    port = await listening(server);
    const socket = open();
    await exchange(socket, [req('LIST /l')], 1);
    const started = Date.now();
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.write('GET /slow-head HTTP/1.1\r\n');
    const trickle = setInterval(() => socket.writable && socket.write('X-A: b\r\n'), 200);
    await closed;
    clearInterval(trickle);
    assert.ok(Date.now() - started < 4000, `cut after ${Date.now() - started} ms`);
    assert.match(got, /408 Request Timeout/);
  });

  it('a drain lets a request on a handed-over connection finish (a native request came first)', async () => {
    const drain = drainable(server);
    const socket = open();
    await exchange(socket, [req('GET /a'), req('LIST /l')], 2);
    const slow = exchange(socket, [req('GET /slower')], 1, 0);
    await new Promise((r) => setTimeout(r, 30));
    const drained = drain.drain(5000);
    const [answer] = await slow;
    socket.destroy();
    assert.equal(status(answer!), 200);
    assert.equal(seen(answer!).line, 'GET /slower');
    await drained;
    server = createServer(echo); // closed by the drain; a fresh one for afterEach
    await listening(server);
  });

  it('refuses to install on a server without node’s HTTP session listener', () => {
    const bare = createServer();
    bare.removeAllListeners('connection');
    assert.throws(() => acceptListVerb(bare), /no HTTP 'connection' listener/);
  });
});

describe('LIST verb hand-over over TLS', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-list-tls-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('hands over a TLS connection: the LIST is answered, the request still sees a secure peer', async () => {
    const pki = await makePki(dir);
    const server = createHttpsServer(
      { cert: await readFile(pki.server.cert), key: await readFile(pki.server.key) },
      echo,
    );
    acceptListVerb(server, 'secureConnection');
    const port = await listening(server);
    try {
      const socket = tlsConnect({ port, host: '127.0.0.1', ca: await readFile(pki.caFile) });
      await new Promise((r) => socket.once('secureConnect', r));
      const answers = await exchange(socket as unknown as Socket, [req('GET /a'), req('LIST /l'), req('GET /b')], 3);
      assert.deepEqual(
        answers.map((r) => [seen(r).line, seen(r).tunnel, seen(r).secure]),
        [
          ['GET /a', false, true],
          ['GET /l?list=true', true, true],
          ['GET /b', true, true],
        ],
      );
      socket.destroy();
    } finally {
      await stop(server);
    }
  });
});

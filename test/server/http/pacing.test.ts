import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { createServer, request, Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { paced, DEFAULT_PER_TURN } from '../../../server/http/pacing.js';

/**
 * Request pacing (server/http/pacing.ts): at most `perTurn` requests start per event-loop turn,
 * the rest in arrival order at the next turns, none dropped, and I/O completions are delivered
 * between. The scheduling is driven directly (a burst is what one poll phase hands the
 * listener, which a test cannot arrange reliably over sockets); a real server checks that
 * every request of a concurrent burst is answered through it.
 */

const turn = () => new Promise<void>((r) => setImmediate(r));
/** What the wrapper reads of a request: the fields that say whether its connection is gone. */
const fakeRequest = (n: number, gone = false) =>
  [
    { n, destroyed: gone, socket: { destroyed: false } } as unknown as IncomingMessage,
    { destroyed: false } as ServerResponse,
  ] as const;
/** The number a fake request was made with. */
const numberOf = (req: IncomingMessage) => (req as unknown as { n: number }).n;
const numbers = (started: IncomingMessage[]) => started.map(numberOf);

describe('request pacing', () => {
  it('starts a burst perTurn at a time, in arrival order, and drops none', async () => {
    const started: number[] = [];
    const listener = paced((req) => started.push(numberOf(req)), 4);
    for (let n = 0; n < 10; n++) listener(...fakeRequest(n));
    assert.deepEqual(started, [0, 1, 2, 3], 'the first four start at once');
    await turn();
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7]);
    await turn();
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('keeps arrival order when requests arrive while others wait', async () => {
    const started: number[] = [];
    const listener = paced((req) => started.push(numberOf(req)), 2);
    for (let n = 0; n < 5; n++) listener(...fakeRequest(n));
    await turn();
    listener(...fakeRequest(5)); // arrives while 4 waits: behind it, not ahead
    await turn();
    await turn();
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5]);
  });

  it('starts requests at once when few arrive, turn after turn', async () => {
    const started: number[] = [];
    const listener = paced((req) => started.push(numberOf(req)), 3);
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3; i++) listener(...fakeRequest(round * 3 + i));
      assert.equal(started.length, round * 3 + 3, `round ${round}: nothing waited`);
      await turn();
    }
    // After a burst has drained, the next turn again starts its first three at once.
    for (let n = 9; n < 15; n++) listener(...fakeRequest(n));
    assert.equal(started.length, 12);
    await turn();
    await turn();
    assert.equal(started.length, 15);
  });

  it('lets an I/O completion in before the whole burst has started', async () => {
    let startedWhenDone = -1;
    let started = 0;
    const listener = paced(() => started++, DEFAULT_PER_TURN);
    const io = stat(import.meta.filename).then(() => (startedWhenDone = started));
    for (let n = 0; n < 400; n++) listener(...fakeRequest(n));
    await io;
    assert.ok(startedWhenDone >= DEFAULT_PER_TURN, 'the first requests started before it');
    assert.ok(startedWhenDone < 400, `the completion waited for all ${startedWhenDone} requests`);
    while (started < 400) await turn();
  });

  it('gives way past 32 turns of waiting requests: all of them start, in order', async () => {
    const started: IncomingMessage[] = [];
    const listener = paced((req) => started.push(req), 2);
    for (let n = 0; n < 100; n++) listener(...fakeRequest(n));
    // 2 at once, 64 wait; the 67th arrival is one too many: all 65 waiting start, it with them.
    assert.equal(started.length, 67);
    while (started.length < 100) await turn();
    assert.deepEqual(
      numbers(started),
      Array.from({ length: 100 }, (_, n) => n),
    );
  });

  it('does not start a request whose connection closed while it waited', async () => {
    const started: IncomingMessage[] = [];
    const listener = paced((req) => started.push(req), 2);
    [0, 1].forEach((n) => listener(...fakeRequest(n)));
    listener(...fakeRequest(2, true));
    listener(...fakeRequest(3, true));
    [4, 5, 6].forEach((n) => listener(...fakeRequest(n)));
    await turn();
    assert.deepEqual(numbers(started), [0, 1, 4, 5], 'the closed ones are skipped and do not count');
    await turn();
    assert.deepEqual(numbers(started), [0, 1, 4, 5, 6]);
  });

  it('queues a request handed over while waiting ones start behind them', async () => {
    const started: number[] = [];
    let listener: ReturnType<typeof paced> = () => undefined;
    listener = paced((req) => {
      const n = numberOf(req);
      started.push(n);
      if (n === 4) listener(...fakeRequest(99));
    }, 2);
    for (let n = 0; n < 8; n++) listener(...fakeRequest(n));
    for (let i = 0; i < 5; i++) await turn();
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 99]);
  });

  it('still starts the others when a listener throws while waiting ones start', async () => {
    const started: number[] = [];
    const listener = paced((req) => {
      const n = numberOf(req);
      started.push(n);
      if (n === 3) throw new Error('listener failed');
    }, 2);
    // The throw leaves the immediate, as a throwing listener leaves node's socket callback.
    const mochaHandlers = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    const thrown = new Promise<Error>((r) => process.once('uncaughtException', r));
    try {
      for (let n = 0; n < 7; n++) listener(...fakeRequest(n));
      assert.equal((await thrown).message, 'listener failed');
    } finally {
      for (const h of mochaHandlers) process.on('uncaughtException', h);
    }
    for (let i = 0; i < 3; i++) await turn();
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6], 'each started once, the rest after the throw');
  });

  it('does not start pipelined requests of a connection closed before their turn', async () => {
    const urls: string[] = [];
    const server = createServer(
      paced((req, res) => {
        urls.push(req.url!);
        req.socket.destroy(); // the client is gone before the requests behind it start
        res.end();
      }, 1),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const socket = connect(port, '127.0.0.1');
      const closed = new Promise((r) => socket.on('close', r).on('error', () => undefined));
      socket.write(['/a', '/b', '/c'].map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
      await closed;
      for (let i = 0; i < 5; i++) await turn();
      assert.deepEqual(urls, ['/a']);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('refuses a per-turn count that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => paced(() => undefined, bad), RangeError);
  });

  it('answers every request of a concurrent burst on a real server', async () => {
    const server = createServer(
      paced((req, res) => {
        const body = JSON.stringify({ url: req.url });
        setImmediate(() => res.end(body));
      }, 3),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const agent = new Agent({ keepAlive: true, maxSockets: 40 });
    try {
      const get = (i: number) =>
        new Promise<string>((resolve, reject) => {
          request({ host: '127.0.0.1', port, path: `/r/${i}`, agent }, (res) => {
            let text = '';
            res.setEncoding('utf8').on('data', (d: string) => (text += d));
            res.on('end', () => resolve(text));
          })
            .on('error', reject)
            .end();
        });
      for (let round = 0; round < 3; round++) {
        const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => get(i)));
        answers.forEach((a, i) => assert.deepEqual(JSON.parse(a), { url: `/r/${i}` }));
      }
    } finally {
      agent.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});

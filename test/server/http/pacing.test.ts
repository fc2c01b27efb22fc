import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { createServer, request, Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { paced, DEFAULT_PER_TURN } from '../../../server/http/pacing.js';

/**
 * Request pacing (server/http/pacing.ts): at most `perTurn` requests start per event-loop turn,
 * the rest in arrival order at the next turns, none dropped, and I/O completions are delivered
 * between. The scheduling is driven directly (a burst is what one poll phase hands the
 * listener, which a test cannot arrange reliably over sockets); a real server checks that
 * every request of a concurrent burst is answered through it.
 */

const turn = () => new Promise<void>((r) => setImmediate(r));
const fakeRequest = (n: number) => [{ n } as unknown as IncomingMessage, {} as ServerResponse] as const;

describe('request pacing', () => {
  it('starts a burst perTurn at a time, in arrival order, and drops none', async () => {
    const started: number[] = [];
    const listener = paced((req) => started.push((req as unknown as { n: number }).n), 4);
    for (let n = 0; n < 10; n++) listener(...fakeRequest(n));
    assert.deepEqual(started, [0, 1, 2, 3], 'the first four start at once');
    await turn();
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7]);
    await turn();
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('keeps arrival order when requests arrive while others wait', async () => {
    const started: number[] = [];
    const listener = paced((req) => started.push((req as unknown as { n: number }).n), 2);
    for (let n = 0; n < 5; n++) listener(...fakeRequest(n));
    await turn();
    listener(...fakeRequest(5)); // arrives while 4 waits: behind it, not ahead
    await turn();
    await turn();
    assert.deepEqual(started, [0, 1, 2, 3, 4, 5]);
  });

  it('starts requests at once when few arrive, turn after turn', async () => {
    const started: number[] = [];
    const listener = paced((req) => started.push((req as unknown as { n: number }).n), 3);
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

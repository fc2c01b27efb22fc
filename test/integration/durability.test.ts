import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { startServerProcess } from './server-process.js';

const ROUNDS = process.env.COFFER_LONG ? 100 : 20;
const WRITERS = 8;

interface Ack {
  path: string;
  version: number;
  value: string;
}

// Each path takes a few hundred versions over the rounds (more since group commit): past the default
// 100 the oldest are destroyed by design, which this test must not mistake for a lost write.
const RETAIN_ALL = { COFFER_SERVER_MAX_VERSIONS: '10000' };

describe('durability: acknowledged writes survive kill -9', function () {
  this.timeout(ROUNDS * 15_000);
  let dir: string;
  before(async () => {
    dir = await tempDir('coffer-kill9-');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it(`keeps every acknowledged version across ${ROUNDS} kill -9 rounds`, async () => {
    const acked: Ack[] = [];
    let token = '';
    for (let round = 0; round < ROUNDS; round++) {
      const server = await startServerProcess(['--dev', '--data-dir', dir, '--log-level', 'info'], RETAIN_ALL);
      token ||= (await readFile(join(dir, 'root-token'), 'utf8')).trim();
      const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };

      // Everything acknowledged before this restart must read back intact.
      for (const ack of acked.slice(-200)) {
        const res = await fetch(`${server.url}/v1/secrets/${ack.path}?version=${ack.version}`, { headers });
        assert.equal(res.status, 200, `round ${round}: ${ack.path} v${ack.version} lost`);
        const body = (await res.json()) as { data: { value: string } };
        assert.equal(body.data.value, ack.value, `round ${round}: ${ack.path} v${ack.version} changed`);
      }

      let stop = false;
      const writers = Array.from({ length: WRITERS }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const path = `durable/r${round % 3}/w${w}`;
          const value = `round-${round}-writer-${w}-write-${i}`;
          try {
            const res = await fetch(`${server.url}/v1/secrets/${path}`, {
              method: 'PUT',
              headers,
              body: JSON.stringify({ data: { value } }),
            });
            if (res.status !== 200) continue;
            const body = (await res.json()) as { version: number };
            acked.push({ path, version: body.version, value });
          } catch {
            return; // the server died mid-request: that write was never acknowledged
          }
        }
      });
      await new Promise((r) => setTimeout(r, 40 + Math.floor(Math.random() * 260)));
      await server.kill('SIGKILL');
      stop = true;
      await Promise.all(writers);
    }

    // Final full check of every acknowledged write.
    const server = await startServerProcess(['--dev', '--data-dir', dir], RETAIN_ALL);
    try {
      const headers = { Authorization: `Bearer ${token}` };
      for (const ack of acked) {
        const res = await fetch(`${server.url}/v1/secrets/${ack.path}?version=${ack.version}`, { headers });
        assert.equal(res.status, 200, `${ack.path} v${ack.version} lost`);
        assert.equal(((await res.json()) as { data: { value: string } }).data.value, ack.value);
      }
      assert.ok(
        acked.length > ROUNDS * 5,
        `too few writes were acknowledged (${acked.length}) for the test to mean anything`,
      );
    } finally {
      await server.kill('SIGTERM');
    }
  });
});

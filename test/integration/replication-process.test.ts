import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { removeDir, until } from '../server/replication/cluster.js';
import { call } from './load-helpers.js';
import { CLI, startProcessPair, type ServerProcess } from './server-process.js';

const FAST_ENV = {
  COFFER_SERVER_REPLICATION_BATCH_MS: '20',
  COFFER_SERVER_REPLICATION_LEASE_S: '3',
  COFFER_SERVER_REPLICATION_CLOCK_SKEW_MS: '200',
  COFFER_SERVER_POLL_INTERVAL: '0.1',
};

describe('replication with real server processes', function () {
  this.timeout(120_000);
  const procs: ServerProcess[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const p of procs) await p.kill('SIGKILL');
    for (const d of dirs) await removeDir(d);
  });

  it('a primary killed with SIGKILL mid-upload resumes its stream; the replica gets every acknowledged write; coffer replica status|promote', async () => {
    const pair = await startProcessPair(FAST_ENV, procs, dirs);
    const { token, replica } = pair;
    let primary = pair.primary;

    const acknowledged = new Map<string, string>();
    let stop = false;
    let i = 0;
    const writer = async () => {
      while (!stop) {
        const n = i++;
        const path = `kill/item-${n}`;
        try {
          const r = await call(primary.url, 'PUT', `/v1/secrets/${path}`, token, { data: { v: `value-${n}` } });
          if (r.status === 200) acknowledged.set(path, `value-${n}`);
        } catch {
          return; // the server is gone
        }
      }
    };
    const writers = Array.from({ length: 8 }, writer);
    await until(() => acknowledged.size >= 150, 30_000, '150 acknowledged writes');
    await primary.kill('SIGKILL');
    stop = true;
    await Promise.all(writers);

    primary = await pair.restartPrimary();
    // A kill during a manifest write leaves the file bucket's lock behind: the restarted primary
    // takes its lease (and writes) once that lock is stale (10 s), not necessarily at once.
    await until(
      async () =>
        (await call(primary.url, 'PUT', '/v1/secrets/kill/after-0', token, { data: { v: 'after-0' } })).status === 200,
      30_000,
      'the restarted primary takes writes',
    );
    for (let n = 0; n < 20; n++) {
      const r = await call(primary.url, 'PUT', `/v1/secrets/kill/after-${n}`, token, { data: { v: `after-${n}` } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      acknowledged.set(`kill/after-${n}`, `after-${n}`);
    }
    const entries = [...acknowledged];
    await until(
      async () => (await call(replica.url, 'GET', '/v1/secrets/kill/after-19', token)).status === 200,
      30_000,
      'replica catches up',
    );
    for (let k = 0; k < entries.length; k += 100) {
      const chunk = entries.slice(k, k + 100);
      const r = await call(replica.url, 'POST', '/v1/secrets:batch', token, { paths: chunk.map(([p]) => p) });
      for (const [p, v] of chunk) assert.equal(r.body.secrets[p]?.data.v, v, `${p} on the replica`);
    }

    const exec = promisify(execFile);
    const env = { ...process.env, COFFER_ADDR: replica.url, COFFER_TOKEN: token };
    const status = JSON.parse((await exec(process.execPath, [CLI, 'replica', 'status', '--json'], { env })).stdout);
    assert.equal(status.role, 'replica');
    assert.equal(status.primary, primary.url);
    const human = (await exec(process.execPath, [CLI, 'replica', 'status'], { env })).stdout;
    assert.match(human, /role\s+replica/);
    await primary.kill('SIGKILL'); // the zone is lost
    const promoted = JSON.parse((await exec(process.execPath, [CLI, 'replica', 'promote', '--json'], { env })).stdout);
    assert.equal(promoted.epoch, 2);
    const w = await call(replica.url, 'PUT', '/v1/secrets/kill/on-new-primary', token, { data: { v: 'x' } });
    assert.equal(w.status, 200, JSON.stringify(w.body));
    assert.ok(!replica.output().includes('value-1'), 'no secret value in the replica log');
  });
});

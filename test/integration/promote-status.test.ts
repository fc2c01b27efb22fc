import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { tempDir } from '../helpers.js';
import { removeDir, until } from '../server/replication/cluster.js';
import { call } from './load-helpers.js';
import { CLI, startProcessPair, startServerProcess, type ServerProcess } from './server-process.js';

// A lease longer than the CLI's ordinary 10 s request timeout: the promotion must outlast it.
const LEASE_S = 13;
const ENV = {
  COFFER_SERVER_REPLICATION_BATCH_MS: '20',
  COFFER_SERVER_REPLICATION_LEASE_S: String(LEASE_S),
  COFFER_SERVER_REPLICATION_CLOCK_SKEW_MS: '200',
  COFFER_SERVER_POLL_INTERVAL: '0.1',
};

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function coffer(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  const started = Date.now();
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, COFFER_TOKEN: '', ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        done({ code, stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

describe('coffer replica promote and coffer status (real server processes)', function () {
  this.timeout(120_000);
  const procs: ServerProcess[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const p of procs) await p.kill('SIGKILL');
    for (const d of dirs) await removeDir(d);
  });

  it("promote waits out the old primary's lease with a progress line; the old primary shows as fenced; status exits 2 when sealed", async () => {
    const pair = await startProcessPair(ENV, procs, dirs);
    const { token, replica } = pair;
    let primary = pair.primary;
    assert.equal(
      (await call(primary.url, 'PUT', '/v1/secrets/app/db', token, { data: { password: 'before-failover' } })).status,
      200,
    );
    await until(
      async () => (await call(replica.url, 'GET', '/v1/secrets/app/db', token)).status === 200,
      30_000,
      'the replica has the write',
    );

    const onReplica = { COFFER_ADDR: replica.url, COFFER_TOKEN: token };
    const before = await coffer(['status'], onReplica);
    assert.equal(before.code, 0, before.stderr);
    assert.match(before.stdout, /role\s+replica/);

    await primary.kill('SIGKILL'); // the zone is lost; its lease still runs for up to LEASE_S
    const promoted = await coffer(['replica', 'promote'], onReplica);
    assert.equal(promoted.code, 0, `${promoted.stdout}\n${promoted.stderr}`);
    assert.match(promoted.stdout, /^promoted: primary of epoch 2, accepting writes since \d{4}-/);
    // Not a TTY here: one line per phase, no countdown spam.
    assert.match(
      promoted.stderr,
      /promoted to epoch 2; waiting for the old primary's lease to run out: writes accepted in \d+s/,
    );
    assert.ok(
      promoted.stderr.split('\n').filter((l) => l.includes('waiting for the old primary')).length === 1,
      promoted.stderr,
    );
    assert.ok(promoted.ms > 10_000, `the promotion outlived the ordinary 10 s timeout (${promoted.ms} ms)`);
    // Once the command returned, writes are accepted: it waited for the lease, not less.
    const write = await call(replica.url, 'PUT', '/v1/secrets/app/db', token, { data: { password: 'after-failover' } });
    assert.equal(write.status, 200, JSON.stringify(write.body));

    // The old primary comes back: it finds epoch 2 in the bucket and is fenced.
    primary = await pair.restartPrimary();
    await until(
      async () =>
        ((await fetch(`${primary.url}/v1/sys/health`).then((r) => r.json())) as { fenced?: boolean }).fenced === true,
      30_000,
      'the old primary is fenced',
    );
    const health = await fetch(`${primary.url}/v1/sys/health`);
    assert.equal(health.status, 503, 'a fenced primary is no node to send traffic to');
    const fenced = await coffer(['status'], { COFFER_ADDR: primary.url });
    assert.equal(fenced.code, 0, fenced.stderr);
    assert.match(fenced.stdout, /role\s+primary, FENCED/);
    const fencedJson = JSON.parse((await coffer(['status', '--json'], { COFFER_ADDR: primary.url })).stdout);
    assert.equal(fencedJson.fenced, true);

    // Sealed: exit 2 and the command that moves it on, in text and in --json.
    assert.equal((await coffer(['seal'], onReplica)).code, 0);
    const sealed = await coffer(['status'], onReplica);
    assert.equal(sealed.code, 2, sealed.stderr);
    assert.match(sealed.stdout, /sealed\s+true\s+\(unseal progress 0\/\d+: run coffer unseal\)/);
    const sealedJson = await coffer(['status', '--json'], onReplica);
    assert.equal(sealedJson.code, 2);
    assert.equal(JSON.parse(sealedJson.stdout).sealed, true);
  });

  it('status on a server that was never initialized exits 2 and says to run coffer init; an unreachable one exits 5', async () => {
    const dir = await tempDir('coffer-uninit-');
    dirs.push(dir);
    const server = await startServerProcess(['--data-dir', dir]);
    procs.push(server);
    const fresh = await coffer(['status'], { COFFER_ADDR: server.url });
    assert.equal(fresh.code, 2, fresh.stderr);
    assert.match(fresh.stdout, /initialized\s+false/);
    assert.match(fresh.stdout, /not initialized: run coffer init/);
    await server.kill('SIGKILL');
    const gone = await coffer(['status'], { COFFER_ADDR: server.url });
    assert.equal(gone.code, 5);
    assert.match(gone.stderr, /Is the server running\?/);
  });
});

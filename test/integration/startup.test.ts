import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { CLI, startServerProcess } from './server-process.js';

/** Runs `coffer …` to completion and returns its exit code and output. */
function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => done({ code, output }));
  });
}

describe('server start-up', function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir('coffer-startup-');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('exits non-zero with a clear message when the key file is missing', async () => {
    const { code, output } = await runCli([
      'server',
      '--data-dir',
      dir,
      '--listen',
      '127.0.0.1:0',
      '--kek',
      `file:${join(dir, 'absent.key')}`,
      '--dev',
    ]);
    assert.equal(code, 1);
    assert.match(output, /key file .*absent\.key cannot be read/);
    assert.doesNotMatch(output, /at .*\.js:\d+/, 'no stack trace');
  });

  it('refuses a key file that other users can read', async () => {
    const keyFile = join(dir, 'kek.key');
    await writeFile(keyFile, Buffer.alloc(32, 7));
    await chmod(keyFile, 0o644);
    const { code, output } = await runCli([
      'server',
      '--data-dir',
      dir,
      '--listen',
      '127.0.0.1:0',
      '--kek',
      `file:${keyFile}`,
      '--dev',
    ]);
    assert.equal(code, 1);
    assert.match(output, /chmod 600/);
  });

  it('refuses a key file that does not hold a 256-bit key', async () => {
    const keyFile = join(dir, 'kek.key');
    await writeFile(keyFile, 'too short\n', { mode: 0o600 });
    const { code, output } = await runCli([
      'server',
      '--data-dir',
      dir,
      '--listen',
      '127.0.0.1:0',
      '--kek',
      `file:${keyFile}`,
      '--dev',
    ]);
    assert.equal(code, 1);
    assert.match(output, /does not hold a 256-bit key/);
  });

  it('refuses to open a data directory another server holds', async () => {
    const first = await startServerProcess(['--dev', '--data-dir', dir]);
    try {
      const { code, output } = await runCli(['server', '--dev', '--data-dir', dir, '--listen', '127.0.0.1:0']);
      assert.equal(code, 1);
      assert.match(output, /in use by another Coffer process/);
    } finally {
      await first.kill('SIGTERM');
    }
  });

  it('refuses to start a shamir vault with a key file', async () => {
    const sealed = await startServerProcess(['--data-dir', dir]);
    const init = await fetch(`${sealed.url}/v1/sys/init`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ shares: 1, threshold: 1 }),
    });
    assert.equal(init.status, 200);
    await sealed.kill('SIGTERM');
    const { code, output } = await runCli(['server', '--dev', '--data-dir', dir, '--listen', '127.0.0.1:0']);
    assert.equal(code, 1);
    assert.match(output, /initialized with --kek shamir/);
  });

  it('answers an unknown flag with usage and exit code 2', async () => {
    const { code, output } = await runCli(['server', '--no-such-flag']);
    assert.equal(code, 2);
    assert.match(output, /Unknown argument/);
  });

  it('starts sealed without --dev and reports it in health', async () => {
    const server = await startServerProcess(['--data-dir', dir]);
    try {
      const health = await fetch(`${server.url}/v1/sys/health`);
      assert.equal(health.status, 501);
      const { initialized, sealed, role, version } = (await health.json()) as Record<string, unknown>;
      // Beside Vault's fields (docs/vault-compatibility.md), which the Vault tests check.
      assert.deepEqual(
        { initialized, sealed, role, version },
        { initialized: false, sealed: true, role: 'primary', version: '0.1.0' },
      );
    } finally {
      await server.kill('SIGTERM');
    }
  });

  it('reuses its data and key on a second dev start', async () => {
    let server = await startServerProcess(['--dev', '--data-dir', dir]);
    const token = (await readFile(join(dir, 'root-token'), 'utf8')).trim();
    assert.equal(((await stat(join(dir, 'root-token'))).mode & 0o777).toString(8), '600');
    assert.equal(((await stat(join(dir, 'kek.key'))).mode & 0o777).toString(8), '600');
    const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    assert.equal(
      (await fetch(`${server.url}/v1/secrets/app/x`, { method: 'PUT', headers: auth, body: '{"data":{"k":"v"}}' }))
        .status,
      200,
    );
    await server.kill('SIGTERM');
    assert.ok(server.output().includes(token), 'the first start prints the root token');
    server = await startServerProcess(['--dev', '--data-dir', dir]);
    try {
      const res = await fetch(`${server.url}/v1/secrets/app/x`, { headers: auth });
      assert.equal(res.status, 200);
    } finally {
      await server.kill('SIGTERM');
    }
    assert.ok(!server.output().includes(token), 'the token is printed only once');
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../server/config.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { Coffer } from '../../sdk/index.js';
import { silentLog, tempDir } from '../helpers.js';
import { CLI } from '../integration/server-process.js';

/**
 * `coffer token create|renew` against a real server (issue 10 items 2 and 3): renew extends the
 * same token (nothing to store), create passes --ttl/--max-ttl/--orphan and shows the server's
 * refusal of a grant beyond the minter's own.
 */
describe('coffer token create and renew against a real server', function () {
  this.timeout(30_000);
  let dir: string;
  let server: RunningServer;
  let env: NodeJS.ProcessEnv;

  const run = (args: string[], extra: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((done) => {
      const child = spawn(process.execPath, [CLI, ...args], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('exit', (code) => done({ code, stdout, stderr }));
    });

  before(async () => {
    dir = await tempDir('coffer-cli-token-');
    server = await startServer(await loadConfig({ flags: { dev: true, data_dir: join(dir, 'vault'), listen: '127.0.0.1:0' } }), { log: silentLog });
    env = { PATH: process.env.PATH, HOME: join(dir, 'home'), COFFER_ADDR: server.url, COFFER_TOKEN: server.rootToken };
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('token renew extends the token in use and writes no token file; the same token keeps working', async () => {
    const made = await run(['token', 'create', '--identity', 'svc:cli', '--ttl', '1m', '--max-ttl', '10m', '--json']);
    assert.equal(made.code, 0, made.stderr);
    const { token, expires_at } = JSON.parse(made.stdout) as { token: string; expires_at: string };
    await new Promise((r) => setTimeout(r, 1_100));
    const renewed = await run(['token', 'renew', '--json'], { COFFER_TOKEN: token });
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.ok(Date.parse(JSON.parse(renewed.stdout).expires_at) > Date.parse(expires_at), 'extended');
    await assert.rejects(readFile(join(dir, 'home', '.config', 'coffer', 'token')), 'no token file was written');
    const self = await new Coffer({ addr: server.url, token }).tokenSelf();
    assert.equal(self.expires_at, JSON.parse(renewed.stdout).expires_at, 'the original token carries the renewal');
  });

  it('token create refuses (exit 3) a policy the minter does not hold, and --orphan without the capability', async () => {
    const admin = new Coffer({ addr: server.url, token: server.rootToken });
    await admin.admin('policy').put('token-maker', { rules: [{ path: 'sys/auth/token/create', capabilities: ['admin'] }] });
    const minter = (await admin.createToken({ identity: 'svc:minter', policies: ['token-maker'] })).token;
    const wide = await run(['token', 'create', '--identity', 'svc:wide', '--policies', 'everything'], { COFFER_TOKEN: minter });
    assert.equal(wide.code, 3, wide.stderr); // forbidden: the auth exit code
    assert.match(wide.stderr, /everything/);
    assert.equal(wide.stdout, '');
    const orphan = await run(['token', 'create', '--identity', 'svc:orphan', '--orphan'], { COFFER_TOKEN: minter });
    assert.notEqual(orphan.code, 0);
    assert.match(orphan.stderr, /create-orphan/);
    const child = await run(['token', 'create', '--identity', 'svc:child', '--json'], { COFFER_TOKEN: minter });
    assert.equal(child.code, 0, child.stderr);
  });
});

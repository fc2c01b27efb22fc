import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Coffer } from '../../sdk/index.js';
import { cliFixture, type CliFixture } from './cli-fixture.js';

/**
 * `coffer token create|renew` against a real server (issue 10 items 2 and 3): renew extends the
 * same token (nothing to store), create passes --ttl/--max-ttl/--orphan and shows the server's
 * refusal of a grant beyond the minter's own.
 */
describe('coffer token create and renew against a real server', function () {
  this.timeout(30_000);
  let cli: CliFixture;
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => cli.run(args, { env: extra });

  before(async () => {
    cli = await cliFixture('coffer-cli-token-');
  });
  after(() => cli.close());

  it('token renew extends the token in use and writes no token file; the same token keeps working', async () => {
    const made = await run(['token', 'create', '--identity', 'svc:cli', '--ttl', '1m', '--max-ttl', '10m', '--json']);
    assert.equal(made.code, 0, made.stderr);
    const { token, expires_at } = JSON.parse(made.stdout) as { token: string; expires_at: string };
    await new Promise((r) => setTimeout(r, 1_100));
    const renewed = await run(['token', 'renew', '--json'], { COFFER_TOKEN: token });
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.ok(Date.parse(JSON.parse(renewed.stdout).expires_at) > Date.parse(expires_at), 'extended');
    await assert.rejects(readFile(join(cli.dir, 'home', '.config', 'coffer', 'token')), 'no token file was written');
    const self = await new Coffer({ addr: cli.server.url, token }).tokenSelf();
    assert.equal(self.expires_at, JSON.parse(renewed.stdout).expires_at, 'the original token carries the renewal');
  });

  it('token create refuses (exit 3) a policy the minter does not hold, and --orphan without the capability', async () => {
    const admin = new Coffer({ addr: cli.server.url, token: cli.server.rootToken });
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

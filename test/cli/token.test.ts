import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { relative } from '../../cli/context.js';
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
    await admin
      .admin('policy')
      .put('token-maker', { rules: [{ path: 'sys/auth/token/create', capabilities: ['admin'] }] });
    const minter = (await admin.createToken({ identity: 'svc:minter', policies: ['token-maker'] })).token;
    const wide = await run(['token', 'create', '--identity', 'svc:wide', '--policies', 'everything'], {
      COFFER_TOKEN: minter,
    });
    assert.equal(wide.code, 3, wide.stderr); // forbidden: the auth exit code
    assert.match(wide.stderr, /everything/);
    assert.equal(wide.stdout, '');
    const orphan = await run(['token', 'create', '--identity', 'svc:orphan', '--orphan'], { COFFER_TOKEN: minter });
    assert.notEqual(orphan.code, 0);
    assert.match(orphan.stderr, /create-orphan/);
    const child = await run(['token', 'create', '--identity', 'svc:child', '--json'], { COFFER_TOKEN: minter });
    assert.equal(child.code, 0, child.stderr);
  });

  it('login token stores the token it checked, whichever source it came from (COFFER_TOKEN_FILE too)', async () => {
    const home = join(cli.dir, 'home-login-token');
    const file = join(cli.dir, 'token-file');
    await writeFile(file, `${cli.server.rootToken}\n`);
    await chmod(file, 0o600);
    const login = await run(['login', 'token'], { HOME: home, COFFER_TOKEN: '', COFFER_TOKEN_FILE: file });
    assert.equal(login.code, 0, login.stderr);
    assert.equal(
      (await readFile(join(home, '.config', 'coffer', 'token'), 'utf8')).trim(),
      cli.server.rootToken,
      'not "undefined"',
    );
  });

  it('token revoke forgets the stored login token only when that is the token it revoked', async () => {
    const home = join(cli.dir, 'home-revoke');
    const stored = JSON.parse((await run(['token', 'create', '--identity', 'svc:stored', '--json'])).stdout)
      .token as string;
    assert.equal((await run(['login', 'token', '--token', stored], { HOME: home, COFFER_TOKEN: '' })).code, 0);
    const other = JSON.parse((await run(['token', 'create', '--identity', 'svc:other', '--json'])).stdout)
      .token as string;
    const revokeOther = await run(['token', 'revoke'], { HOME: home, COFFER_TOKEN: other });
    assert.equal(revokeOther.code, 0, revokeOther.stderr);
    const tokenFile = join(home, '.config', 'coffer', 'token');
    assert.equal((await readFile(tokenFile, 'utf8')).trim(), stored, 'the stored login token stays');
    assert.equal((await run(['token', 'revoke'], { HOME: home, COFFER_TOKEN: '' })).code, 0);
    await assert.rejects(readFile(tokenFile), /ENOENT/, 'revoking the stored token forgets it');
    assert.equal((await run(['token', 'self'], { HOME: home, COFFER_TOKEN: stored })).code, 3, 'and it is revoked');
  });

  it('relative times: a moment ago is "just now", not "in 0s"', () => {
    const now = Date.parse('2026-12-02T00:00:00.000Z');
    assert.equal(relative('2026-12-01T23:59:59.700Z', now), 'just now');
    assert.equal(relative('2026-12-01T23:59:58.000Z', now), '2s ago');
    assert.equal(relative('2026-12-02T00:00:05.000Z', now), 'in 5s');
    assert.equal(relative(null, now), 'never');
  });
});

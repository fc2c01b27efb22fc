import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isLoopback } from '../../sdk/transport.js';
import { Coffer } from '../../sdk/index.js';
import { cliFixture, type CliFixture } from './cli-fixture.js';

/** The stored login token (~/.config/coffer/token): how it is written, read, and forgotten. */
describe('coffer login token store and logout against a real server', function () {
  this.timeout(30_000);
  let cli: CliFixture;
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) => cli.run(args, { env: { COFFER_TOKEN: '', ...env } });
  const mint = async (identity: string) =>
    (await new Coffer({ addr: cli.server.url, token: cli.server.rootToken }).createToken({ identity })).token;
  const valid = async (token: string) => (await run(['token', 'self'], { COFFER_TOKEN: token })).code === 0;

  before(async () => {
    cli = await cliFixture('coffer-cli-store-');
  });
  after(() => cli.close());

  it('is replaced through a new 0600 file, never written through a symlink or into a wider file', async () => {
    const home = join(cli.dir, 'home-symlink');
    const dir = join(home, '.config', 'coffer');
    await mkdir(dir, { recursive: true });
    const target = join(cli.dir, 'elsewhere');
    await writeFile(target, 'untouched\n');
    await symlink(target, join(dir, 'token'));
    const token = await mint('svc:stored');
    assert.equal((await run(['login', 'token', '--token', token], { HOME: home })).code, 0);
    assert.equal(await readFile(target, 'utf8'), 'untouched\n', 'the symlink target was not written');
    const stored = await lstat(join(dir, 'token'));
    assert.ok(stored.isFile() && !stored.isSymbolicLink());
    assert.equal((stored.mode & 0o777).toString(8), '600');
    assert.equal(((await lstat(dir)).mode & 0o777).toString(8), '700');
  });

  it('a stored token other users can read is refused, naming the file, not sent', async () => {
    const home = join(cli.dir, 'home-loose');
    assert.equal((await run(['login', 'token', '--token', await mint('svc:loose')], { HOME: home })).code, 0);
    await chmod(join(home, '.config', 'coffer', 'token'), 0o644);
    const refused = await run(['token', 'self'], { HOME: home });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /stored login token.*readable|stored login token.*mode|chmod 600/);
  });

  it('logout revokes the stored token, not a COFFER_TOKEN given alongside', async () => {
    const home = join(cli.dir, 'home-logout');
    const stored = await mint('svc:logout-stored');
    const other = await mint('svc:logout-other');
    assert.equal((await run(['login', 'token', '--token', stored], { HOME: home })).code, 0);
    const out = await run(['logout'], { HOME: home, COFFER_TOKEN: other });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(await valid(stored), false, 'the stored token was revoked');
    assert.equal(await valid(other), true, 'COFFER_TOKEN was left alone');
    await assert.rejects(readFile(join(home, '.config', 'coffer', 'token')), /ENOENT/);
    assert.match((await run(['logout'], { HOME: home })).stdout, /not logged in/);
  });

  it('logout against an unreachable server fails and keeps the token it could not revoke', async () => {
    const home = join(cli.dir, 'home-logout-down');
    const stored = await mint('svc:logout-down');
    assert.equal((await run(['login', 'token', '--token', stored], { HOME: home })).code, 0);
    const down = await run(['logout'], { HOME: home, COFFER_ADDR: 'http://127.0.0.1:1' });
    assert.equal(down.code, 5, down.stderr);
    assert.equal(
      (await readFile(join(home, '.config', 'coffer', 'token'), 'utf8')).trim(),
      stored,
      'still stored: it is still valid',
    );
    assert.equal(await valid(stored), true);
  });

  it('plain http carries a token only to 127/8 addresses, [::1] and localhost, not to names that start with 127.', async () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '[::1]', 'localhost']) assert.equal(isLoopback(host), true, host);
    for (const host of ['127.evil.example', '127.0.0.1.nip.io', '10.0.0.1', 'localhost.example', '[::ffff:127.0.0.1]'])
      assert.equal(isLoopback(host), false, host);
    const refused = await run(['token', 'self'], {
      COFFER_TOKEN: 'canary-token',
      COFFER_ADDR: 'http://127.evil.invalid:8740',
    });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /refusing to send a token over plain http to 127\.evil\.invalid:8740/);
    assert.ok(!refused.stderr.includes('canary-token'));
  });
});

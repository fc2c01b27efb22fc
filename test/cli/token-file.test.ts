import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Coffer } from '../../sdk/index.js';
import { CofferError } from '../../sdk/errors.js';
import { cliFixture, runCli, type CliFixture } from './cli-fixture.js';

/**
 * COFFER_TOKEN_FILE (issue 18 item 2) with the real `coffer` binary and the SDK against a real
 * server: the token is read from the file (trailing newline trimmed), a file group or others can
 * read and an empty file are refused naming the variable, and the order is --token >
 * COFFER_TOKEN > COFFER_TOKEN_FILE > the stored login token.
 */
describe('COFFER_TOKEN_FILE in the CLI and the SDK against a real server', function () {
  this.timeout(30_000);
  let cli: CliFixture;
  let admin: Coffer;
  /** The fixture's environment without COFFER_TOKEN, plus `extra`. */
  let bare: (extra?: NodeJS.ProcessEnv) => NodeJS.ProcessEnv;
  const tokens = {} as Record<'file' | 'env' | 'flag' | 'stored', string>;
  const tokenFileAt = async (name: string, text: string, mode = 0o600) => {
    const file = join(cli.dir, name);
    await writeFile(file, text, { mode });
    await chmod(file, mode);
    return file;
  };
  const whoami = async (env: NodeJS.ProcessEnv, args: string[] = []) => {
    const r = await runCli(['token', 'self', '--json', ...args], env);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { identity: string }).identity;
  };

  before(async () => {
    cli = await cliFixture('coffer-cli-token-file-');
    admin = new Coffer({ addr: cli.server.url, token: cli.server.rootToken });
    await admin.admin('policy').put('tf-read', { rules: [{ path: 'tf/*', capabilities: ['read', 'list'] }] });
    for (const who of ['file', 'env', 'flag', 'stored'] as const)
      tokens[who] = (await admin.createToken({ identity: `svc:${who}`, policies: ['tf-read'] })).token;
    bare = (extra = {}) => {
      const env: NodeJS.ProcessEnv = { ...cli.env, ...extra };
      if (!('COFFER_TOKEN' in extra)) delete env.COFFER_TOKEN;
      return env;
    };
  });
  after(() => cli.close());

  it('reads the token from the file, trailing newline trimmed', async () => {
    const file = await tokenFileAt('token-lf', `${tokens.file}\n`);
    assert.equal(await whoami(bare({ COFFER_TOKEN_FILE: file })), 'svc:file');
    const crlf = await tokenFileAt('token-crlf', `${tokens.file}\r\n`, 0o400);
    assert.equal(await whoami(bare({ COFFER_TOKEN_FILE: crlf })), 'svc:file');
  });

  it('refuses a file group or others can read, naming the variable and chmod 600', async () => {
    for (const mode of [0o644, 0o640, 0o604]) {
      const file = await tokenFileAt(`token-${mode.toString(8)}`, `${tokens.file}\n`, mode);
      const r = await runCli(['token', 'self'], bare({ COFFER_TOKEN_FILE: file }));
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /COFFER_TOKEN_FILE/);
      assert.match(r.stderr, /chmod 600/);
      assert.match(r.stderr, new RegExp(`0${mode.toString(8)}`));
      assert.ok(!r.stderr.includes(tokens.file), 'the token is never printed');
      assert.equal(r.stdout, '');
    }
  });

  it('refuses an empty file, a missing file and a directory', async () => {
    for (const text of ['', '\n', '  \n']) {
      const file = await tokenFileAt('token-empty', text);
      const r = await runCli(['token', 'self'], bare({ COFFER_TOKEN_FILE: file }));
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /COFFER_TOKEN_FILE .* is empty/);
    }
    const missing = await runCli(['token', 'self'], bare({ COFFER_TOKEN_FILE: join(cli.dir, 'nope') }));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /COFFER_TOKEN_FILE .*nope cannot be read \(ENOENT\)/);
    const dir = join(cli.dir, 'a-dir');
    await mkdir(dir, { mode: 0o700 });
    const directory = await runCli(['token', 'self'], bare({ COFFER_TOKEN_FILE: dir }));
    assert.equal(directory.code, 1);
    assert.match(directory.stderr, /COFFER_TOKEN_FILE .* is not a file/);
  });

  it('order: --token > COFFER_TOKEN > COFFER_TOKEN_FILE > the stored login token', async () => {
    const file = await tokenFileAt('token-order', `${tokens.file}\n`);
    await mkdir(join(cli.dir, 'home', '.config', 'coffer'), { recursive: true, mode: 0o700 });
    await writeFile(join(cli.dir, 'home', '.config', 'coffer', 'token'), `${tokens.stored}\n`, { mode: 0o600 });
    assert.equal(await whoami(bare()), 'svc:stored');
    assert.equal(await whoami(bare({ COFFER_TOKEN_FILE: file })), 'svc:file');
    assert.equal(await whoami(bare({ COFFER_TOKEN_FILE: file, COFFER_TOKEN: tokens.env })), 'svc:env');
    assert.equal(
      await whoami(bare({ COFFER_TOKEN_FILE: file, COFFER_TOKEN: tokens.env }), ['--token', tokens.flag]),
      'svc:flag',
    );
    // A higher source wins without the file being read: a bad file does not matter then.
    const loose = await tokenFileAt('token-loose', `${tokens.file}\n`, 0o644);
    assert.equal(await whoami(bare({ COFFER_TOKEN_FILE: loose, COFFER_TOKEN: tokens.env })), 'svc:env');
  });

  it('coffer run does not pass COFFER_TOKEN_FILE to the child unless --pass-token', async () => {
    await admin.putSecret('tf/app', { data: { A: '1' } });
    const file = await tokenFileAt('token-run', `${tokens.file}\n`);
    const child = ['-e', 'process.stdout.write(String(process.env.COFFER_TOKEN_FILE))'];
    const plain = await runCli(
      ['run', '--path', 'tf/app', '--', process.execPath, ...child],
      bare({ COFFER_TOKEN_FILE: file }),
    );
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout, 'undefined');
    const passed = await runCli(
      ['run', '--path', 'tf/app', '--pass-token', '--', process.execPath, ...child],
      bare({ COFFER_TOKEN_FILE: file }),
    );
    assert.equal(passed.code, 0, passed.stderr);
    assert.equal(passed.stdout, file);
  });

  it("coffer run never passes the login methods' credentials (COFFER_SECRET_ID, COFFER_PASSWORD, COFFER_JWT) to the child", async () => {
    await admin.putSecret('tf/app', { data: { A: '1' } });
    const file = await tokenFileAt('token-run-logins', `${tokens.file}\n`);
    const child = [
      '-e',
      "process.stdout.write(['COFFER_SECRET_ID', 'COFFER_PASSWORD', 'COFFER_JWT', 'A', 'OTHER'].map((k) => k + '=' + process.env[k]).join(' '))",
    ];
    const credentials = { COFFER_SECRET_ID: 'sid', COFFER_PASSWORD: 'pw', COFFER_JWT: 'jwt', OTHER: 'kept' };
    for (const flags of [[], ['--pass-token']]) {
      const run = await runCli(
        ['run', '--path', 'tf/app', ...flags, '--', process.execPath, ...child],
        bare({ COFFER_TOKEN_FILE: file, ...credentials }),
      );
      assert.equal(run.code, 0, run.stderr);
      assert.equal(
        run.stdout,
        'COFFER_SECRET_ID=undefined COFFER_PASSWORD=undefined COFFER_JWT=undefined A=1 OTHER=kept',
      );
    }
  });

  describe('SDK', () => {
    const saved: NodeJS.ProcessEnv = {};
    beforeEach(() => {
      for (const k of ['COFFER_TOKEN', 'COFFER_TOKEN_FILE']) {
        saved[k] = process.env[k];
        delete process.env[k];
      }
    });
    afterEach(() => {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });

    it('tokenFile option and COFFER_TOKEN_FILE: read at construction, mode checked, newline trimmed', async () => {
      const file = await tokenFileAt('sdk-token', `${tokens.file}\n`);
      assert.equal((await new Coffer({ addr: cli.server.url, tokenFile: file }).tokenSelf()).identity, 'svc:file');
      process.env.COFFER_TOKEN_FILE = file;
      assert.equal((await new Coffer({ addr: cli.server.url }).tokenSelf()).identity, 'svc:file');
      process.env.COFFER_TOKEN = tokens.env;
      assert.equal(
        (await new Coffer({ addr: cli.server.url }).tokenSelf()).identity,
        'svc:env',
        'COFFER_TOKEN wins over COFFER_TOKEN_FILE',
      );
      assert.equal(
        (await new Coffer({ addr: cli.server.url, tokenFile: file }).tokenSelf()).identity,
        'svc:file',
        'an explicit option wins over the environment',
      );
      assert.equal(
        (await new Coffer({ addr: cli.server.url, token: tokens.flag, tokenFile: file }).tokenSelf()).identity,
        'svc:flag',
      );
    });

    it('refuses a loose or empty file with a CofferError naming the setting', async () => {
      const loose = await tokenFileAt('sdk-loose', `${tokens.file}\n`, 0o644);
      process.env.COFFER_TOKEN_FILE = loose;
      assert.throws(
        () => new Coffer({ addr: cli.server.url }),
        (e: unknown) => e instanceof CofferError && /COFFER_TOKEN_FILE .*mode 0644.*chmod 600/.test(e.message),
      );
      assert.throws(() => new Coffer({ addr: cli.server.url, tokenFile: loose }), /tokenFile .*chmod 600/);
      const empty = await tokenFileAt('sdk-empty', '\n');
      assert.throws(() => new Coffer({ addr: cli.server.url, tokenFile: empty }), /is empty/);
    });
  });
});

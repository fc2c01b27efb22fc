import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { buildEnv, fetchSecrets, type EnvOptions } from '../../cli/env.js';
import { ENV_NAME, envNameOf } from '../../sdk/env-names.js';
import { CliError } from '../../cli/errors.js';
import { Coffer, CofferError } from '../../sdk/index.js';
import type { Secret } from '../../sdk/wire/types.js';
import { loadConfig } from '../../server/config.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { silentLog, tempDir } from '../helpers.js';

/**
 * Secrets to environment variables (cli/env.ts, docs/api.md "CLI", SECURITY-CASES I1, I2, I4,
 * I16), in process: the name rule, --map, --prefix, the dangerous names and --allow-env,
 * collisions, NUL, and the fail-closed fetch against a real server. The spawn itself is covered
 * by test/cli/cli.test.ts.
 */

const secret = (path: string, data: Record<string, string>): Secret => ({
  path,
  version: 1,
  type: 'kv',
  data,
  metadata: {},
  created_at: '2026-01-01T00:00:00.000Z',
  expires_at: null,
});
const options = (o: Partial<EnvOptions> = {}): EnvOptions => ({ map: [], prefix: '', allow: [], ...o });
const refused = (pattern: RegExp) => (e: unknown) =>
  e instanceof CliError && e.code === 'invalid_input' && e.exitCode === 1 && pattern.test(e.message);
const entries = (env: Map<string, string>) => Object.fromEntries(env);

describe('cli env: names', () => {
  it('upper-cases keys and turns every character outside [A-Z0-9_] into _', () => {
    assert.equal(envNameOf('db-password'), 'DB_PASSWORD');
    assert.equal(envNameOf('a.b c/d:e'), 'A_B_C_D_E');
    assert.equal(envNameOf('caf\u00e9'), 'CAF_');
    assert.equal(envNameOf('x', 'APP_'), 'APP_X');
    assert.equal(envNameOf('Already_OK_9'), 'ALREADY_OK_9');
  });

  it('ENV_NAME is a whole-name match: a letter or _ first, then letters, digits and _', () => {
    for (const ok of ['A', '_', 'A1', '_9', 'ABC_DEF']) assert.equal(ENV_NAME.test(ok), true, ok);
    for (const bad of ['', '1A', 'a', 'A-B', 'A=B', 'A B', 'A\n', '\nA', 'AB\u00c9'])
      assert.equal(ENV_NAME.test(bad), false, JSON.stringify(bad));
  });

  it('builds the environment from every secret, with the prefix', () => {
    const env = buildEnv(
      [secret('app/db', { user: 'app', 'pass-word': 'p' }), secret('app/api', { token: 't' })],
      options({ prefix: 'APP_' }),
    );
    assert.deepEqual(entries(env), { APP_USER: 'app', APP_PASS_WORD: 'p', APP_TOKEN: 't' });
  });

  it('passes values byte for byte: newlines, spaces, =, quotes and $(…)', () => {
    const value = ' a=b\r\n"c" \'d\' $(rm -rf /) `x` \u00e9 ';
    assert.equal(buildEnv([secret('app/x', { v: value })], options()).get('V'), value);
  });
});

describe('cli env: refusals name the variables, never the values', () => {
  it('refuses names still invalid after conversion, and says to use --map', () => {
    assert.throws(
      () => buildEnv([secret('app/x', { '1abc': 'VALUE-1' })], options()),
      refused(/app\/x:1abc -> "1ABC" is not a valid variable name \(use --map 1abc=NAME\)/),
    );
    assert.throws(
      () => buildEnv([secret('app/x', { '': 'VALUE-2' })], options()),
      refused(/app\/x: -> "" is not a valid variable name/),
    );
  });

  it('refuses dangerous names unless each is allowed by name', () => {
    for (const name of [
      'LD_PRELOAD',
      'LD_LIBRARY_PATH',
      'DYLD_INSERT_LIBRARIES',
      'NODE_OPTIONS',
      'BASH_ENV',
      'ENV',
      'PATH',
      'PYTHONPATH',
      'GIT_SSH_COMMAND',
      'IFS',
      'PS4',
      'COFFER_TOKEN',
      'COFFER_TOKEN_FILE',
      'COFFER_ADDR',
      'COFFER_CACERT',
      'JAVA_TOOL_OPTIONS',
      '_JAVA_OPTIONS',
      'JDK_JAVA_OPTIONS',
      'GIT_CONFIG_COUNT',
      'GIT_CONFIG_KEY_0',
      'GIT_CONFIG_VALUE_12',
      'GIT_CONFIG_PARAMETERS',
      'GIT_ASKPASS',
      'GIT_EXTERNAL_DIFF',
      'PROMPT_COMMAND',
      'GCONV_PATH',
      'OPENSSL_CONF',
      'SSLKEYLOGFILE',
      'PAGER',
      'EDITOR',
      'NPM_CONFIG_REGISTRY',
      'NPM_CONFIG_SCRIPT_SHELL',
      'PIP_INDEX_URL',
      'COMSPEC',
      'PATHEXT',
      'ACTIONS_ID_TOKEN_REQUEST_URL',
      'ACTIONS_RUNTIME_TOKEN',
      'RUNNER_TOOL_CACHE',
      'GITHUB_API_URL',
      'GITHUB_ENV',
    ]) {
      assert.throws(
        () => buildEnv([secret('app/x', { [name.toLowerCase()]: 'VALUE' })], options()),
        refused(new RegExp(`-> ${name} would change how programs run \\(allow it with --allow-env ${name}\\)`)),
        name,
      );
    }
    assert.deepEqual(entries(buildEnv([secret('app/x', { path: '/opt/bin' })], options({ allow: ['PATH'] }))), {
      PATH: '/opt/bin',
    });
    assert.throws(
      () => buildEnv([secret('app/x', { path: '/opt/bin', ld_preload: 'x' })], options({ allow: ['PATH'] })),
      refused(/LD_PRELOAD would change/),
    );
    // Only whole names are dangerous.
    assert.deepEqual(
      entries(
        buildEnv(
          [
            secret('app/x', {
              mypath: 'a',
              path_x: 'b',
              xenv: 'c',
              envx: 'd',
              git_config_key: 'e',
              my_coffer_url: 'f',
              github_token: 'g',
            }),
          ],
          options(),
        ),
      ),
      { MYPATH: 'a', PATH_X: 'b', XENV: 'c', ENVX: 'd', GIT_CONFIG_KEY: 'e', MY_COFFER_URL: 'f', GITHUB_TOKEN: 'g' },
    );
  });

  it('refuses two keys that land on one name, naming both', () => {
    assert.throws(
      () => buildEnv([secret('app/x', { 'my-secret': 'a', MY_SECRET: 'b' })], options()),
      refused(/app\/x:MY_SECRET and app\/x:my-secret both map to MY_SECRET \(use --map to rename one\)/),
    );
    assert.throws(
      () => buildEnv([secret('app/a', { k: 'a' }), secret('app/b', { k: 'b' })], options()),
      refused(/app\/b:k and app\/a:k both map to K/),
    );
  });

  it('refuses a value with a NUL, naming the variable only', () => {
    assert.throws(
      () => buildEnv([secret('app/x', { k: 'SECRET-VALUE\u0000tail' })], options()),
      (e: unknown) =>
        refused(/app\/x:k -> K holds a NUL character/)(e) && !(e as Error).message.includes('SECRET-VALUE'),
    );
  });

  it('lists every problem at once and never a value', () => {
    try {
      buildEnv([secret('app/x', { '1a': 'V-ONE', ld_preload: 'V-TWO', n: 'V\u0000THREE' })], options());
      assert.fail('accepted');
    } catch (e) {
      assert.ok(e instanceof CliError);
      assert.ok(e.message.startsWith('cannot build the environment:\n  '), e.message);
      assert.equal(e.message.split('\n').length, 4, e.message);
      for (const v of ['V-ONE', 'V-TWO', 'THREE']) assert.ok(!e.message.includes(v), e.message);
    }
  });
});

describe('cli env: --map', () => {
  it('renames KEY=NAME, a one-character key included, and path:KEY=NAME first', () => {
    const secrets = [secret('app/db', { k: '1', user: '2' }), secret('app/other', { user: '3' })];
    const env = buildEnv(secrets, options({ map: ['k=K_ONE', 'user=DB_USER', 'app/other:user=OTHER_USER'] }));
    assert.deepEqual(entries(env), { K_ONE: '1', DB_USER: '2', OTHER_USER: '3' });
  });

  it('a map resolves a collision and an invalid name', () => {
    assert.deepEqual(
      entries(buildEnv([secret('app/x', { 'my-secret': 'a', MY_SECRET: 'b' })], options({ map: ['my-secret=FIRST'] }))),
      { FIRST: 'a', MY_SECRET: 'b' },
    );
    assert.deepEqual(entries(buildEnv([secret('app/x', { '1abc': 'v' })], options({ map: ['1abc=ONE_ABC'] }))), {
      ONE_ABC: 'v',
    });
  });

  it('takes the last = as the separator, so a key may contain =', () => {
    assert.deepEqual(entries(buildEnv([secret('app/x', { 'a=b': 'v' })], options({ map: ['a=b=AB'] }))), { AB: 'v' });
  });

  it('refuses a map without a key, without =, or to an invalid name, without echoing the target', () => {
    for (const bad of ['=NAME', 'NAME', 'k=', 'k=1BAD', 'k=lower', 'k=A-B', 'k=A B']) {
      assert.throws(
        () => buildEnv([secret('app/x', { k: 'v' })], options({ map: [bad] })),
        refused(/^--map .*=…: expected KEY=ENV_NAME or path:KEY=ENV_NAME$/),
        bad,
      );
    }
    assert.throws(
      () => buildEnv([], options({ map: ['k=1BAD'] })),
      (e: unknown) => e instanceof CliError && e.message === '--map k=…: expected KEY=ENV_NAME or path:KEY=ENV_NAME',
    );
    assert.throws(
      () => buildEnv([], options({ map: ['key=1BAD'] })),
      (e: unknown) => e instanceof CliError && e.message === '--map key=…: expected KEY=ENV_NAME or path:KEY=ENV_NAME',
    );
  });

  it('a mapped name is still checked: a map to a dangerous name needs --allow-env', () => {
    assert.throws(
      () => buildEnv([secret('app/x', { k: 'v' })], options({ map: ['k=LD_PRELOAD'] })),
      refused(/LD_PRELOAD would change/),
    );
    assert.deepEqual(
      entries(buildEnv([secret('app/x', { k: 'v' })], options({ map: ['k=LD_PRELOAD'], allow: ['LD_PRELOAD'] }))),
      { LD_PRELOAD: 'v' },
    );
  });
});

describe('cli env: fetchSecrets against a real server (fail closed)', function () {
  this.timeout(30_000);
  let dir: string;
  let server: RunningServer;
  let client: Coffer;

  before(async () => {
    dir = await tempDir('coffer-env-');
    server = await startServer(await loadConfig({ flags: { dev: true, data_dir: dir, listen: '127.0.0.1:0' } }), {
      log: silentLog,
    });
    client = new Coffer({ addr: server.url, token: server.rootToken });
    await client.putSecret('app/db', { data: { user: 'u' } });
    await client.putSecret('app/svc/a', { data: { a: '1' } });
    await client.putSecret('app/svc/b', { data: { b: '2' } });
    await client.putSecret('app/svc', { data: { parent: 'p' } });
    for (let i = 0; i < 105; i++)
      await client.putSecret(`many/s${String(i).padStart(3, '0')}`, { data: { [`k${i}`]: String(i) } });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the listed paths once each, in order', async () => {
    const got = await fetchSecrets(client, ['app/db', 'app/svc/a', 'app/db']);
    assert.deepEqual(
      got.map((s) => s.path),
      ['app/db', 'app/svc/a'],
    );
    assert.deepEqual(got[0]!.data, { user: 'u' });
  });

  it('P/* takes every secret under P but not P itself', async () => {
    const got = await fetchSecrets(client, ['app/svc/*']);
    assert.deepEqual(got.map((s) => s.path).sort(), ['app/svc/a', 'app/svc/b']);
  });

  it('reads exactly 100 paths in one batch (no empty second batch)', async () => {
    const paths = Array.from({ length: 100 }, (_, i) => `many/s${String(i).padStart(3, '0')}`);
    assert.equal((await fetchSecrets(client, paths)).length, 100);
  });

  it('reads more than 100 paths in batches of 100', async () => {
    const got = await fetchSecrets(client, ['many/*']);
    assert.equal(got.length, 105);
    assert.deepEqual(got[104]!.data, { k104: '104' });
  });

  it('fails closed: a missing path or an empty P/* is not_found, naming the path', async () => {
    await assert.rejects(
      fetchSecrets(client, ['app/db', 'app/none']),
      (e: unknown) =>
        e instanceof CofferError &&
        e.code === 'not_found' &&
        e.status === 404 &&
        /cannot read app\/none/.test(e.message),
    );
    await assert.rejects(
      fetchSecrets(client, ['app/none', 'app/gone']),
      (e: unknown) => e instanceof CofferError && / \(and 1 more\)$/.test(e.message),
    );
    await assert.rejects(
      fetchSecrets(client, ['empty/*']),
      (e: unknown) =>
        e instanceof CliError && e.code === 'not_found' && e.exitCode === 4 && e.message === 'no secrets under empty',
    );
  });

  it('fails closed on a path the token may not read: forbidden, 403', async () => {
    const admin = (method: string, path: string, body: object) =>
      fetch(`${server.url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${server.rootToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    assert.equal(
      (await admin('PUT', '/v1/policies/env-db', { rules: [{ path: 'app/db', capabilities: ['read'] }] })).status,
      200,
    );
    const created = await admin('POST', '/v1/auth/token/create', {
      identity: 'svc:env',
      policies: ['env-db'],
      ttl: 600,
    });
    assert.equal(created.status, 200);
    const limited = new Coffer({ addr: server.url, token: ((await created.json()) as { token: string }).token });
    assert.equal((await fetchSecrets(limited, ['app/db']))[0]!.data.user, 'u');
    await assert.rejects(
      fetchSecrets(limited, ['app/db', 'app/svc/a']),
      (e: unknown) =>
        e instanceof CofferError &&
        e.code === 'forbidden' &&
        e.status === 403 &&
        /cannot read app\/svc\/a/.test(e.message),
    );
  });
});

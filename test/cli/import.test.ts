import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI } from '../integration/server-process.js';
import { cliFixture, type CliFixture } from './cli-fixture.js';

/**
 * `coffer import` (issue 15 item 3) against a real server: each format, `--prefix`,
 * `--skip-existing`, files that are refused before anything is written (line and column named),
 * and an import killed with SIGKILL mid-way, then resumed, leaving every path one version.
 */
describe('coffer import', function () {
  this.timeout(120_000);
  let cli: CliFixture;
  let file: (name: string, text: string) => Promise<string>;

  before(async () => {
    cli = await cliFixture('coffer-import-');
    file = async (name, text) => {
      const path = join(cli.dir, name);
      await writeFile(path, text);
      return path;
    };
  });
  after(() => cli.close());

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${cli.server.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${cli.server.rootToken}`, 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  /** Every path under `prefix`, listed page by page. */
  const listAll = async (prefix: string) => {
    const keys: string[] = [];
    let after = '';
    for (;;) {
      const page = await api('GET', `/v1/secrets?prefix=${prefix}&limit=1000${after ? `&after=${after}` : ''}`);
      keys.push(...(page.body.keys as string[]));
      if (!page.body.next) return keys;
      after = encodeURIComponent(page.body.next as string);
    }
  };
  const data = async (path: string) => {
    const res = await api('GET', `/v1/secrets/${path}`);
    return res.status === 200 ? res.body.data : undefined;
  };
  const currentVersion = async (path: string) => (await api('GET', `/v1/metadata/${path}`)).body.current_version;

  it('--from-dotenv: one secret, or one per variable with --split; --skip-existing leaves present paths alone', async () => {
    const env = await file('app.env', 'DB_HOST=db.internal\nDB_PASSWORD="quoted value"\n# comment\n\nAPI_KEY=abc\n');
    const one = await cli.run(['import', '--from-dotenv', env, '--path', 'imp/app']);
    assert.equal(one.stdout, 'imported 3 variables into imp/app version 1\n', one.stderr);
    assert.deepEqual(await data('imp/app'), { DB_HOST: 'db.internal', DB_PASSWORD: 'quoted value', API_KEY: 'abc' });
    const split = await cli.run(['import', '--from-dotenv', env, '--path', 'imp/split', '--split', '--json']);
    assert.equal(split.code, 0, split.stderr);
    assert.deepEqual(JSON.parse(split.stdout), {
      written: [
        { path: 'imp/split/db_host', version: 1 },
        { path: 'imp/split/db_password', version: 1 },
        { path: 'imp/split/api_key', version: 1 },
      ],
      skipped: [],
      failed: [],
    });
    const again = await cli.run(['import', '--from-dotenv', env, '--path', 'imp/split', '--split', '--skip-existing']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'imported 0 secrets under imp/split; skipped 3 that already had a version\n');
    assert.equal(await currentVersion('imp/split/api_key'), 1);
    // Without it, each gets a new version: what --skip-existing prevented.
    await cli.run(['import', '--from-dotenv', env, '--path', 'imp/split', '--split']);
    assert.equal(await currentVersion('imp/split/api_key'), 2);
    assert.doesNotMatch(one.stdout + split.stdout + again.stdout + one.stderr, /quoted value|abc|db\.internal/);
  });

  it('--from-json: a map of path to data, placed under --prefix', async () => {
    const json = await file(
      'map.json',
      JSON.stringify({ 'db/main': { user: 'app', password: 'pw-1' }, 'api/stripe': { key: 'sk-1' } }, null, 2),
    );
    const res = await cli.run(['import', '--from-json', json, '--prefix', 'team/', '--json']);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(
      JSON.parse(res.stdout).written.map((w: { path: string }) => w.path),
      ['team/db/main', 'team/api/stripe'],
    );
    assert.deepEqual(await data('team/db/main'), { user: 'app', password: 'pw-1' });
    assert.deepEqual(await data('team/api/stripe'), { key: 'sk-1' });
  });

  it('--from-vault-export: one `vault kv get -format=json` answer at --path, or a map of them', async () => {
    // As the vault CLI prints it (KV v2; a number and a nested object among the values).
    const answer = (values: object, version = 3) => ({
      request_id: 'a1b2c3d4-0000-0000-0000-000000000000',
      lease_id: '',
      lease_duration: 0,
      renewable: false,
      data: {
        data: values,
        metadata: {
          created_time: '2026-01-02T03:04:05.678901Z',
          custom_metadata: null,
          deletion_time: '',
          destroyed: false,
          version,
        },
      },
      warnings: null,
    });
    const single = await file(
      'vault-one.json',
      JSON.stringify(answer({ password: 'v-pw', port: 5432, tls: { on: true } })),
    );
    const res = await cli.run(['import', '--from-vault-export', single, '--path', 'fromvault/db']);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'imported 1 secrets\n');
    assert.deepEqual(await data('fromvault/db'), { password: 'v-pw', port: '5432', tls: '{"on":true}' });
    const noPath = await cli.run(['import', '--from-vault-export', single]);
    assert.equal(noPath.code, 2);
    assert.match(noPath.stderr, /holds one secret: say where it goes with --path/);

    const map = await file(
      'vault-map.json',
      JSON.stringify({ 'ci/token': answer({ token: 't-1' }), 'ci/deploy': answer({ key: 'k-1' }) }),
    );
    const many = await cli.run(['import', '--from-vault-export', map, '--prefix', 'fromvault']);
    assert.equal(many.code, 0, many.stderr);
    assert.deepEqual(await data('fromvault/ci/token'), { token: 't-1' });
    assert.deepEqual(await data('fromvault/ci/deploy'), { key: 'k-1' });

    const deleted = await file(
      'vault-deleted.json',
      JSON.stringify({ ...answer({}), data: { data: null, metadata: {} } }),
    );
    const refused = await cli.run(['import', '--from-vault-export', deleted, '--path', 'fromvault/gone']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /vault-deleted\.json:1:\d+: fromvault\/gone: the exported version holds no data/);
    assert.equal(await data('fromvault/gone'), undefined);
  });

  it('refuses a file that is not valid JSON or dotenv, naming line and column, and writes nothing', async () => {
    const cases: [string, string[], RegExp][] = [
      [
        'trailing.json',
        ['{', '  "bad1/a": {"k": "v"},', '  "bad1/b": {"k": "v",}', '}'],
        /trailing\.json:3:23: not valid JSON \(PropertyNameExpected\); nothing was written/,
      ],
      ['unquoted.json', ['{"bad1/a": {"k": v}}'], /unquoted\.json:1:18: not valid JSON \(InvalidSymbol\)/],
      ['cut.json', ['{"bad1/a": {"k": "v"'], /cut\.json:1:21: not valid JSON/],
      [
        'repeated.json',
        ['{', '  "bad1/a": {"k": "v"},', '  "bad1/a": {"k": "w"}', '}'],
        /repeated\.json:3:3: the key "bad1\/a" is repeated/,
      ],
      [
        'number.json',
        ['{"bad1/a": {"k": "v"},', ' "bad1/b": {"port": 5432}}'],
        /number\.json:2:21: bad1\/b: the value of port is a number/,
      ],
      [
        'key.json',
        ['{"bad1/a": {"k": "v"},', ' "bad1/b": {"k/x": "v"}, "bad1/c": {}}'],
        /key\.json:2:2: bad1\/b: data\.k\/x: keys must be 1 to 256 characters .* \(the first of 2 problems\)/,
      ],
      [
        'path.json',
        ['{"bad1/a": {"k": "v"}, "bad1/../b": {"k": "v"}}'],
        /path\.json:1:24: "bad1\/\.\.\/b" is invalid: use 1 to 16 segments/,
      ],
    ];
    for (const [name, lines, expected] of cases) {
      const res = await cli.run(['import', '--from-json', await file(name, lines.join('\n'))]);
      assert.equal(res.code, 1, `${name}: ${res.stdout}${res.stderr}`);
      assert.match(res.stderr, expected, name);
    }
    // dotenv itself skips a line without `=`; the import refuses it.
    const env = await file('bad.env', 'A=1\n# fine\n  PASSWORD\nB=2\n');
    const res = await cli.run(['import', '--from-dotenv', env, '--path', 'bad1/env', '--split']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /bad\.env:3:3: not a variable assignment \(NAME=value\), a comment or a blank line/);
    const multi = await file('multi.env', 'KEY="line one\nline two"\nOTHER=x # comment\n');
    assert.equal(
      (await cli.run(['import', '--from-dotenv', multi, '--path', 'bad2/env'])).code,
      0,
      'a quoted value may span lines',
    );
    assert.deepEqual(await data('bad2/env'), { KEY: 'line one\nline two', OTHER: 'x' });
    assert.deepEqual(await listAll('bad1'), [], 'nothing written from a refused file');
  });

  it('reports entries the server refuses (policy) and writes the others; exit 1 says what to do', async () => {
    await api('PUT', '/v1/policies/importer', { rules: [{ path: 'allowed/*', capabilities: ['create'] }] });
    const token = (await api('POST', '/v1/auth/token/create', { identity: 'svc:importer', policies: ['importer'] }))
      .body.token as string;
    const json = await file('mixed.json', JSON.stringify({ 'allowed/a': { k: 'v' }, 'denied/b': { k: 'v' } }));
    const res = await cli.run(['import', '--from-json', json, '--json'], { env: { COFFER_TOKEN: token } });
    assert.equal(res.code, 1);
    const summary = JSON.parse(res.stdout);
    assert.deepEqual(
      summary.written.map((w: { path: string }) => w.path),
      ['allowed/a'],
    );
    assert.deepEqual(
      summary.failed.map((f: { path: string; code: string }) => [f.path, f.code]),
      [['denied/b', 'forbidden']],
    );
    assert.match(
      res.stderr,
      /1 of 2 secrets were refused \(first: denied\/b: permission denied.*run again with --skip-existing/,
    );
  });

  it('an import killed with SIGKILL mid-way, run again with --skip-existing, leaves every path exactly one version', async () => {
    const n = 3000;
    const map: Record<string, Record<string, string>> = {};
    for (let i = 0; i < n; i++) map[`resume/s${String(i).padStart(5, '0')}`] = { v: `value-${i}`.padEnd(200, '.') };
    const big = await file('big.json', JSON.stringify(map));
    const args = ['import', '--from-json', big, '--batch-size', '50'];
    const child = spawn(process.execPath, [CLI, ...args], { env: cli.env, stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    for (let i = 0; ; i++) {
      if ((await api('GET', '/v1/secrets?prefix=resume&limit=1')).body.keys.length > 0) break;
      assert.ok(i < 1000, 'the import never started');
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL', 'killed before it finished');
    const before = (await listAll('resume')).length;
    assert.ok(before > 0 && before < n, `interrupted mid-way (${before} of ${n} written)`);

    const resumed = await cli.run([...args, '--skip-existing', '--json']);
    assert.equal(resumed.code, 0, resumed.stderr);
    const summary = JSON.parse(resumed.stdout);
    assert.equal(summary.written.length + summary.skipped.length, n);
    assert.ok(summary.skipped.length >= before, 'what was written before is skipped');
    assert.deepEqual(summary.failed, []);
    const paths = Object.keys(map);
    assert.deepEqual(await listAll('resume'), paths);
    for (let i = 0; i < n; i += 100) {
      const read = await api('POST', '/v1/secrets:batch', { paths: paths.slice(i, i + 100) });
      for (const [path, secret] of Object.entries(
        read.body.secrets as Record<string, { version: number; data: { v: string } }>,
      )) {
        assert.equal(secret.version, 1, `${path} has one version`);
        assert.equal(secret.data.v, map[path]!.v);
      }
      assert.deepEqual(read.body.errors, {});
    }
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK } from 'jose';
import type { RunningServer } from '../../server/main.js';
import { CLI } from '../integration/server-process.js';
import { cliFixture, type CliFixture } from './cli-fixture.js';
import { keyPair } from '../key-pairs.js';

describe('coffer CLI against a real server', function () {
  this.timeout(30_000);
  let dir: string;
  let server: RunningServer;
  let env: NodeJS.ProcessEnv;

  let cli: CliFixture;
  const run = (args: string[], options: { env?: NodeJS.ProcessEnv; stdin?: string; spawn?: boolean } = {}) =>
    cli.run(args, options);

  before(async () => {
    cli = await cliFixture('coffer-cli-');
    ({ dir, server, env } = cli);
  });
  after(() => cli.close());

  it('puts (args, @file, stdin), gets, lists and shows history without echoing values', async () => {
    await writeFile(join(dir, 'pw.txt'), 'from-a-file');
    const put = await run(['put', 'app/db', 'user=app', 'file=@' + join(dir, 'pw.txt'), 'password=-'], {
      stdin: 'from-stdin\n',
    });
    assert.equal(put.code, 0, put.stderr);
    assert.equal(put.stdout, 'wrote app/db version 1\n');
    const json = JSON.parse((await run(['get', 'app/db', '--json'])).stdout);
    assert.deepEqual(json.data, { user: 'app', file: 'from-a-file', password: 'from-stdin' });
    assert.equal((await run(['get', 'app/db', '--field', 'password'])).stdout, 'from-stdin\n');
    // Inherited names are not keys (issue 10 item 9): exit 4 naming the key, never `function Object()`.
    const inherited = await run(['get', 'app/db', '--field', 'constructor']);
    assert.equal(inherited.code, 4);
    assert.equal(inherited.stdout, '');
    assert.match(inherited.stderr, /no key constructor/);
    const proto = await run(['put', 'app/proto', '__proto__=x']);
    assert.equal(proto.code, 1, 'a key named __proto__ reaches the server, which refuses it');
    assert.equal((await run(['ls', 'app'])).stdout, 'app/db\n');
    assert.match((await run(['history', 'app/db'])).stdout, /^VERSION {2}CREATED/);
    assert.equal((await run(['put', 'app/db', 'x=y', '--cas', '0'])).code, 1, 'cas mismatch is an error');
  });

  it('the built binary and the in-process CLI (most of these tests) answer alike: output, errors and exit codes', async () => {
    for (const args of [
      ['get', 'app/db', '--json'],
      ['get', 'app/none'],
      ['ls', 'app'],
      ['get'],
      ['get', 'app/db', '--no-such-flag'],
      ['status'],
    ]) {
      const inProcess = await run(args);
      const binary = await run(args, { spawn: true });
      assert.deepEqual(inProcess, binary, args.join(' '));
    }
  });

  it('uses the documented exit codes with one clear line', async () => {
    const notFound = await run(['get', 'app/none']);
    assert.equal(notFound.code, 4);
    assert.equal(notFound.stderr, 'coffer: secret app/none not found\n');
    const badToken = await run(['get', 'app/db'], { env: { COFFER_TOKEN: 'expired-or-bad' } });
    assert.equal(badToken.code, 3);
    assert.match(badToken.stderr, /coffer login/);
    const down = await run(['get', 'app/db'], { env: { COFFER_ADDR: 'http://127.0.0.1:1' } });
    assert.equal(down.code, 5);
    assert.equal(down.stderr.split('\n').length, 2, 'one line, no stack trace');
    assert.equal((await run(['get', 'app/db', '--no-such-flag'])).code, 2);
    assert.equal((await run(['run', '--path', 'app/db'])).code, 2, 'coffer run without --');
    const insecure = await run(['get', 'app/db'], { env: { COFFER_ADDR: 'http://10.0.0.1:8740' } });
    assert.match(insecure.stderr, /plain http/);
  });

  it('logs in with userpass and stores the token with mode 0600', async () => {
    const admin = { Authorization: `Bearer ${server.rootToken}`, 'Content-Type': 'application/json' };
    await fetch(`${server.url}/v1/auth/userpass/users/alice`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify({ password: 'correct horse battery' }),
    });
    const login = await run(['login', 'userpass', '--username', 'alice'], {
      env: { COFFER_TOKEN: '', COFFER_PASSWORD: 'correct horse battery' },
    });
    assert.equal(login.code, 0, login.stderr);
    assert.doesNotMatch(login.stdout, /eyJ/, 'the token is not printed when stored');
    const file = join(dir, 'home', '.config', 'coffer', 'token');
    assert.equal(((await stat(file)).mode & 0o777).toString(8), '600');
    const self = await run(['token', 'self', '--json'], { env: { COFFER_TOKEN: '' } });
    assert.equal(JSON.parse(self.stdout).identity, 'user:alice');
    assert.ok((await readFile(file, 'utf8')).startsWith('eyJ'));
  });

  it('manages policies, groups, users and roles, refusing bad rules with exit 1', async () => {
    assert.equal(
      (await run(['policy', 'put', 'cli-read', '--rule', 'cli/*:read,list', '--rule', 'cli/admin/**:deny'])).code,
      0,
    );
    assert.deepEqual(JSON.parse((await run(['policy', 'get', 'cli-read', '--json'])).stdout).rules[1], {
      path: 'cli/admin/**',
      capabilities: ['deny'],
    });
    assert.equal((await run(['group', 'put', 'cli', '--policy', 'cli-read'])).code, 0);
    assert.equal(
      (await run(['user', 'put', 'carol', '--group', 'cli'], { env: { COFFER_PASSWORD: 'correct horse battery' } }))
        .code,
      0,
    );
    assert.match((await run(['role', 'get', 'nope', '--type', 'approle'])).stderr, /role nope not found/);
    const bad = await run(['policy', 'put', 'bad', '--rule', 'x/../y:read']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /segment 2 must be a name/);
    // A Vault path (docs/vault-compatibility.md "Policies") is stored and shown as written.
    assert.equal((await run(['policy', 'put', 'cli-vault', '--rule', 'secret/data/cli/*:read'])).code, 0);
    assert.deepEqual(JSON.parse((await run(['policy', 'get', 'cli-vault', '--json'])).stdout).rules, [
      { path: 'secret/data/cli/*', capabilities: ['read'] },
    ]);
    const badVault = await run(['policy', 'put', 'bad', '--rule', 'secret/data/sys/x:read']);
    assert.equal(badVault.code, 1);
    assert.match(badVault.stderr, /a KV mount holds no secret in the sys or transit namespaces/);
    assert.ok((await run(['policy', 'ls'])).stdout.split('\n').includes('cli-read'));
    assert.equal((await run(['group', 'rm', 'cli'])).code, 0);
    assert.equal((await run(['group', 'rm', 'cli'])).code, 4);
  });

  it('logs in with a token, an approle and a CI JWT from a loopback issuer', async () => {
    const home = { HOME: join(dir, 'home-logins'), COFFER_TOKEN: '' };
    const asToken = await run(['login', 'token', '--token', server.rootToken!], { env: home });
    assert.equal(asToken.code, 0, asToken.stderr);
    assert.match(asToken.stdout, /token of root is valid/);
    const admin = { Authorization: `Bearer ${server.rootToken}`, 'Content-Type': 'application/json' };
    await fetch(`${server.url}/v1/auth/approle/roles/ci-builder`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify({ secret_id_num_uses: 1 }),
    });
    const roleId = (
      (await (await fetch(`${server.url}/v1/auth/approle/roles/ci-builder`, { headers: admin })).json()) as {
        role_id: string;
      }
    ).role_id;
    const sid = (
      (await (
        await fetch(`${server.url}/v1/auth/approle/roles/ci-builder/secret-id`, {
          method: 'POST',
          headers: admin,
          body: '{}',
        })
      ).json()) as { secret_id: string }
    ).secret_id;
    const approle = await run(['login', 'approle', '--role', roleId, '--json', '--no-store'], {
      env: { ...home, COFFER_SECRET_ID: sid },
    });
    assert.equal(approle.code, 0, approle.stderr);
    assert.equal(JSON.parse(approle.stdout).identity, 'approle:ci-builder');
    assert.equal(
      (await run(['login', 'approle', '--role', roleId], { env: { ...home, COFFER_SECRET_ID: sid } })).code,
      3,
      'a one-use secret_id works once',
    );

    const { publicKey, privateKey } = keyPair('ec', { namedCurve: 'P-256' });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'ci', alg: 'ES256', use: 'sig' };
    const idp = createHttpServer(
      (_req, res) =>
        void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })),
    );
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    try {
      const issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
      await fetch(`${server.url}/v1/auth/jwt/roles/ci-jwt`, {
        method: 'PUT',
        headers: admin,
        body: JSON.stringify({
          issuer,
          jwks_url: `${issuer}/jwks`,
          bound_audiences: ['coffer'],
          bound_subject: 'job:42',
        }),
      });
      const jwt = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'ci' })
        .setIssuer(issuer)
        .setAudience('coffer')
        .setSubject('job:42')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
      const viaJwt = await run(['login', 'jwt', '--role', 'ci-jwt', '--json', '--no-store'], {
        env: { ...home, COFFER_JWT: jwt },
      });
      assert.equal(viaJwt.code, 0, viaJwt.stderr);
      assert.equal(JSON.parse(viaJwt.stdout).identity, 'jwt:ci-jwt:job:42');
      const wrongSub = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'ci' })
        .setIssuer(issuer)
        .setAudience('coffer')
        .setSubject('job:43')
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey);
      const refused = await run(['login', 'jwt', '--role', 'ci-jwt'], { env: { ...home, COFFER_JWT: wrongSub } });
      assert.equal(refused.code, 3);
      assert.doesNotMatch(refused.stderr + refused.stdout, /eyJ/, 'no token in the output');
    } finally {
      idp.close();
    }
  });

  it('role secret-id makes an approle secret_id into a new 0600 file (never over one) that login approle takes', async () => {
    const home = { HOME: join(dir, 'home-secret-id'), COFFER_TOKEN: '' };
    assert.equal((await run(['role', 'put', 'cli-sid', '--type', 'approle', '--policy', 'none'])).code, 0);
    const roleId = JSON.parse((await run(['role', 'get', 'cli-sid', '--type', 'approle', '--json'])).stdout)
      .role_id as string;
    const file = join(dir, 'cli-sid.secret');
    const made = await run(['role', 'secret-id', 'cli-sid', '--out', file, '--json']);
    assert.equal(made.code, 0, made.stderr);
    assert.equal(JSON.parse(made.stdout).written_to, file);
    assert.ok(!made.stdout.includes((await readFile(file, 'utf8')).trim()), 'the secret_id is in the file only');
    assert.equal(((await stat(file)).mode & 0o777).toString(8), '600');
    const again = await run(['role', 'secret-id', 'cli-sid', '--out', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /never written over a file/);
    const login = await run(['login', 'approle', '--role', roleId, '--secret-id-file', file, '--no-store', '--json'], {
      env: home,
    });
    assert.equal(login.code, 0, login.stderr);
    assert.equal(JSON.parse(login.stdout).identity, 'approle:cli-sid');
    const printed = await run(['role', 'secret-id', 'cli-sid']);
    assert.match(printed.stdout, /^[A-Za-z0-9_-]{20,}\n$/, 'without --out: the secret_id alone on stdout');
    assert.equal((await run(['role', 'secret-id', 'no-such-role'])).code, 4);
    assert.equal((await run(['policy', 'secret-id', 'x'])).code, 2, 'only roles have secret ids');
    assert.equal((await run(['role', 'secret-id', 'cli-sid', '--quiet'])).code, 1, '--quiet would hide the only copy');
    const orphan = join(dir, 'no-role.secret');
    assert.equal((await run(['role', 'secret-id', 'no-such-role', '--out', orphan])).code, 4);
    await assert.rejects(stat(orphan), /ENOENT/, 'the file made for a refused secret_id is removed');
  });

  it('rotates a keyring with a waited rewrap and reports it', async () => {
    for (let i = 0; i < 5; i++) await run(['put', `rot/s${i}`, `v=${i}`]);
    const rotated = await run(['keyring', 'rotate', 'rot', '--rewrap', '--wait', '--json']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const status = JSON.parse(rotated.stdout);
    assert.equal(status.current, 2);
    assert.deepEqual([status.rewrap.state, status.rewrap.total, status.rewrap.rewrapped], ['done', 5, 5]);
    assert.match((await run(['keyring', 'status', 'rot'])).stdout, /^keyring rot: version 2 of 2/);
    assert.match((await run(['rotate-master'])).stdout, /^master key version 2;/);
    assert.equal((await run(['get', 'rot/s3', '--field', 'v'])).stdout, '3\n');
  });

  it('encrypts and decrypts with a named key through stdin', async () => {
    assert.equal((await run(['key', 'create', 'cli-orders'])).stdout, 'created key cli-orders (version 1)\n');
    const ct = (
      await run(['key', 'encrypt', 'cli-orders', '--context', 'tenant-1'], { stdin: 'card 4111' })
    ).stdout.trim();
    assert.match(ct, /^coffer:v1:/);
    assert.equal(
      (await run(['key', 'decrypt', 'cli-orders', '--context', 'tenant-1'], { stdin: ct })).stdout,
      'card 4111',
    );
    assert.equal((await run(['key', 'decrypt', 'cli-orders'], { stdin: ct })).code, 1, 'wrong context');
    assert.match((await run(['key', 'rotate', 'cli-orders'])).stdout, /version 2/);
    const dk = JSON.parse((await run(['key', 'datakey', 'cli-orders', '--json'])).stdout);
    assert.equal(Buffer.from(dk.plaintext, 'base64').length, 32);
  });

  it('imports a customer master key: wrapping-key, wrap on the customer side, import', async () => {
    const pem = join(dir, 'wrap.pem');
    const wk = await run(['byok', 'wrapping-key', '--out', pem, '--exportable', '--json']);
    assert.equal(wk.code, 0, wk.stderr);
    const token = JSON.parse(wk.stdout).import_token as string;
    const keyFile = join(dir, 'master.key');
    await writeFile(keyFile, Buffer.alloc(32, 0x42).toString('hex'));
    const wrapped = await run(['byok', 'wrap', '--public-key', pem, '--key-file', keyFile]);
    assert.equal(wrapped.code, 0, wrapped.stderr);
    const bundle = join(dir, 'bundle.b64');
    await writeFile(bundle, wrapped.stdout);
    const imported = await run(['byok', 'import', '--import-token', token, '--bundle', bundle]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, /^imported as master version \d+/);
    assert.equal(
      (await run(['byok', 'import', '--import-token', token, '--bundle', bundle])).code,
      3,
      'the token is single-use',
    );
    const still = await run(['get', 'app/db', '--field', 'user']);
    assert.equal(still.stdout, 'app\n', `secrets still read: ${still.stderr}`);
    const share = (await readFile(join(dir, 'vault', 'recovery-share'), 'utf8')).trim();
    const exported = await run(['byok', 'export', '--public-key', pem, '--shares', '1'], { stdin: `${share}\n` });
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /^[A-Za-z0-9+/]+=*\n$/);
    assert.equal(
      (await run(['byok', 'export', '--public-key', pem, '--shares', '1'], { stdin: 'not-a-share\n' })).code,
      1,
    );
  });

  describe('run', () => {
    before(async () => {
      const tricky = 'line one\nline two\r\n  spaced  =equals "double" \'single\' $HOME `id` $(id) ; && \\';
      const put = await run(['put', 'run/app', 'db-user=app', 'tricky=-'], { stdin: `${tricky}\n` });
      assert.equal(put.code, 0, put.stderr);
    });

    it('passes values byte for byte, converts names, and keeps COFFER_TOKEN from the child', async () => {
      const res = await run([
        'run',
        '--path',
        'run/app',
        '--',
        process.execPath,
        '-e',
        'process.stdout.write(JSON.stringify({u: process.env.DB_USER, t: process.env.TRICKY, k: process.env.COFFER_TOKEN ?? null}))',
      ]);
      assert.equal(res.code, 0, res.stderr);
      const seen = JSON.parse(res.stdout);
      assert.equal(seen.u, 'app');
      assert.equal(seen.t, 'line one\nline two\r\n  spaced  =equals "double" \'single\' $HOME `id` $(id) ; && \\');
      assert.equal(seen.k, null);
    });

    it("exits with the child's code, 128+n on a signal, 127 for a missing command", async () => {
      assert.equal(
        (await run(['run', '--path', 'run/app', '--', process.execPath, '-e', 'process.exit(42)'])).code,
        42,
      );
      assert.equal(
        (await run(['run', '--path', 'run/app', '--', process.execPath, '-e', 'process.kill(process.pid, "SIGTERM")']))
          .code,
        143,
      );
      const missing = await run(['run', '--path', 'run/app', '--', 'no-such-command-here']);
      assert.equal(missing.code, 127);
      assert.match(missing.stderr, /no-such-command-here: command not found/);
      assert.doesNotMatch(missing.stderr, /app|line one/);
    });

    it('forwards SIGTERM to the child once and waits for it', async () => {
      const child = spawn(
        process.execPath,
        [
          CLI,
          'run',
          '--path',
          'run/app',
          '--',
          process.execPath,
          '-e',
          "process.on('SIGTERM', () => { process.stdout.write('got-term'); process.exit(7); }); setInterval(() => {}, 1000); process.stdout.write('ready');",
        ],
        {
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      await new Promise<void>((ready) =>
        child.stdout.on('data', (d: Buffer) => ((out += d.toString()), out.includes('ready') && ready())),
      );
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((done) => child.once('exit', done));
      assert.equal(code, 7);
      assert.equal(out.match(/got-term/g)?.length, 1);
    });

    it('--watch restarts the command on a new version, stopping the old child before the new one starts', async () => {
      await run(['put', 'run/watched', 'token=v1']);
      const log = join(dir, 'watch.log');
      const script = `const fs = require('fs'); const v = process.env.TOKEN; fs.appendFileSync(${JSON.stringify(log)}, 'start:' + v + ';'); process.on('SIGTERM', () => { fs.appendFileSync(${JSON.stringify(log)}, 'stop:' + v + ';'); process.exit(0); }); process.on('SIGINT', () => process.exit(5)); setInterval(() => {}, 1000);`;
      const child = spawn(
        process.execPath,
        [
          CLI,
          'run',
          '--path',
          'run/watched',
          '--watch',
          '--watch-interval',
          '1',
          '--watch-grace',
          '2',
          '--',
          process.execPath,
          '-e',
          script,
        ],
        { env, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      const waitFor = async (text: string) => {
        for (let i = 0; i < 100; i++) {
          if ((await readFile(log, 'utf8').catch(() => '')).includes(text)) return;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.fail(`never saw ${text} in ${await readFile(log, 'utf8').catch(() => '')}`);
      };
      await waitFor('start:v1;');
      await run(['put', 'run/watched', 'token=v2']);
      await waitFor('start:v2;');
      assert.equal(await readFile(log, 'utf8'), 'start:v1;stop:v1;start:v2;');
      child.kill('SIGINT');
      assert.equal(
        await new Promise<number | null>((done) => child.once('exit', done)),
        5,
        "the current child's exit code",
      );
    });

    it('stays alive while a child ignores SIGTERM, and exits with the child when it finally ends', async () => {
      const script =
        "process.on('SIGTERM', () => process.stdout.write('ignored;')); process.on('SIGINT', () => process.exit(3)); setInterval(() => {}, 1000); process.stdout.write('ready;');";
      const child = spawn(process.execPath, [CLI, 'run', '--path', 'run/app', '--', process.execPath, '-e', script], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      await new Promise<void>((ready) =>
        child.stdout.on('data', (d: Buffer) => ((out += d.toString()), out.includes('ready;') && ready())),
      );
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(child.exitCode, null, 'the CLI waits for its child');
      assert.match(out, /ignored;/);
      child.kill('SIGINT');
      assert.equal(await new Promise<number | null>((done) => child.once('exit', done)), 3);
    });

    it('refuses collisions, invalid names, dangerous names and NUL values before spawning, naming no value', async () => {
      await run(['put', 'run/clash', 'api-key=val-first', 'API_KEY=val-second']);
      const clash = await run(['run', '--path', 'run/clash', '--', 'sh', '-c', 'echo spawned']);
      assert.equal(clash.code, 1);
      assert.match(clash.stderr, /both map to API_KEY/);
      assert.equal(clash.stdout, '');
      assert.doesNotMatch(clash.stderr, /val-/);
      const mapped = await run([
        'run',
        '--path',
        'run/clash',
        '--map',
        'api-key=OTHER',
        '--',
        'sh',
        '-c',
        'echo $OTHER $API_KEY',
      ]);
      assert.equal(mapped.stdout, 'val-first val-second\n');
      await run(['put', 'run/bad', '9lives=x', 'ld_preload=/tmp/evil.so']);
      const bad = await run(['run', '--path', 'run/bad', '--', 'true']);
      assert.match(bad.stderr, /"9LIVES" is not a valid variable name/);
      assert.match(bad.stderr, /LD_PRELOAD would change how programs run/);
      await fetch(`${server.url}/v1/secrets/run/nul`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${server.rootToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ data: { v: 'a\u0000b' } }),
      });
      const nul = await run(['run', '--path', 'run/nul', '--', 'true']);
      assert.match(nul.stderr, /run\/nul:v -> V holds a NUL character/);
    });

    it('--file names follow the rules of names from secrets: no dangerous name, none taken twice', async () => {
      const dangerous = await run([
        'run',
        '--path',
        'run/app',
        '--file',
        'tricky=LD_PRELOAD',
        '--',
        'sh',
        '-c',
        'echo spawned',
      ]);
      assert.equal(dangerous.code, 1);
      assert.match(dangerous.stderr, /LD_PRELOAD would change how programs run/);
      assert.equal(dangerous.stdout, '');
      const taken = await run([
        'run',
        '--path',
        'run/app',
        '--file',
        'tricky=DB_USER',
        '--',
        'sh',
        '-c',
        'echo spawned',
      ]);
      assert.equal(taken.code, 1);
      assert.match(taken.stderr, /DB_USER is already set/);
      const twice = await run(['run', '--path', 'run/app', '--file', 'tricky=F', '--file', 'db-user=F', '--', 'true']);
      assert.match(twice.stderr, /F is already set/);
    });

    it('--file writes a value to a private 0600 file for the child and removes it afterwards', async () => {
      const script =
        "const fs = require('fs'); const f = process.env.CERT_FILE; const st = fs.statSync(f); const dir = fs.statSync(require('path').dirname(f)); process.stdout.write(JSON.stringify({ f, mode: (st.mode & 0o777).toString(8), dir: (dir.mode & 0o777).toString(8), body: fs.readFileSync(f, 'utf8') }))";
      const res = await run([
        'run',
        '--path',
        'run/app',
        '--file',
        'tricky=CERT_FILE',
        '--',
        process.execPath,
        '-e',
        script,
      ]);
      assert.equal(res.code, 0, res.stderr);
      const seen = JSON.parse(res.stdout);
      assert.equal(seen.mode, '600');
      assert.equal(seen.dir, '700');
      assert.ok(seen.body.startsWith('line one\nline two'));
      await assert.rejects(stat(seen.f), /ENOENT/, 'removed when the child ended');
    });

    it('starts nothing when one path cannot be read (fail closed)', async () => {
      const res = await run(['run', '--path', 'run/app', '--path', 'run/missing', '--', 'sh', '-c', 'echo spawned']);
      assert.equal(res.code, 4);
      assert.equal(res.stdout, '');
    });
  });

  describe('export', () => {
    const value = 'multi\nline "quoted" \'single\' $HOME `id` \\ end';
    before(async () => {
      await run(['put', 'exp/app', 'token=-'], { stdin: `${value}\n` });
    });

    it('shell format round-trips through a real shell', async () => {
      const shell = await run(['export', '--path', 'exp/app', '--format', 'shell']);
      const file = join(dir, 'env.sh');
      await writeFile(file, shell.stdout);
      const echoed = await new Promise<string>((done) => {
        const sh = spawn('bash', ['-c', `source ${file}; printf '%s' "$TOKEN"`]);
        let out = '';
        sh.stdout.on('data', (d: Buffer) => (out += d.toString()));
        sh.once('exit', () => done(out));
      });
      assert.equal(echoed, value);
    });

    it('json format is the plain map', async () => {
      assert.deepEqual(JSON.parse((await run(['export', '--path', 'exp/app', '--format', 'json'])).stdout), {
        TOKEN: value,
      });
    });

    it('dotenv refuses, by name, a value no dotenv quoting holds (all three quotes and a newline)', async () => {
      // Round trips through the dotenv parser are in export-formats.test.ts.
      const dotenv = await run(['export', '--path', 'exp/app', '--format', 'dotenv']);
      assert.equal(dotenv.code, 1);
      assert.equal(dotenv.stdout, '');
      assert.match(dotenv.stderr, /TOKEN cannot be written/);
      assert.ok(!dotenv.stderr.includes('quoted'), 'no value in the error');
    });

    it('github format masks every line and appends a collision-proof heredoc to $GITHUB_ENV', async () => {
      const githubEnv = join(dir, 'github_env');
      await writeFile(githubEnv, '');
      const res = await run(['export', '--path', 'exp/app', '--format', 'github'], { env: { GITHUB_ENV: githubEnv } });
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout, '::add-mask::multi\n::add-mask::line "quoted" \'single\' $HOME `id` \\ end\n');
      const written = await readFile(githubEnv, 'utf8');
      const m = /^TOKEN<<(ghadelimiter_[0-9a-f]{32})\n([\s\S]*)\n\1\n$/.exec(written);
      assert.ok(m, written);
      assert.equal(m[2], value);
    });
  });
});

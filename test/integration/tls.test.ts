import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFile, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Coffer } from '../../sdk/client.js';
import type { CofferError } from '../../sdk/errors.js';
import { loadConfig, type ServerConfig } from '../../server/config.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { silentLog, tempDir } from '../helpers.js';
import { makePki, type Pki } from '../tls-pki.js';
import { CLI, startServerProcess, type ServerProcess } from './server-process.js';

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The real `coffer` binary with exactly `env` (PATH and HOME added), like a CI job runs it. */
function cli(args: string[], env: NodeJS.ProcessEnv, home: string): Promise<CliResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH, HOME: home, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => done({ code, stdout, stderr }));
  });
}

interface Answer {
  status?: number | undefined;
  error?: string;
  body: string;
  /** SHA-256 fingerprint of the certificate the server presented. */
  served?: string;
}

/** One HTTPS request; resolves with the status, body and served certificate, or the error code. */
function get(
  url: string,
  path: string,
  options: { ca?: string; cert?: string; key?: string; agent?: Agent; token?: string } = {},
): Promise<Answer> {
  return new Promise((done) => {
    const req = httpsRequest(
      new URL(path, url),
      {
        ...(options.agent
          ? { agent: options.agent }
          : { agent: false, ca: options.ca, cert: options.cert, key: options.key }),
        headers: options.token ? { Authorization: `Bearer ${options.token}` } : {},
      },
      (res) => {
        const served = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => done({ status: res.statusCode, body, served }));
        res.on('error', (e: NodeJS.ErrnoException) => done({ error: e.code ?? e.message, body }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => done({ error: e.code ?? e.message, body: '' }));
    req.end();
  });
}

const auditRequests = async (dataDir: string) =>
  (await readFile(join(dataDir, 'audit.log'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.type === 'request');

const waitFor = async (check: () => boolean, what: string, ms = 10_000) => {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('TLS', function () {
  this.timeout(60_000);
  let dir: string;
  let pki: Pki;
  let ca: string;
  before(async () => {
    dir = await tempDir('coffer-tls-');
    pki = await makePki(dir);
    ca = await readFile(pki.caFile, 'utf8');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const start = async (name: string, flags: Partial<Record<keyof ServerConfig, unknown>>) =>
    startServer(
      await loadConfig({
        env: {},
        flags: {
          dev: true,
          data_dir: join(dir, name),
          listen: '127.0.0.1:0',
          tls_cert_file: pki.server.cert,
          tls_key_file: pki.server.key,
          ...flags,
        },
      }),
      { log: silentLog },
    );

  describe('HTTPS', () => {
    let server: RunningServer;
    before(async () => {
      server = await start('https', {});
    });
    after(() => server.close());

    it('serves https:// and the SDK trusts the CA from caCert or COFFER_CACERT, and nothing else', async () => {
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const sdk = new Coffer({ addr: server.url, token: server.rootToken!, caCert: ca });
      await sdk.putSecret('tls/sdk', { data: { v: 'over-tls' } });
      assert.deepEqual((await sdk.getSecret('tls/sdk')).data, { v: 'over-tls' });
      const saved = { ...process.env };
      try {
        process.env.COFFER_CACERT = pki.caFile;
        assert.equal(
          (await new Coffer({ addr: server.url, token: server.rootToken! }).getSecret('tls/sdk')).version,
          1,
        );
        process.env.COFFER_CACERT = join(dir, 'absent.pem');
        await assert.rejects(
          new Coffer({ addr: server.url, retries: 0 }).health(),
          (e: CofferError) => e.code === 'invalid_request' && /COFFER_CACERT file .*absent\.pem/.test(e.message),
        );
      } finally {
        process.env = saved;
      }
      // The system store does not know our CA: refused, not silently trusted.
      await assert.rejects(
        new Coffer({ addr: server.url, retries: 0 }).health(),
        (e: CofferError) => e.code === 'unavailable',
      );
    });

    it('the CLI talks to it with COFFER_CACERT, and refuses without it', async () => {
      const env = { COFFER_ADDR: server.url, COFFER_TOKEN: server.rootToken!, COFFER_CACERT: pki.caFile };
      const put = await cli(['put', 'tls/cli', 'k=v1'], env, dir);
      assert.equal(put.code, 0, put.stderr);
      const got = await cli(['get', 'tls/cli', '--json'], env, dir);
      assert.equal(got.code, 0, got.stderr);
      assert.deepEqual(JSON.parse(got.stdout).data, { k: 'v1' });
      const untrusted = await cli(
        ['get', 'tls/cli'],
        { COFFER_ADDR: server.url, COFFER_TOKEN: server.rootToken! },
        dir,
      );
      assert.equal(untrusted.code, 5, untrusted.stderr);
      assert.match(untrusted.stderr, /cannot reach the Coffer server/);
    });

    it('COFFER_TLS_SERVER_NAME checks the certificate against that name instead of the address', async () => {
      const env = { COFFER_ADDR: server.url, COFFER_TOKEN: server.rootToken!, COFFER_CACERT: pki.caFile };
      const right = await cli(['get', 'tls/cli', '--json'], { ...env, COFFER_TLS_SERVER_NAME: 'vault.internal' }, dir);
      assert.equal(right.code, 0, right.stderr);
      const wrong = await cli(['get', 'tls/cli'], { ...env, COFFER_TLS_SERVER_NAME: 'other.internal' }, dir);
      assert.equal(wrong.code, 5, 'a certificate without that name is refused');
      await assert.rejects(
        new Coffer({ addr: server.url, caCert: ca, tlsServerName: 'other.internal', retries: 0 }).health(),
        (e: CofferError) => e.code === 'unavailable',
      );
      assert.equal(
        (await new Coffer({ addr: server.url, caCert: ca, tlsServerName: 'vault.internal' }).health()).sealed,
        false,
      );
    });

    it('plain HTTP to the TLS port fails cleanly and the server keeps serving', async () => {
      const answer = await new Promise<string>((done) => {
        const req = httpRequest(`${server.url.replace('https:', 'http:')}/v1/sys/health`, (res) =>
          done(`HTTP ${res.statusCode}`),
        );
        req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
        req.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
        req.end();
      });
      assert.ok(
        ['ECONNRESET', 'EPIPE', 'HPE_INVALID_CONSTANT'].includes(answer) || /socket hang up/.test(answer),
        answer,
      );
      assert.equal((await get(server.url, '/v1/sys/health', { ca })).status, 200);
    });
  });

  describe('mTLS', () => {
    let server: RunningServer;
    let dataDir: string;
    before(async () => {
      dataDir = join(dir, 'mtls');
      server = await start('mtls', {
        tls_client_ca_file: pki.caFile,
        tls_require_client_cert: true,
        tls_min_version: 'TLSv1.3',
      });
    });
    after(() => server.close());

    it('serves a client with a certificate from the client CA and audits its subject and fingerprint', async () => {
      const client = await pki.issue('runner', { usage: 'client', commonName: 'ci-runner-7' });
      const env = {
        COFFER_ADDR: server.url,
        COFFER_TOKEN: server.rootToken!,
        COFFER_CACERT: pki.caFile,
        COFFER_CLIENT_CERT: client.cert,
        COFFER_CLIENT_KEY: client.key,
      };
      const put = await cli(['put', 'mtls/a', 'k=v'], env, dir);
      assert.equal(put.code, 0, put.stderr);
      const sdk = new Coffer({
        addr: server.url,
        token: server.rootToken!,
        caCert: ca,
        clientCert: await readFile(client.cert, 'utf8'),
        clientKey: await readFile(client.key, 'utf8'),
      });
      assert.deepEqual((await sdk.getSecret('mtls/a')).data, { k: 'v' });
      const fingerprint = new X509Certificate(await readFile(client.cert)).fingerprint256;
      const lines = await auditRequests(dataDir);
      const mine = lines.filter((l) => l.path === 'mtls/a');
      assert.equal(mine.length, 2);
      for (const line of mine) assert.deepEqual(line.client_cert, { subject: 'CN=ci-runner-7', sha256: fingerprint });
      // Only one of the two halves: a clear error before anything is sent.
      const half = await cli(['get', 'mtls/a'], { ...env, COFFER_CLIENT_KEY: '' }, dir);
      assert.equal(half.code, 1);
      assert.match(half.stderr, /COFFER_CLIENT_CERT and COFFER_CLIENT_KEY/);
    });

    it('refuses at the handshake a client without a certificate, or with one from another CA; nothing is audited', async () => {
      const before = (await auditRequests(dataDir)).length;
      const bare = await get(server.url, '/v1/secrets/mtls/a', { ca, token: server.rootToken! });
      assert.equal(bare.status, undefined, 'no HTTP answer');
      assert.ok(bare.error, 'the connection fails');
      const cli1 = await cli(
        ['get', 'mtls/a'],
        { COFFER_ADDR: server.url, COFFER_TOKEN: server.rootToken!, COFFER_CACERT: pki.caFile },
        dir,
      );
      assert.equal(cli1.code, 5);
      const { createCa } = await import('../../server/tls/certs.js');
      const other = await createCa({ commonName: 'Another CA' });
      const foreign = await pki.issue('foreign', { usage: 'client', by: other });
      const wrongCa = await get(server.url, '/v1/secrets/mtls/a', {
        ca,
        cert: await readFile(foreign.cert, 'utf8'),
        key: await readFile(foreign.key, 'utf8'),
        token: server.rootToken!,
      });
      assert.equal(wrongCa.status, undefined);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal((await auditRequests(dataDir)).length, before, 'no audit line at all, let alone a success');
      assert.equal(
        (
          await get(server.url, '/v1/sys/health', {
            ca,
            cert: await readFile(join(dir, 'runner.pem'), 'utf8'),
            key: await readFile(join(dir, 'runner-key.pem'), 'utf8'),
          })
        ).status,
        200,
      );
    });
  });

  describe('bad input at start: refused, the message names the file, nothing created', () => {
    const refused = async (flags: Partial<Record<keyof ServerConfig, unknown>>, message: RegExp) => {
      const dataDir = join(dir, `refused-${Math.random().toString(36).slice(2)}`);
      await assert.rejects(
        start(dataDir.slice(dir.length + 1), flags),
        (e: Error) => message.test(e.message) && !/BEGIN|PRIVATE KEY-----/.test(e.message),
      );
      await assert.rejects(stat(dataDir), { code: 'ENOENT' });
    };

    it('an unreadable or missing key or certificate', async () => {
      await refused(
        { tls_key_file: join(dir, 'absent-key.pem') },
        /tls_key_file .*absent-key\.pem cannot be read \(ENOENT\)/,
      );
      await refused({ tls_cert_file: dir }, new RegExp(`tls_cert_file ${dir} cannot be read \\(EISDIR\\)`));
      const garbage = join(dir, 'garbage.pem');
      await writeFile(garbage, 'not a pem\n');
      await refused({ tls_cert_file: garbage }, /tls_cert_file .*garbage\.pem holds no PEM certificate/);
      await refused({ tls_key_file: garbage }, /tls_key_file .*garbage\.pem holds no readable PEM private key/);
    });

    it('a key that does not match the certificate', async () => {
      const other = await pki.issue('other');
      await refused(
        { tls_key_file: other.key },
        /tls_key_file .*other-key\.pem does not match the certificate in tls_cert_file .*server\.pem/,
      );
    });

    it('an expired certificate, unless --allow-expired-cert', async () => {
      const expired = await pki.issue('expired', {
        notBefore: new Date(Date.now() - 10 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000),
      });
      await refused(
        { tls_cert_file: expired.cert, tls_key_file: expired.key },
        /tls_cert_file .*expired\.pem expired on .*--allow-expired-cert/,
      );
      const server = await start('expired-allowed', {
        tls_cert_file: expired.cert,
        tls_key_file: expired.key,
        allow_expired_cert: true,
      });
      try {
        assert.match(server.url, /^https:/);
        assert.ok(server.tls!.notAfter.getTime() < Date.now());
      } finally {
        await server.close();
      }
    });

    it('half a pair, or mTLS settings without what they need', async () => {
      await refused({ tls_key_file: undefined }, /tls_cert_file and tls_key_file go together: tls_key_file is missing/);
      await refused({ tls_require_client_cert: true }, /tls_require_client_cert needs tls_client_ca_file/);
      await refused(
        { tls_client_ca_file: pki.server.cert },
        /tls_client_ca_file .*server\.pem holds a certificate that is not a CA/,
      );
    });

    it('a non-loopback address without TLS, unless --insecure-no-tls (the real binary; no traffic is sent)', async () => {
      const dataDir = join(dir, 'open');
      const result = await cli(['server', '--listen', '0.0.0.0:0', '--data-dir', dataDir, '--kek', 'shamir:'], {}, dir);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /refusing to serve plain HTTP on 0\.0\.0\.0:0/);
      assert.match(result.stderr, /tls_cert_file/);
      assert.match(result.stderr, /--insecure-no-tls/);
      await assert.rejects(stat(dataDir), { code: 'ENOENT' });
      const insecure = await startServer(
        await loadConfig({
          env: {},
          flags: { data_dir: join(dir, 'insecure'), listen: '0.0.0.0:0', kek: 'shamir:', insecure_no_tls: true },
        }),
        { log: silentLog },
      );
      try {
        assert.match(insecure.url, /^http:\/\/0\.0\.0\.0:\d+$/);
      } finally {
        await insecure.close();
      }
    });
  });

  describe('a real server process', () => {
    let proc: ServerProcess | undefined;
    afterEach(async () => {
      await proc?.kill();
      proc = undefined;
    });

    it('SIGHUP reloads the certificate under a 20-connection read load without a failed request; a broken pair keeps the old one', async () => {
      const dataDir = join(dir, 'hup');
      const certFile = join(dir, 'hup.pem');
      const keyFile = join(dir, 'hup-key.pem');
      await copyFile(pki.server.cert, certFile);
      await copyFile(pki.server.key, keyFile);
      proc = await startServerProcess([
        '--dev',
        '--data-dir',
        dataDir,
        '--tls-cert-file',
        certFile,
        '--tls-key-file',
        keyFile,
      ]);
      const token = (await readFile(join(dataDir, 'root-token'), 'utf8')).trim();
      assert.equal(
        (await new Coffer({ addr: proc.url, token, caCert: ca }).putSecret('hup/a', { data: { v: '1' } })).version,
        1,
      );
      const first = new X509Certificate(await readFile(certFile)).fingerprint256;

      // 20 keep-alive connections reading in a loop for the whole test.
      const agent = new Agent({ keepAlive: true, maxSockets: 20, ca });
      let running = true;
      const answers: Answer[] = [];
      const workers = Array.from({ length: 20 }, async () => {
        while (running) answers.push(await get(proc!.url, '/v1/secrets/hup/a', { agent, token }));
      });
      await waitFor(() => answers.length >= 200, 'load');

      const next = await pki.issue('hup-next', { notAfter: new Date(Date.now() + 3 * 86_400_000) });
      await copyFile(next.cert, certFile);
      await copyFile(next.key, keyFile);
      const seen = answers.length;
      proc.child.kill('SIGHUP');
      await waitFor(() => proc!.output().includes('TLS certificate reloaded'), 'the reload log line');
      assert.match(proc.output(), new RegExp(`"not_after":"${next.issued.cert.notAfter.toISOString().slice(0, 19)}`));
      await waitFor(() => answers.length >= seen + 400, 'load after the reload');
      // A new connection gets the new certificate; the open ones went on with theirs.
      const fresh = await get(proc.url, '/v1/sys/health', { ca });
      assert.equal(fresh.status, 200);
      assert.equal(fresh.served, new X509Certificate(next.issued.certPem).fingerprint256);
      assert.notEqual(fresh.served, first);

      // A broken pair (a key that belongs to another certificate): refused, the last good one stays.
      const stray = await pki.issue('hup-stray');
      await copyFile(stray.key, keyFile);
      proc.child.kill('SIGHUP');
      await waitFor(() => proc!.output().includes('TLS certificate reload refused'), 'the refusal log line');
      assert.match(proc.output(), /"reason":"tls_key_file .*hup-key\.pem does not match/);
      const after = await get(proc.url, '/v1/sys/health', { ca });
      assert.equal(after.status, 200);
      assert.equal(after.served, new X509Certificate(next.issued.certPem).fingerprint256);

      running = false;
      await Promise.all(workers);
      agent.destroy();
      const failed = answers.filter((a) => a.status !== 200);
      assert.deepEqual(failed.slice(0, 3), [], `${failed.length} of ${answers.length} reads failed`);
      process.stdout.write(
        `      ${answers.length} reads over 20 keep-alive connections across two SIGHUPs, ${failed.length} failed\n`,
      );
      assert.ok(!/BEGIN|PRIVATE KEY/.test(proc.output()), 'no key material in the log');
    });

    it('drains over TLS on SIGTERM like over HTTP: in-flight requests finish, health says draining, exit 0', async () => {
      const dataDir = join(dir, 'drain');
      proc = await startServerProcess([
        '--dev',
        '--data-dir',
        dataDir,
        '--tls-cert-file',
        pki.server.cert,
        '--tls-key-file',
        pki.server.key,
      ]);
      const token = (await readFile(join(dataDir, 'root-token'), 'utf8')).trim();
      // 20 connections with a slow request each (a password hash) in flight when SIGTERM arrives.
      const users = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          fetchLike(proc!.url, 'PUT', `/v1/auth/userpass/users/u${i}`, ca, token, {
            password: 'correct horse battery staple',
          }),
        ),
      );
      assert.deepEqual(
        users.map((u) => u.status),
        Array(20).fill(200),
      );
      const inFlight = Array.from({ length: 20 }, (_, i) =>
        fetchLike(proc!.url, 'POST', '/v1/auth/userpass/login', ca, undefined, {
          username: `u${i}`,
          password: 'correct horse battery staple',
        }),
      );
      await new Promise((r) => setTimeout(r, 40));
      const exited = new Promise<number | null>((done) => proc!.child.once('exit', (code) => done(code)));
      proc.child.kill('SIGTERM');
      const health: Answer[] = [];
      for (let i = 0; i < 200; i++) {
        const h = await get(proc.url, '/v1/sys/health', { ca });
        health.push(h);
        if (h.error) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      const answers = await Promise.all(inFlight);
      assert.deepEqual(
        answers.filter((a) => a.status !== 200),
        [],
        'every in-flight request finished',
      );
      assert.ok(
        health.some((h) => h.status === 503 && JSON.parse(h.body).draining === true),
        JSON.stringify(health.slice(0, 3)),
      );
      assert.equal(await exited, 0, proc.output());
      const lines = (await readFile(join(dataDir, 'audit.log'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; operation?: string });
      assert.equal(lines.at(-1)!.type, 'checkpoint', 'the final checkpoint follows every request');
      assert.equal(lines.filter((l) => l.operation === 'POST /v1/auth/userpass/login').length, 20);
      proc = undefined;
    });

    it('--dev-tls: throw-away CA in <data_dir>/tls, key 0600, prints COFFER_CACERT, serves https end to end; a restart keeps the set', async () => {
      const dataDir = join(dir, 'devtls');
      proc = await startServerProcess(['--dev-tls', '--data-dir', dataDir]);
      assert.match(proc.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const tlsDir = join(dataDir, 'tls');
      assert.equal((await stat(join(tlsDir, 'server-key.pem'))).mode & 0o777, 0o600);
      assert.equal((await stat(tlsDir)).mode & 0o777, 0o700);
      await waitFor(() => /COFFER_CACERT=\S+/.test(proc!.output()), 'the COFFER_CACERT line');
      const caFile = /COFFER_CACERT=(\S+)/.exec(proc.output())![1]!;
      assert.equal(caFile, join(tlsDir, 'ca.pem'));
      const caPem = await readFile(caFile, 'utf8');
      assert.ok(new X509Certificate(caPem).ca);
      const served = new X509Certificate(await readFile(join(tlsDir, 'server.pem')));
      assert.ok(served.checkIP('127.0.0.1') && served.checkHost('localhost'));
      assert.ok(served.verify(new X509Certificate(caPem).publicKey));
      const token = (await readFile(join(dataDir, 'root-token'), 'utf8')).trim();
      const env = { COFFER_ADDR: proc.url, COFFER_TOKEN: token, COFFER_CACERT: caFile };
      assert.equal((await cli(['put', 'dev/tls', 'k=v'], env, dir)).code, 0);
      const got = await cli(['get', 'dev/tls', '--json'], env, dir);
      assert.deepEqual(JSON.parse(got.stdout).data, { k: 'v' });
      assert.equal(
        (
          await cli(
            ['get', 'dev/tls', '--json'],
            { ...env, COFFER_ADDR: proc.url.replace('127.0.0.1', 'localhost') },
            dir,
          )
        ).code,
        0,
        'localhost is in the certificate too',
      );
      assert.ok(!(await readFile(caFile, 'utf8')).includes('PRIVATE'), 'the CA key is never written');
      await proc.kill('SIGTERM');
      proc = await startServerProcess(['--dev-tls', '--data-dir', dataDir]);
      assert.equal(await readFile(caFile, 'utf8'), caPem, 'a valid set is reused across restarts');
      assert.equal((await cli(['get', 'dev/tls', '--json'], { ...env, COFFER_ADDR: proc.url }, dir)).code, 0);
    });
  });
});

/** A JSON request over HTTPS on a connection of its own. */
function fetchLike(
  url: string,
  method: string,
  path: string,
  ca: string,
  token: string | undefined,
  body: unknown,
): Promise<Answer> {
  return new Promise((done) => {
    const text = JSON.stringify(body);
    const req = httpsRequest(
      new URL(path, url),
      {
        method,
        agent: false,
        ca,
        headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      },
      (res) => {
        let out = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (out += d));
        res.on('end', () => done({ status: res.statusCode, body: out }));
        res.on('error', (e: NodeJS.ErrnoException) => done({ error: e.code ?? e.message, body: out }));
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => done({ error: e.code ?? e.message, body: '' }));
    req.end(text);
  });
}

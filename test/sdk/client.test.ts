import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import { Coffer, CofferError, isCasMismatch, isNotFound, isSealed, isUnauthenticated } from '../../sdk/index.js';
import { loadConfig } from '../../server/config.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { silentLog, tempDir } from '../helpers.js';

describe('sdk against a real server', function () {
  this.timeout(20_000);
  let dir: string;
  let server: RunningServer;
  let client: Coffer;

  before(async () => {
    dir = await tempDir('coffer-sdk-');
    server = await startServer(await loadConfig({ flags: { dev: true, data_dir: dir, listen: '127.0.0.1:0' } }), {
      log: silentLog,
    });
    client = new Coffer({ addr: server.url, token: server.rootToken });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes, reads, versions, lists and deletes secrets', async () => {
    assert.equal((await client.putSecret('app/db', { data: { password: 'one' } })).version, 1);
    assert.equal((await client.putSecret('app/db', { data: { password: 'two' }, cas: 1 })).version, 2);
    assert.equal((await client.getSecret('app/db')).data.password, 'two');
    assert.equal((await client.getSecret('app/db', 1)).data.password, 'one');
    assert.deepEqual(
      (await client.metadata('app/db')).versions.map((v) => v.version),
      [1, 2],
    );
    for (let i = 0; i < 5; i++) await client.putSecret(`app/list/s${i}`, { data: { v: String(i) } });
    const listed: string[] = [];
    for await (const path of client.list('app/list', 2)) listed.push(path);
    assert.deepEqual(listed, ['app/list/s0', 'app/list/s1', 'app/list/s2', 'app/list/s3', 'app/list/s4']);
    const batch = await client.batchGet(['app/db', 'app/none']);
    assert.deepEqual(Object.keys(batch.secrets), ['app/db']);
    assert.equal(batch.errors['app/none']!.code, 'not_found');
    await client.deleteSecret('app/db');
    await assert.rejects(client.getSecret('app/db'), isNotFound);
    await client.undelete('app/db', [2]);
    assert.equal((await client.getSecret('app/db')).version, 2);
  });

  it('turns server errors into typed errors with the code and request id', async () => {
    await assert.rejects(client.putSecret('app/db', { data: { x: 'y' }, cas: 1 }), isCasMismatch);
    const error = await client.getSecret('app/missing').catch((e: unknown) => e);
    assert.ok(error instanceof CofferError);
    assert.equal(error.status, 404);
    assert.match(error.requestId ?? '', /^[0-9a-f-]{36}$/);
    await assert.rejects(new Coffer({ addr: server.url, token: 'nope' }).getSecret('app/db'), isUnauthenticated);
    assert.throws(() => client.putSecret('app/../x', { data: { a: 'b' } }), /not a valid secret path/);
  });

  it('prefixes every path with the namespace', async () => {
    const scoped = new Coffer({ addr: server.url, token: server.rootToken, namespace: 'team' });
    await scoped.putSecret('svc/key', { data: { k: 'v' } });
    assert.equal((await client.getSecret('team/svc/key')).data.k, 'v');
    const paths: string[] = [];
    for await (const p of scoped.list('svc')) paths.push(p);
    assert.deepEqual(paths, ['team/svc/key']);
  });

  it('logs in with userpass and uses the new token', async () => {
    await client.putSecret('people/alice', { data: { note: 'x' } });
    const policy = await fetch(`${server.url}/v1/policies/people-read`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${server.rootToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ rules: [{ path: 'people/*', capabilities: ['read'] }] }),
    });
    assert.equal(policy.status, 200);
    await fetch(`${server.url}/v1/auth/userpass/users/alice`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${server.rootToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ password: 'correct horse battery', policies: ['people-read'] }),
    });
    const alice = new Coffer({ addr: server.url });
    const login = await alice.loginUserpass('alice', 'correct horse battery');
    assert.equal(login.identity, 'user:alice');
    assert.equal((await alice.getSecret('people/alice')).data.note, 'x');
    assert.equal((await alice.tokenSelf()).identity, 'user:alice');
    await alice.revoke();
    await assert.rejects(alice.getSecret('people/alice'), isUnauthenticated);
  });

  it('renews the token automatically at two thirds of its lifetime', async () => {
    const admin = new Coffer({ addr: server.url, token: server.rootToken });
    const short = await admin.createToken({ identity: 'svc:renewing', ttl: 3, max_ttl: 60 });
    const client2 = new Coffer({ addr: server.url, token: short.token, autoRenew: true });
    const renewed = await client2.renew();
    await new Promise((r) => setTimeout(r, 2_600));
    const self = await client2.tokenSelf();
    assert.ok(Date.parse(self.expires_at) > Date.parse(renewed.expires_at), 'a newer token is in use');
    assert.equal(client2.renewError, undefined);
    client2.close();
  });

  it('reports health and seal status, and a sealed server without retrying', async () => {
    const { initialized, sealed, role, version } = await client.health(); // Vault's fields beside (docs/vault-compatibility.md)
    assert.deepEqual(
      { initialized, sealed, role, version },
      { initialized: true, sealed: false, role: 'primary', version: '0.1.0' },
    );
    assert.equal((await client.sealStatus()).sealed, false);
  });
});

describe('sdk over TLS with a private CA', function () {
  this.timeout(20_000);
  it('trusts the given CA certificate, and refuses the server without it', async () => {
    const dir = await tempDir('coffer-tls-');
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=coffer-test',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
      const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
      const tls = createHttpsServer(
        { cert, key: readFileSync(join(dir, 'key.pem')) },
        (_req, res) =>
          void res
            .writeHead(200, { 'content-type': 'application/json' })
            .end('{"initialized":true,"sealed":false,"role":"primary","version":"x"}'),
      );
      await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
      const addr = `https://127.0.0.1:${(tls.address() as AddressInfo).port}`;
      try {
        assert.equal((await new Coffer({ addr, caCert: cert }).health()).role, 'primary');
        await assert.rejects(new Coffer({ addr, retries: 0 }).health(), (e: CofferError) => e.code === 'unavailable');
      } finally {
        tls.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sdk: an answer that is not JSON', () => {
  it('is unexpected_response naming the status and the request id, never quoting the body (both transports)', async () => {
    const body = '{"data":{"password":"hunter2-canary"'; // a secrets answer cut short
    const cut = createServer((req, res) => {
      const text = req.url?.startsWith('/v1/sys/health') ? '<html>proxy page hunter2-canary</html>' : body;
      res.writeHead(200, { 'content-type': 'application/json', 'x-request-id': 'req-1' }).end(text);
    });
    await new Promise<void>((r) => cut.listen(0, '127.0.0.1', r));
    const addr = `http://127.0.0.1:${(cut.address() as AddressInfo).port}`;
    const { nodeHttpTransport } = await import('../../sdk/transport.js');
    try {
      for (const transport of [undefined, nodeHttpTransport()]) {
        const client = new Coffer({ addr, token: 't', ...(transport ? { transport } : {}) });
        for (const call of [() => client.getSecret('app/db'), () => client.health()]) {
          await assert.rejects(call(), (e: CofferError) => {
            assert.equal(e.code, 'unexpected_response');
            assert.equal(e.requestId, 'req-1');
            assert.match(e.message, /answered HTTP 200 with a body that is not JSON/);
            assert.ok(!e.message.includes('hunter2'), e.message);
            return true;
          });
        }
      }
    } finally {
      cut.close();
    }
  });
});

describe('sdk retries', () => {
  it('retries idempotent reads on 503 and connection errors with backoff, never a sealed answer', async () => {
    let calls = 0;
    const flaky = createServer((_req, res) => {
      calls++;
      if (calls < 3)
        return void res
          .writeHead(503, { 'content-type': 'application/json' })
          .end('{"error":{"code":"rate_limited","message":"busy","request_id":"r"}}');
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end('{"path":"a","version":1,"type":"kv","data":{},"metadata":{},"created_at":"x","expires_at":null}');
    });
    await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', r));
    const sleeps: number[] = [];
    const client = new Coffer({
      addr: `http://127.0.0.1:${(flaky.address() as AddressInfo).port}`,
      token: 't',
      sleep: async (ms) => void sleeps.push(ms),
    });
    try {
      assert.equal((await client.getSecret('a')).version, 1);
      assert.equal(calls, 3);
      assert.equal(sleeps.length, 2);
      calls = 0;
      await assert.rejects(client.putSecret('a', { data: { k: 'v' } }), (e: CofferError) => e.code === 'rate_limited');
      assert.equal(calls, 1, 'a write without cas is never repeated');
    } finally {
      flaky.close();
    }
    const sealedServer = createServer(
      (_req, res) =>
        void res
          .writeHead(503, { 'content-type': 'application/json' })
          .end('{"error":{"code":"sealed","message":"vault is sealed","request_id":"r"}}'),
    );
    await new Promise<void>((r) => sealedServer.listen(0, '127.0.0.1', r));
    let sealedCalls = 0;
    sealedServer.on('request', () => sealedCalls++);
    try {
      const c = new Coffer({
        addr: `http://127.0.0.1:${(sealedServer.address() as AddressInfo).port}`,
        token: 't',
        sleep: async () => undefined,
      });
      await assert.rejects(c.getSecret('a'), isSealed);
      assert.equal(sealedCalls, 1);
    } finally {
      sealedServer.close();
    }
    const down = new Coffer({ addr: 'http://127.0.0.1:1', token: 't', retries: 1, sleep: async () => undefined });
    await assert.rejects(
      down.getSecret('a'),
      (e: CofferError) => e.code === 'unavailable' && /cannot reach/.test(e.message),
    );
  });
});

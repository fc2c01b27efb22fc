import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { rm } from 'node:fs/promises';
import { loadConfig } from '../../server/config.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { silentLog, tempDir } from '../helpers.js';

/** Sends raw bytes to the server and returns the raw response (until the server closes). */
function raw(url: string, bytes: string, waitMs = 1_000): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let out = '';
    socket.on('data', (d) => (out += d.toString('latin1')));
    socket.on('close', () => resolve(out));
    socket.on('error', () => resolve(out));
    socket.write(bytes);
    setTimeout(() => socket.destroy(), waitMs);
  });
}

const statusOf = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);

describe('http edge cases against a listening server', function () {
  this.timeout(20_000);
  let dir: string;
  let server: RunningServer;
  let token: string;

  before(async () => {
    dir = await tempDir('coffer-edge-');
    server = await startServer(await loadConfig({ flags: { dev: true, data_dir: dir, listen: '127.0.0.1:0' } }), {
      log: silentLog,
    });
    token = server.rootToken!;
    const put = await fetch(`${server.url}/v1/secrets/prod/db`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: '{"data":{"password":"CANARY-edge"}}',
    });
    assert.equal(put.status, 200);
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('D10: refuses headers above 16 KiB with 431', async () => {
    const response = await raw(
      server.url,
      `GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`,
    );
    assert.equal(statusOf(response), 431);
  });

  it('D15: refuses a request with both Content-Length and Transfer-Encoding', async () => {
    const response = await raw(
      server.url,
      `POST /v1/sys/unseal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    );
    assert.equal(statusOf(response), 400);
  });

  it('D15: refuses obs-fold and a bare LF header line', async () => {
    assert.equal(
      statusOf(await raw(server.url, `GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n`)),
      400,
    );
    assert.equal(statusOf(await raw(server.url, `GET /v1/sys/health HTTP/1.1\nHost: x\nX-A: a\n\n`)), 400);
  });

  it('D13: an absolute-form target routes by its path only and changes nothing else', async () => {
    const response = await raw(
      server.url,
      `GET http://evil.example/v1/secrets/prod/db HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(statusOf(response), 200);
    assert.doesNotMatch(response, /evil\.example/i, 'the host is never reflected');
  });

  it('D21: a CORS preflight from any origin gets no allow headers', async () => {
    const res = await fetch(`${server.url}/v1/secrets/prod/db`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'https://evil.example',
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'authorization',
      },
    });
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.equal(res.headers.get('access-control-allow-credentials'), null);
    assert.notEqual(res.status, 200);
  });

  it('D14: method override headers and _method are ignored', async () => {
    const res = await fetch(`${server.url}/v1/secrets/prod/db?_method=DELETE`, {
      headers: { Authorization: `Bearer ${token}`, 'X-HTTP-Method-Override': 'DELETE' },
    });
    assert.equal(res.status, 400, 'the unknown query parameter is refused');
    const get = await fetch(`${server.url}/v1/secrets/prod/db`, {
      headers: { Authorization: `Bearer ${token}`, 'X-HTTP-Method-Override': 'DELETE' },
    });
    assert.equal(get.status, 200);
    assert.equal(
      ((await get.json()) as { data: { password: string } }).data.password,
      'CANARY-edge',
      'nothing was deleted',
    );
  });

  it('D19: a handler failure on one request leaves the server serving others', async () => {
    const bad = await fetch(`${server.url}/v1/secrets/prod/db`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: '{"data":{"a":',
    });
    assert.equal(bad.status, 400);
    const body = await bad.text();
    assert.doesNotMatch(body, /at .*\.js|SyntaxError|node_modules/);
    assert.equal((await fetch(`${server.url}/v1/sys/health`)).status, 200);
  });

  it('B8: a token in the query string or a cookie is not a token', async () => {
    assert.equal((await fetch(`${server.url}/v1/secrets/prod/db?token=${token}`)).status, 401);
    assert.equal(
      (await fetch(`${server.url}/v1/secrets/prod/db`, { headers: { Cookie: `token=${token}` } })).status,
      401,
    );
  });
});

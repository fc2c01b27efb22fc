import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { openVault, type TestVault } from '../../helpers.js';

/**
 * Bad input on the HTTP surface (SECURITY-CASES.md C and D): every bad request gets a clear,
 * well-formed error, leaks nothing, and changes nothing.
 */

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: any;
}

interface RawOptions {
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** Sent with Transfer-Encoding: chunked (no Content-Length). */
  chunks?: Buffer[];
}

/**
 * A request with the exact request target given (no URL normalisation, unlike supertest's
 * URL handling), against a listening server.
 */
function raw(
  agent: http.Agent,
  port: number,
  method: string,
  path: string,
  options: RawOptions = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let responded = false;
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: options.headers ?? {} });
    req.on('response', (res) => {
      responded = true;
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
      });
      res.on('error', reject);
    });
    req.on('error', (e) => {
      if (!responded) reject(e);
    });
    if (options.chunks) {
      for (const chunk of options.chunks) req.write(chunk);
      req.end();
    } else {
      req.end(options.body);
    }
  });
}

async function listen(vault: TestVault): Promise<{ server: http.Server; port: number; agent: http.Agent }> {
  const server = http.createServer(vault.app).listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    agent: new http.Agent({ keepAlive: true, maxSockets: 4 }),
  };
}

async function stopListening(server: http.Server, agent: http.Agent): Promise<void> {
  agent.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

function assertError(res: { status: number; body: any }, status: number, code: string, what = ''): void {
  assert.equal(res.status, status, `${what} expected ${status} ${code}, got ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body?.error?.code, code, `${what} ${JSON.stringify(res.body)}`);
}

async function allKeys(vault: TestVault): Promise<string[]> {
  const res = await request(vault.app).get('/v1/secrets?limit=1000').set(vault.auth);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.keys;
}

/** No stack trace, parser detail, file path or version in an error message. */
function assertGenericMessage(message: string, ...forbidden: string[]): void {
  assert.equal(typeof message, 'string');
  for (const bad of [
    /Unexpected token/i,
    /position \d/i,
    /\bat .+:\d+:\d+/,
    /\/work\//,
    /node_modules/,
    /SyntaxError/,
    /JSON\.parse/,
    ...forbidden,
  ]) {
    assert.ok(
      typeof bad === 'string' ? !message.includes(bad) : !bad.test(message),
      `message "${message}" contains ${String(bad)}`,
    );
  }
}

describe('http bad input: invalid secret paths', () => {
  let vault: TestVault;
  let server: http.Server;
  let port: number;
  let agent: http.Agent;
  const canary = 'CANARY-path-5d1e77b0';
  before(async () => {
    vault = await openVault();
    ({ server, port, agent } = await listen(vault));
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/app/x')
          .set(vault.auth)
          .send({ data: { v: 'base' } })
      ).status,
      200,
    );
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/prod/db')
          .set(vault.auth)
          .send({ data: { v: 'prod' } })
      ).status,
      200,
    );
  });
  after(async () => {
    await stopListening(server, agent);
    await vault.cleanup();
  });

  const long129 = 'a'.repeat(129);
  const seventeen = Array.from({ length: 17 }, () => 'a').join('/');
  const over512 = Array.from({ length: 6 }, () => 'b'.repeat(100)).join('/');
  const invalid: [string, string][] = [
    ['dot-dot segment', 'app/../prod/db'],
    ['leading dot-dot', '../prod/db'],
    ['only dot-dot', '..'],
    ['trailing dot-dot', 'app/x/..'],
    ['dot segment', 'app/./x'],
    ['only dot', '.'],
    ['dot then dot-dot', 'app/./../prod/db'],
    ['empty segment', 'app//x'],
    ['leading slash', '/app/x'],
    ['trailing slash', 'app/x/'],
    ['encoded slash', 'app%2Fx'],
    ['encoded slash lower case', 'app%2fx'],
    ['encoded slash with dot-dot', 'app%2F..%2Fprod%2Fdb'],
    ['encoded dot-dot', 'app/%2e%2e/prod/db'],
    ['encoded dot-dot mixed case', 'app/%2E%2e/prod/db'],
    ['half-encoded dot-dot', 'app/.%2e/prod/db'],
    ['encoded dot', 'app/%2e/x'],
    ['double-encoded dot-dot', 'app/%252e%252e/prod/db'],
    ['double-encoded slash', 'app%252Fx'],
    ['encoded backslash', 'app%5C..%5Cprod'],
    ['NUL', 'app/x%00'],
    ['NUL segment', 'app/%00/x'],
    ['CR LF', 'app/x%0D%0Ay'],
    ['TAB', 'app/x%09'],
    ['space', 'app/x%20y'],
    ['invalid percent sequence', 'app/%zz'],
    ['lone percent', 'app/x%'],
    ['truncated percent', 'app/x%2'],
    ['overlong UTF-8 dot', 'app/%C0%AE%C0%AE/prod'],
    ['overlong UTF-8 single', 'app/%C0%AE'],
    ['non-UTF-8 byte', 'app/%FF'],
    ['129-character segment', `app/${long129}`],
    ['17 segments', seventeen],
    ['more than 512 characters', over512],
    ['very long encoded path', `app/${'%61'.repeat(600)}`],
    ['asterisk', 'app/*'],
    ['glob', 'app/**'],
    ['question mark encoded', 'app/x%3Fy'],
    ['bracket', 'app/[x]'],
    ['plus', 'app/x+y'],
    ['semicolon', 'app/x;y'],
    ['segment starting with a dash', 'app/-x'],
    ['segment starting with an underscore', 'app/_x'],
    ['unicode NFC', 'app/caf%C3%A9'],
    ['unicode NFD', 'app/cafe%CC%81'],
    ['fullwidth slash', 'app%EF%BC%8Fx'],
    ['division slash', 'app%E2%88%95x'],
    ['zero-width space', 'app/x%E2%80%8B'],
    ['right-to-left override', 'app/%E2%80%AEx'],
    ['cyrillic letter', '%D1%95ecret/x'],
    ['escape into sys', '../sys/seal'],
    ['encoded escape into sys', '%2e%2e/sys/unseal'],
  ];

  for (const [what, path] of invalid) {
    it(`refuses a path with ${what} with 400 invalid_path and stores nothing`, async () => {
      const before = await allKeys(vault);
      const put = await raw(agent, port, 'PUT', `/v1/secrets/${path}`, {
        headers: { ...vault.auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ data: { v: canary } }),
      });
      assertError(put, 400, 'invalid_path', `PUT ${path}:`);
      assert.ok(!put.text.includes(canary));
      const get = await raw(agent, port, 'GET', `/v1/secrets/${path}`, { headers: vault.auth });
      assertError(get, 400, 'invalid_path', `GET ${path}:`);
      assert.ok(!get.text.includes('prod'), 'an invalid path read another secret');
      const meta = await raw(agent, port, 'GET', `/v1/metadata/${path}`, { headers: vault.auth });
      assertError(meta, 400, 'invalid_path', `GET metadata ${path}:`);
      const del = await raw(agent, port, 'DELETE', `/v1/secrets/${path}`, { headers: vault.auth });
      assertError(del, 400, 'invalid_path', `DELETE ${path}:`);
      assert.deepEqual(await allKeys(vault), before);
      assert.equal((await request(vault.app).get('/v1/secrets/prod/db').set(vault.auth)).body.version, 1);
    });
  }

  it('refuses invalid paths in undelete and destroy and leaves the secret alone', async () => {
    for (const path of ['app/../app/x', 'app/%2e%2e/app/x', 'app//x', 'app%2Fx']) {
      for (const action of ['undelete', 'destroy']) {
        const res = await raw(agent, port, 'POST', `/v1/secrets/${path}/${action}`, {
          headers: { ...vault.auth, 'Content-Type': 'application/json' },
          body: JSON.stringify({ versions: [1] }),
        });
        assertError(res, 400, 'invalid_path', `POST ${path}/${action}:`);
      }
    }
    const meta = await request(vault.app).get('/v1/metadata/app/x').set(vault.auth);
    assert.equal(meta.body.versions[0].destroyed, false);
    assert.deepEqual((await request(vault.app).get('/v1/secrets/app/x').set(vault.auth)).body.data, { v: 'base' });
  });

  it('refuses a request for the bare prefix or a doubled route slash without storing anything', async () => {
    const before = await allKeys(vault);
    for (const target of ['/v1/secrets/', '/v1//secrets/app/x', '//v1/secrets/app/x']) {
      const res = await raw(agent, port, 'PUT', target, {
        headers: { ...vault.auth, 'Content-Type': 'application/json' },
        body: '{"data":{"v":"x"}}',
      });
      assert.ok(res.status === 400 || res.status === 404 || res.status === 405, `${target}: ${res.status}`);
      assert.ok(res.body?.error?.code, `${target}: ${res.text}`);
    }
    assert.deepEqual(await allKeys(vault), before);
  });

  it('accepts the boundaries: 128-character segment, 16 segments, 512 characters, [A-Za-z0-9._-]', async () => {
    const ok = [
      `app/${'c'.repeat(128)}`,
      Array.from({ length: 16 }, (_, i) => `s${i}`).join('/'),
      [...Array.from({ length: 5 }, () => 'd'.repeat(100)), 'e'.repeat(7)].join('/'),
      'app/A.b_c-9',
      'app/x..y',
      '9/x',
    ];
    assert.equal(ok[2]!.length, 512);
    for (const path of ok) {
      const res = await raw(agent, port, 'PUT', `/v1/secrets/${path}`, {
        headers: { ...vault.auth, 'Content-Type': 'application/json' },
        body: '{"data":{"v":"ok"}}',
      });
      assert.equal(res.status, 200, `${path}: ${res.text}`);
      assert.equal(res.body.path, path);
    }
  });

  it('decodes an encoded allowed character once, so %61pp/x is app/x', async () => {
    const res = await raw(agent, port, 'GET', '/v1/secrets/%61pp/x', { headers: vault.auth });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.path, 'app/x');
  });

  it('routes case-sensitively: /v1/Secrets/app/x is 404 and never reads or writes app/x', async () => {
    const before = await allKeys(vault);
    for (const target of ['/v1/Secrets/app/x', '/V1/secrets/app/x', '/v1/SECRETS/app/x', '/v1/Metadata/app/x']) {
      const get = await raw(agent, port, 'GET', target, { headers: vault.auth });
      assertError(get, 404, 'not_found', target);
      assert.ok(!get.text.includes('base'));
      const put = await raw(agent, port, 'PUT', target, {
        headers: { ...vault.auth, 'Content-Type': 'application/json' },
        body: '{"data":{"v":"changed"}}',
      });
      assertError(put, 404, 'not_found', target);
    }
    assert.deepEqual(await allKeys(vault), before);
    assert.deepEqual((await request(vault.app).get('/v1/secrets/app/x').set(vault.auth)).body.data, { v: 'base' });
    // Secret names are case-sensitive too.
    assertError(await request(vault.app).get('/v1/secrets/app/X').set(vault.auth), 404, 'not_found');
    assertError(await request(vault.app).get('/v1/secrets/App/x').set(vault.auth), 404, 'not_found');
  });

  it('routes strictly: a trailing slash on a system route is 404', async () => {
    assertError(await raw(agent, port, 'GET', '/v1/sys/health/', { headers: vault.auth }), 404, 'not_found');
    assertError(await raw(agent, port, 'GET', '/v1/sys/seal-status/', { headers: vault.auth }), 404, 'not_found');
    assertError(await raw(agent, port, 'GET', '/v1/sys/keyrings/app/', { headers: vault.auth }), 404, 'not_found');
  });

  it('takes the path from the path only: a query or encoded fragment never changes the target', async () => {
    const q = await raw(agent, port, 'GET', '/v1/secrets/app/x?x=/v1/secrets/prod/db', { headers: vault.auth });
    assert.equal(q.status, 400, 'an unknown query parameter is refused');
    assert.ok(!q.text.includes('prod'));
    const hash = await raw(agent, port, 'GET', '/v1/secrets/app/x%23/../../prod/db', { headers: vault.auth });
    assertError(hash, 400, 'invalid_path');
  });
});

describe('http bad input: request bodies', () => {
  let vault: TestVault;
  let server: http.Server;
  let port: number;
  let agent: http.Agent;
  const canary = 'CANARY-body-a81c0f42';
  const json = { 'Content-Type': 'application/json' };
  /** Bytes go out as they are over a socket (supertest would serialise a Buffer as JSON). */
  const putRaw = (text: string | Buffer, path = 'app/body') =>
    Buffer.isBuffer(text)
      ? raw(agent, port, 'PUT', `/v1/secrets/${path}`, { headers: { ...vault.auth, ...json }, body: text })
      : request(vault.app).put(`/v1/secrets/${path}`).set(vault.auth).set(json).send(text);
  const putJson = (body: unknown, path = 'app/body') =>
    request(vault.app)
      .put(`/v1/secrets/${path}`)
      .set(vault.auth)
      .send(body as object);

  before(async () => {
    vault = await openVault();
    ({ server, port, agent } = await listen(vault));
  });
  after(async () => {
    await stopListening(server, agent);
    await vault.cleanup();
  });
  afterEach(async () => {
    assert.deepEqual(await allKeys(vault), [], 'a refused request stored something');
  });

  const malformed: [string, string | Buffer][] = [
    ['truncated', `{"data":{"k":"${canary}"}`],
    ['truncated in a string', `{"data":{"k":"${canary}`],
    ['trailing comma', `{"data":{"k":"${canary}"},}`],
    ['trailing comma in data', `{"data":{"k":"${canary}",}}`],
    ['line comment', `{"data":{"k":"${canary}"}} // comment`],
    ['block comment', `{"data":/* c */{"k":"${canary}"}}`],
    ['NaN', `{"data":{"k":"${canary}"},"cas":NaN}`],
    ['Infinity', `{"data":{"k":"${canary}"},"cas":Infinity}`],
    ['single quotes', `{'data':{'k':'${canary}'}}`],
    ['unquoted keys', `{data:{k:"${canary}"}}`],
    ['trailing garbage', `{"data":{"k":"${canary}"}}${canary}`],
    ['two documents', `{"data":{"k":"${canary}"}}{"data":{}}`],
    ['bare word', canary],
    ['bad escape', `{"data":{"k":"${canary}\\x41"}}`],
    ['raw newline in a string', `{"data":{"k":"${canary}\n"}}`],
    ['lone surrogate', `{"data":{"k":"\\ud800${canary}"}}`],
    ['lone surrogate in a key', `{"data":{"\\udc00":"${canary}"}}`],
    [
      'invalid UTF-8',
      Buffer.concat([Buffer.from(`{"data":{"k":"${canary}`), Buffer.from([0xc3, 0x28]), Buffer.from('"}}')]),
    ],
    [
      'overlong UTF-8',
      Buffer.concat([Buffer.from(`{"data":{"k":"${canary}`), Buffer.from([0xc0, 0xae]), Buffer.from('"}}')]),
    ],
    ['byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`{"data":{"k":"${canary}"}}`)])],
  ];
  for (const [what, text] of malformed) {
    it(`refuses malformed JSON (${what}) with 400 invalid_request and a generic message`, async () => {
      const res = await putRaw(text);
      assertError(res, 400, 'invalid_request', what);
      assertGenericMessage(res.body.error.message, canary, '"data"');
      assert.ok(!res.text.includes(canary), 'error body echoes the request body');
    });
  }

  it('refuses duplicate keys with 400, in any spelling and at any level', async () => {
    for (const text of [
      '{"data":{"a":"1","a":"2"}}',
      '{"data":{"a":"1"},"data":{"b":"2"}}',
      '{"data":{"a":"1","\\u0061":"2"}}',
      '{"data":{"a":"1"},"d\\u0061ta":{"a":"2"}}',
      '{"data":{"a":"1"},"metadata":{"m":"1","m":"1"}}',
    ]) {
      const res = await putRaw(text);
      assertError(res, 400, 'invalid_request', text);
      assert.match(res.body.error.message, /duplicate/);
    }
  });

  it('refuses nesting 100 levels deep with 400', async () => {
    const deepObject = `{"data":{"a":"b"},"metadata":${'{"x":'.repeat(100)}"y"${'}'.repeat(100)}}`;
    assertError(await putRaw(deepObject), 400, 'invalid_request');
    const deepArray = `{"data":{"a":"b"},"x":${'['.repeat(100)}${']'.repeat(100)}}`;
    assertError(await putRaw(deepArray), 400, 'invalid_request');
  });

  it('refuses 10,000 levels of nesting quickly and keeps serving', async () => {
    const started = Date.now();
    const res = await putRaw(`${'['.repeat(10_000)}${']'.repeat(10_000)}`);
    assertError(res, 400, 'invalid_request');
    assert.ok(Date.now() - started < 2000);
    assert.equal((await request(vault.app).get('/v1/sys/health')).status, 200);
  });

  it('refuses more than 10,000 entries with 400', async () => {
    const data = Object.fromEntries(Array.from({ length: 12_000 }, (_, i) => [`k${i}`, 'v']));
    assertError(await putJson({ data }), 400, 'invalid_request');
  });

  it('refuses data that is not a flat map of string to string with 400', async () => {
    const bad: unknown[] = [
      { data: { a: { b: 'c' } } },
      { data: { a: 1 } },
      { data: { a: true } },
      { data: { a: null } },
      { data: { a: ['x'] } },
      { data: ['a', 'b'] },
      { data: 'a=b' },
      { data: null },
      { data: 42 },
      {},
      { data: { 'bad key': 'x' } },
      { data: { '': 'x' } },
      { data: { 'k/slash': 'x' } },
      { data: { [`k${'x'.repeat(256)}`]: 'x' } },
    ];
    for (const body of bad) assertError(await putJson(body), 400, 'invalid_request', JSON.stringify(body).slice(0, 80));
  });

  it('refuses an empty data map with 400', async () => {
    assertError(await putJson({ data: {} }), 400, 'invalid_request');
  });

  it('refuses a body that is not an object with 400', async () => {
    for (const text of ['null', '[]', '"data"', '42', 'true', '[{"data":{"a":"b"}}]']) {
      assertError(await putRaw(text), 400, 'invalid_request', text);
    }
  });

  it('refuses a JSON request without a body with 400', async () => {
    const res = await request(vault.app).put('/v1/secrets/app/body').set(vault.auth).set(json);
    assertError(res, 400, 'invalid_request');
  });

  it('refuses an unknown field with 400 naming the field', async () => {
    for (const [field, body] of [
      ['extra', { data: { a: 'b' }, extra: 1 }],
      ['Data', { data: { a: 'b' }, Data: { a: 'c' } }],
      ['value', { data: { a: 'b' }, value: canary }],
      ['length', { data: { a: 'b' }, generate: { key: 'p', length: 10, lenght: 10 } }],
    ] as const) {
      const res = await putJson(body);
      assertError(res, 400, 'invalid_request', field);
      assert.ok(res.body.error.message.includes(field === 'length' ? 'lenght' : field), res.body.error.message);
      assert.ok(!res.text.includes(canary));
    }
  });

  it('refuses wrongly typed fields with 400', async () => {
    const bad: unknown[] = [
      { data: { a: 'b' }, type: 'ssh-key' },
      { data: { a: 'b' }, type: 'KV' },
      { data: { a: 'b' }, cas: -1 },
      { data: { a: 'b' }, cas: 1.5 },
      { data: { a: 'b' }, cas: '0' },
      { data: { a: 'b' }, cas: 2 ** 32 },
      { data: { a: 'b' }, expires_at: 'tomorrow' },
      { data: { a: 'b' }, expires_at: '2030-13-01T00:00:00Z' },
      { data: { a: 'b' }, expires_at: 1893456000 },
      { data: { a: 'b' }, metadata: { m: 1 } },
      { data: { a: 'b' }, metadata: { m: 'x'.repeat(1025) } },
      { data: { a: 'b' }, metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`m${i}`, 'v'])) },
      { data: { a: 'b' }, generate: 'password' },
      { data: { a: 'b' }, generate: { length: 10 } },
    ];
    for (const body of bad) assertError(await putJson(body), 400, 'invalid_request', JSON.stringify(body).slice(0, 80));
  });

  it('refuses a 70 KiB value with 413 too_large', async () => {
    const res = await putJson({ data: { big: 'v'.repeat(70 * 1024) } });
    assertError(res, 413, 'too_large');
    assert.ok(!res.text.includes('vvvvvvvv'));
  });

  it('refuses values that together exceed 64 KiB with 413 too_large', async () => {
    assertError(await putJson({ data: { a: 'v'.repeat(40 * 1024), b: 'w'.repeat(40 * 1024) } }), 413, 'too_large');
  });

  it('refuses a 2 MiB body with Content-Length with 413 too_large', async () => {
    const body = JSON.stringify({ data: { k: canary + 'x'.repeat(2 * 1024 * 1024) } });
    const res = await raw(agent, port, 'PUT', '/v1/secrets/app/body', {
      headers: { ...vault.auth, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) },
      body,
    });
    assertError(res, 413, 'too_large');
    assert.ok(!res.text.includes(canary));
  });

  it('refuses a 2 MiB chunked body without Content-Length with 413 too_large', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const chunks = [
      Buffer.from(`{"data":{"k":"${canary}`),
      ...Array.from({ length: 32 }, () => chunk),
      Buffer.from('"}}'),
    ];
    const res = await raw(agent, port, 'PUT', '/v1/secrets/app/body', {
      headers: { ...vault.auth, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
      chunks,
    });
    assertError(res, 413, 'too_large');
    assert.ok(!res.text.includes(canary));
    // The server keeps serving afterwards.
    assert.equal((await raw(agent, port, 'GET', '/v1/sys/health')).status, 200);
  });

  it('refuses bodies that are not application/json with 415', async () => {
    const body = JSON.stringify({ data: { k: canary } });
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/json; charset=utf-16',
      'application/jsonx',
      'text/json',
    ]) {
      const res = await request(vault.app)
        .put('/v1/secrets/app/body')
        .set(vault.auth)
        .set('Content-Type', type)
        .send(body);
      assertError(res, 415, 'unsupported_media_type', type);
      assert.ok(!res.text.includes(canary));
    }
  });

  it('refuses a body without Content-Type with 415', async () => {
    const body = JSON.stringify({ data: { k: canary } });
    const res = await raw(agent, port, 'PUT', '/v1/secrets/app/body', {
      headers: { ...vault.auth, 'Content-Length': String(body.length) },
      body,
    });
    assertError(res, 415, 'unsupported_media_type');
    const chunked = await raw(agent, port, 'PUT', '/v1/secrets/app/body', {
      headers: { ...vault.auth },
      chunks: [Buffer.from(body)],
    });
    assertError(chunked, 415, 'unsupported_media_type');
  });

  it('refuses a form-encoded body on the batch and unseal routes with 415', async () => {
    const batch = await request(vault.app).post('/v1/secrets:batch').set(vault.auth).type('form').send('paths=app/x');
    assertError(batch, 415, 'unsupported_media_type');
    const unseal = await request(vault.app).post('/v1/sys/unseal').type('form').send('reset=true');
    assertError(unseal, 415, 'unsupported_media_type');
  });

  it('ignores method override headers and fields', async () => {
    const res = await request(vault.app)
      .get('/v1/secrets/app/body')
      .set(vault.auth)
      .set('X-HTTP-Method-Override', 'PUT');
    assertError(res, 404, 'not_found');
    const put = await request(vault.app).get('/v1/secrets/app/body?_method=PUT').set(vault.auth);
    assert.equal(put.status, 400);
  });
});

describe('http bad input: query parameters', () => {
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
    for (let i = 0; i < 3; i++)
      await request(vault.app)
        .put('/v1/secrets/app/q')
        .set(vault.auth)
        .send({ data: { v: String(i + 1) } });
  });
  after(() => vault.cleanup());

  for (const value of [
    '-1',
    '0',
    '1e3',
    'NaN',
    '99999999999999999999',
    '3 OR 1',
    '',
    '+1',
    '01',
    '0x1',
    '1.0',
    '4294967296',
    ' 1',
    'Infinity',
    '1,2',
  ]) {
    it(`refuses ?version=${JSON.stringify(value)} with 400`, async () => {
      const res = await request(vault.app)
        .get(`/v1/secrets/app/q?version=${encodeURIComponent(value)}`)
        .set(vault.auth);
      assertError(res, 400, 'invalid_request');
    });
  }

  it('refuses a repeated ?version with 400', async () => {
    assertError(
      await request(vault.app).get('/v1/secrets/app/q?version=1&version=2').set(vault.auth),
      400,
      'invalid_request',
    );
  });

  it('refuses unknown query parameters with 400', async () => {
    assertError(await request(vault.app).get('/v1/secrets/app/q?versoin=1').set(vault.auth), 400, 'invalid_request');
    assertError(await request(vault.app).get('/v1/metadata/app/q?version=1').set(vault.auth), 400, 'invalid_request');
    assertError(await request(vault.app).get('/v1/secrets?prefix=app&foo=bar').set(vault.auth), 400, 'invalid_request');
  });

  it('every route the catalogue gives no query refuses one with 400 naming the field, before anything else happens', async () => {
    const { ROUTES } = await import('../../../server/http/route-catalogue.js');
    const before = await vault.store.scanPrefix('');
    const concrete = (path: string) =>
      path
        .replace(/\\:/g, ':')
        .replace('*path', 'app/q')
        .replace(/:(name|ns)/, 'probe');
    let checked = 0;
    for (const r of ROUTES) {
      if (r.query !== undefined) continue;
      const url = `${concrete(r.path)}?stray=1`;
      const res = await request(vault.app)
        [r.method.toLowerCase() as 'get'](url)
        .set(vault.auth)
        .set('Content-Type', r.method === 'PATCH' ? 'application/merge-patch+json' : 'application/json')
        .send(r.method === 'GET' || r.method === 'DELETE' ? undefined : '{}');
      assert.equal(res.status, 400, `${r.method} ${url}: ${res.status} ${res.text.slice(0, 200)}`);
      const message = res.body.error?.message ?? res.body.errors?.[0];
      assert.equal(message, 'query: unknown field stray', `${r.method} ${url}`);
      checked++;
    }
    assert.ok(checked > 60, `${checked} routes checked`);
    const after = await vault.store.scanPrefix('');
    const audit = (k: string) => k.startsWith('audit/');
    assert.deepEqual(
      after.filter(([k]) => !audit(k)).map(([k]) => k),
      before.filter(([k]) => !audit(k)).map(([k]) => k),
      'a refused request stores nothing',
    );
  });

  it('refuses bad ?versions= on delete with 400 and deletes nothing', async () => {
    for (const value of ['0', '-1', '1e3', 'NaN', '1,,2', '1;2', '3 OR 1', '', 'all']) {
      const res = await request(vault.app)
        .delete(`/v1/secrets/app/q?versions=${encodeURIComponent(value)}`)
        .set(vault.auth);
      assertError(res, 400, 'invalid_request', value);
    }
    const meta = await request(vault.app).get('/v1/metadata/app/q').set(vault.auth);
    assert.ok(meta.body.versions.every((v: { deleted_at: string | null }) => v.deleted_at === null));
  });

  it('refuses bad version lists on undelete and destroy with 400 and changes nothing', async () => {
    for (const versions of [[], [0], [-1], [1.5], ['1'], 'all', null, Array.from({ length: 101 }, (_, i) => i + 1)]) {
      for (const action of ['undelete', 'destroy']) {
        const res = await request(vault.app).post(`/v1/secrets/app/q/${action}`).set(vault.auth).send({ versions });
        assertError(res, 400, 'invalid_request', `${action} ${JSON.stringify(versions)}`);
      }
    }
    const meta = await request(vault.app).get('/v1/metadata/app/q').set(vault.auth);
    assert.ok(meta.body.versions.every((v: { destroyed: boolean }) => !v.destroyed));
  });

  it('bounds a deep or huge query string', async () => {
    const deep = await request(vault.app).get('/v1/secrets/app/q?a[b][c][d][e][f][g]=1').set(vault.auth);
    assertError(deep, 400, 'invalid_request');
    const many = Array.from({ length: 2000 }, (_, i) => `p${i}=1`).join('&');
    const res = await request(vault.app).get(`/v1/secrets/app/q?${many}`).set(vault.auth);
    assert.equal(res.status, 400);
  });
});

describe('http bad input: tokens', () => {
  let vault: TestVault;
  let server: http.Server;
  let port: number;
  let agent: http.Agent;
  before(async () => {
    vault = await openVault();
    ({ server, port, agent } = await listen(vault));
    await request(vault.app)
      .put('/v1/secrets/app/t')
      .set(vault.auth)
      .send({ data: { v: 'token-test' } });
  });
  after(async () => {
    await stopListening(server, agent);
    await vault.cleanup();
  });

  it('answers 401 unauthenticated without a token', async () => {
    const res = await request(vault.app).get('/v1/secrets/app/t');
    assertError(res, 401, 'unauthenticated');
    assert.ok(!res.text.includes('token-test'));
  });

  it('answers 401 unauthenticated for a wrong token, in either header', async () => {
    for (const headers of [
      { Authorization: 'Bearer cof_root_wrong' },
      { Authorization: `Bearer ${vault.rootToken}x` },
      { Authorization: `Bearer ${vault.rootToken.slice(0, -1)}` },
      { 'X-Vault-Token': 'cof_root_wrong' },
    ]) {
      const res = await request(vault.app).get('/v1/secrets/app/t').set(headers);
      assertError(res, 401, 'unauthenticated', JSON.stringify(Object.keys(headers)));
      assert.ok(!res.text.includes(vault.rootToken.slice(9, 30)));
    }
  });

  it('does not write with a wrong token', async () => {
    const res = await request(vault.app)
      .put('/v1/secrets/app/t')
      .set({ Authorization: 'Bearer nope' })
      .send({ data: { v: 'overwritten' } });
    assertError(res, 401, 'unauthenticated');
    assert.deepEqual((await request(vault.app).get('/v1/secrets/app/t').set(vault.auth)).body.data, {
      v: 'token-test',
    });
  });

  it('ignores a token in the query string or a cookie: 401', async () => {
    for (const q of ['token', 'access_token', 'X-Vault-Token']) {
      const res = await request(vault.app).get(`/v1/secrets/app/t?${q}=${encodeURIComponent(vault.rootToken)}`);
      assertError(res, 401, 'unauthenticated', q);
    }
    const cookie = await request(vault.app).get('/v1/secrets/app/t').set('Cookie', `token=${vault.rootToken}`);
    assertError(cookie, 401, 'unauthenticated');
  });

  it('accepts the token in X-Vault-Token, and the same token in both headers', async () => {
    assert.equal((await request(vault.app).get('/v1/secrets/app/t').set('X-Vault-Token', vault.rootToken)).status, 200);
    assert.equal(
      (await request(vault.app).get('/v1/secrets/app/t').set(vault.auth).set('X-Vault-Token', vault.rootToken)).status,
      200,
    );
  });

  it('refuses different tokens in Authorization and X-Vault-Token with 400', async () => {
    const res = await request(vault.app)
      .get('/v1/secrets/app/t')
      .set(vault.auth)
      .set('X-Vault-Token', 'cof_root_other');
    assertError(res, 400, 'invalid_request');
    assert.ok(!res.text.includes(vault.rootToken));
    assert.ok(!res.text.includes('cof_root_other'));
    assert.ok(!res.text.includes('token-test'));
  });

  it('refuses "Bearer a, Bearer b" with 400', async () => {
    const res = await request(vault.app)
      .get('/v1/secrets/app/t')
      .set('Authorization', `Bearer ${vault.rootToken}, Bearer other`);
    assertError(res, 400, 'invalid_request');
    assert.ok(!res.text.includes(vault.rootToken));
  });

  it('refuses two Authorization headers with 400, even when one is valid', async () => {
    const res = await raw(agent, port, 'GET', '/v1/secrets/app/t', {
      headers: { Authorization: [`Bearer ${vault.rootToken}`, 'Bearer other'] },
    });
    assertError(res, 400, 'invalid_request');
    const same = await raw(agent, port, 'GET', '/v1/secrets/app/t', {
      headers: { Authorization: [`Bearer ${vault.rootToken}`, `Bearer ${vault.rootToken}`] },
    });
    assertError(same, 400, 'invalid_request');
  });

  it('refuses malformed Authorization headers with 400', async () => {
    for (const value of [
      vault.rootToken,
      `bearer ${vault.rootToken}`,
      `Basic ${vault.rootToken}`,
      `Bearer  ${vault.rootToken}`,
      'Bearer',
      `Bearer ${'a'.repeat(8193)}`,
      'Token x',
    ]) {
      const res = await request(vault.app).get('/v1/secrets/app/t').set('Authorization', value);
      assertError(res, 400, 'invalid_request', value.slice(0, 20));
    }
  });
});

describe('http bad input: methods, error shape, headers, leaks and prototype pollution', () => {
  let vault: TestVault;
  let server: http.Server;
  let port: number;
  let agent: http.Agent;
  const canary = 'CANARY-leak-3b94e0d7';
  before(async () => {
    vault = await openVault();
    ({ server, port, agent } = await listen(vault));
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/app/canary')
          .set(vault.auth)
          .send({ data: { secret: canary } })
      ).status,
      200,
    );
  });
  after(async () => {
    await stopListening(server, agent);
    await vault.cleanup();
  });

  it('answers 405 with an Allow header for an unknown method on a secret route, and changes nothing', async () => {
    const patch = await request(vault.app)
      .patch('/v1/secrets/app/canary')
      .set(vault.auth)
      .send({ data: { secret: 'patched' } });
    assertError(patch, 405, 'method_not_allowed');
    const allow = String(patch.headers.allow).split(/,\s*/).sort();
    assert.deepEqual(allow, ['DELETE', 'GET', 'HEAD', 'POST', 'PUT']);
    assertError(
      await request(vault.app).patch('/v1/metadata/app/canary').set(vault.auth).send({}),
      405,
      'method_not_allowed',
    );
    assertError(
      await request(vault.app)
        .put('/v1/metadata/app/canary')
        .set(vault.auth)
        .send({ data: { secret: 'x' } }),
      405,
      'method_not_allowed',
    );
    assertError(await request(vault.app).delete('/v1/secrets').set(vault.auth), 405, 'method_not_allowed');
    assertError(await request(vault.app).get('/v1/secrets:batch').set(vault.auth), 405, 'method_not_allowed');
    const other = await raw(agent, port, 'PROPFIND', '/v1/secrets/app/canary', { headers: vault.auth });
    assert.ok(other.status === 405 || other.status === 400 || other.status === 501, `PROPFIND: ${other.status}`);
    assert.ok(!other.text.includes(canary));
    const get = await request(vault.app).get('/v1/secrets/app/canary').set(vault.auth);
    assert.equal(get.body.version, 1);
    assert.deepEqual(get.body.data, { secret: canary });
  });

  it('answers HEAD like GET without a body, and authorises it the same way', async () => {
    const head = await request(vault.app).head('/v1/secrets/app/canary').set(vault.auth);
    assert.equal(head.status, 200);
    assert.ok(!head.text);
    assert.equal((await request(vault.app).head('/v1/secrets/app/canary')).status, 401);
  });

  it('gives every error the shape {error:{code,message,request_id}} with request_id equal to X-Request-Id', async () => {
    const responses = [
      await request(vault.app).get('/v1/secrets/app/missing').set(vault.auth),
      await request(vault.app).get('/v1/secrets/app/canary'),
      await request(vault.app).get('/v1/secrets/app/canary?version=0').set(vault.auth),
      await request(vault.app)
        .put('/v1/secrets/app/canary')
        .set(vault.auth)
        .send({ data: { secret: 'x' }, cas: 0 }),
      await request(vault.app)
        .put('/v1/secrets/app/new')
        .set(vault.auth)
        .send({ data: { a: 'v'.repeat(70 * 1024) } }),
      await request(vault.app).put('/v1/secrets/app/new').set(vault.auth).set('Content-Type', 'text/plain').send('x'),
      await request(vault.app).patch('/v1/secrets/app/canary').set(vault.auth),
      await request(vault.app).get('/v1/nothing').set(vault.auth),
      await raw(agent, port, 'GET', '/v1/secrets/app/%2e%2e/x', { headers: vault.auth }),
    ];
    const codes = new Set<string>();
    const ids = new Set<string>();
    for (const res of responses) {
      assert.ok(res.status >= 400, String(res.status));
      const body = res.body as { error: { code: string; message: string; request_id: string } };
      // An unknown first segment may be a Vault mount a Vault client asks for: Vault's `errors` beside (docs/vault-compatibility.md).
      assert.deepEqual(Object.keys(body), res === responses[7] /* GET /v1/nothing */ ? ['error', 'errors'] : ['error']);
      assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'request_id']);
      assert.match(body.error.code, /^[a-z_]+$/);
      assert.ok(body.error.message.length > 0);
      assert.match(body.error.request_id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.equal(res.headers['x-request-id'], body.error.request_id);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      codes.add(body.error.code);
      ids.add(body.error.request_id);
    }
    assert.equal(ids.size, responses.length, 'request ids are unique');
    assert.deepEqual([...codes].sort(), [
      'cas_mismatch',
      'invalid_path',
      'invalid_request',
      'method_not_allowed',
      'not_found',
      'too_large',
      'unauthenticated',
      'unsupported_media_type',
    ]);
  });

  it('carries X-Request-Id on successful responses too', async () => {
    const res = await request(vault.app).get('/v1/sys/health');
    assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  });

  it('never puts a secret value in any error response', async () => {
    const longCanary = canary.repeat(80);
    const put = (body: unknown, path = 'app/canary') =>
      request(vault.app)
        .put(`/v1/secrets/${path}`)
        .set(vault.auth)
        .send(body as object);
    const putText = (text: string, type = 'application/json') =>
      request(vault.app).put('/v1/secrets/app/canary').set(vault.auth).set('Content-Type', type).send(text);
    const responses = [
      await request(vault.app).get('/v1/secrets/app/canary'),
      await request(vault.app).get('/v1/secrets/app/canary').set('Authorization', 'Bearer wrong'),
      await request(vault.app).get('/v1/secrets/app/canary?version=2').set(vault.auth),
      await request(vault.app).get('/v1/secrets/app/canary?version=x').set(vault.auth),
      await put({ data: { secret: canary }, cas: 0 }),
      await put({ data: { secret: canary }, cas: 7 }),
      await put({ data: { secret: canary }, unknown: canary }),
      await put({ data: { secret: canary }, type: canary }),
      await put({ data: { secret: canary }, expires_at: canary }),
      await put({ data: { secret: [canary] } }),
      await put({ data: { secret: { nested: canary } } }),
      await put({ data: { secret: 5 }, metadata: { m: longCanary } }),
      await put({ data: { secret: canary.repeat(4000) } }),
      await put({ type: 'certificate', data: { certificate: canary } }),
      await put({
        type: 'certificate',
        data: { certificate: `-----BEGIN CERTIFICATE-----\n${canary}\n-----END CERTIFICATE-----` },
      }),
      await put({ data: { secret: canary }, generate: { key: 'secret' } }),
      await putText(`{"data":{"secret":"${canary}"`),
      await putText(`{"data":{"secret":"${canary}","secret":"${canary}"}}`),
      await putText(`{"data":{"secret":"${canary}"},"x":${'['.repeat(64)}${']'.repeat(64)}}`),
      await putText(`{"data":{"secret":"${canary}"}}`, 'text/plain'),
      await raw(agent, port, 'PUT', '/v1/secrets/app/../canary', {
        headers: { ...vault.auth, 'Content-Type': 'application/json' },
        body: `{"data":{"secret":"${canary}"}}`,
      }),
      await request(vault.app)
        .patch('/v1/secrets/app/canary')
        .set(vault.auth)
        .send({ data: { secret: canary } }),
      await request(vault.app)
        .post('/v1/secrets:batch')
        .set(vault.auth)
        .send({ paths: ['app/canary', '../x'] }),
      await request(vault.app)
        .post('/v1/secrets/app/canary/rollback')
        .set(vault.auth)
        .send({ versions: [1] }),
      await request(vault.app).get('/v1/secrets/app/canary').set(vault.auth).set('X-Vault-Token', canary),
    ];
    for (const [i, res] of responses.entries()) {
      assert.ok(res.status >= 400, `request ${i} succeeded: ${res.status}`);
      assert.ok(
        !res.text.includes(canary),
        `error response ${i} (${res.status}) contains the secret value: ${res.text.slice(0, 200)}`,
      );
      assert.ok(!res.text.includes(vault.rootToken), `error response ${i} contains the root token`);
      assert.ok(!JSON.stringify(res.headers).includes(canary), `response ${i} headers contain the secret value`);
    }
    assert.deepEqual((await request(vault.app).get('/v1/secrets/app/canary').set(vault.auth)).body.data, {
      secret: canary,
    });
    assert.equal((await request(vault.app).get('/v1/metadata/app/canary').set(vault.auth)).body.current_version, 1);
  });

  it('sends Cache-Control: no-store and no ETag on secrets, metadata, lists and errors', async () => {
    const responses = [
      await request(vault.app).get('/v1/secrets/app/canary').set(vault.auth),
      await request(vault.app).get('/v1/metadata/app/canary').set(vault.auth),
      await request(vault.app).get('/v1/secrets?prefix=app').set(vault.auth),
      await request(vault.app)
        .post('/v1/secrets:batch')
        .set(vault.auth)
        .send({ paths: ['app/canary'] }),
      await request(vault.app)
        .put('/v1/secrets/app/cache')
        .set(vault.auth)
        .send({ data: { a: 'b' } }),
      await request(vault.app).get('/v1/secrets/app/nothing').set(vault.auth),
      await request(vault.app).get('/v1/secrets/app/canary'),
      await request(vault.app).get('/v1/sys/seal-status'),
    ];
    for (const [i, res] of responses.entries()) {
      assert.equal(res.headers['cache-control'], 'no-store', `response ${i} (${res.status})`);
      assert.equal(res.headers.etag, undefined, `response ${i} has an ETag`);
      assert.equal(res.headers['x-powered-by'], undefined);
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
    }
  });

  it('does not answer a conditional GET with 304: there is no validator to compare', async () => {
    const res = await request(vault.app).get('/v1/secrets/app/canary').set(vault.auth).set('If-None-Match', 'W/"0-0"');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.data, { secret: canary });
    const since = await request(vault.app)
      .get('/v1/secrets/app/canary')
      .set(vault.auth)
      .set('If-Modified-Since', new Date(Date.now() + 3_600_000).toUTCString());
    assert.equal(since.status, 200);
  });

  it('does not let __proto__, constructor or prototype in a body or query pollute Object.prototype', async () => {
    const refused = [
      '{"data":{"a":"b"},"__proto__":{"polluted":"yes"}}',
      '{"data":{"__proto__":{"polluted":"yes"}}}',
      '{"data":{"a":"b","constructor":{"prototype":{"polluted":"yes"}}}}',
      '{"data":{"a":"b"},"generate":{"key":"__proto__"}}',
      '{"data":{"a":"b"},"constructor":{"prototype":{"polluted":"yes"}}}',
    ];
    for (const text of refused) {
      const res = await request(vault.app)
        .put('/v1/secrets/app/proto')
        .set(vault.auth)
        .set('Content-Type', 'application/json')
        .send(text);
      assertError(res, 400, 'invalid_request', text);
    }
    // Whatever the answer to a __proto__ key in data or metadata, it pollutes nothing and is never stored as a key.
    for (const text of [
      '{"data":{"__proto__":"yes"}}',
      '{"data":{"a":"b"},"metadata":{"__proto__":"yes"}}',
      '{"data":{"a":"b"},"metadata":{"__proto__":{"polluted":"yes"}}}',
      '{"data":{"a":"b","__proto__":"yes"}}',
    ]) {
      const res = await request(vault.app)
        .put('/v1/secrets/app/proto-string')
        .set(vault.auth)
        .set('Content-Type', 'application/json')
        .send(text);
      assert.ok(res.status === 200 || res.status === 400, `${text}: ${res.status}`);
    }
    const stored = await request(vault.app).get('/v1/secrets/app/proto-string').set(vault.auth);
    if (stored.status === 200) {
      assert.ok(!Object.keys(stored.body.data).includes('__proto__'));
      assert.ok(!Object.keys(stored.body.metadata).includes('__proto__'));
    }
    const batch = await request(vault.app)
      .post('/v1/secrets:batch')
      .set(vault.auth)
      .set('Content-Type', 'application/json')
      .send('{"paths":["app/canary"],"__proto__":{"polluted":"yes"}}');
    assertError(batch, 400, 'invalid_request');
    for (const q of [
      '__proto__[polluted]=yes',
      '__proto__.polluted=yes',
      'constructor[prototype][polluted]=yes',
      '__proto__=yes',
    ]) {
      const res = await request(vault.app).get(`/v1/secrets/app/canary?${q}`).set(vault.auth);
      assertError(res, 400, 'invalid_request', q);
    }
    const header = await request(vault.app).get('/v1/secrets/app/canary').set(vault.auth).set('__proto__', 'yes');
    assert.equal(header.status, 200);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
    assertError(await request(vault.app).get('/v1/metadata/app/proto').set(vault.auth), 404, 'not_found');
  });

  it('refuses __proto__ as a data or metadata key with 400 instead of silently dropping it', async () => {
    // sdk/wire/schemas.ts declares "__proto__" a reserved key: a write that names it must fail, not lose the key.
    for (const [path, text] of [
      ['app/proto-data', '{"data":{"a":"b","__proto__":"yes"}}'],
      ['app/proto-meta', '{"data":{"a":"b"},"metadata":{"__proto__":"yes"}}'],
    ] as const) {
      const res = await request(vault.app)
        .put(`/v1/secrets/${path}`)
        .set(vault.auth)
        .set('Content-Type', 'application/json')
        .send(text);
      assertError(res, 400, 'invalid_request', text);
      assertError(await request(vault.app).get(`/v1/metadata/${path}`).set(vault.auth), 404, 'not_found');
    }
  });

  it('refuses an undecodable percent sequence in a keyring name with 400, not 500', async () => {
    for (const ns of ['%zz', '%C0%AE', 'a%']) {
      const res = await raw(agent, port, 'GET', `/v1/sys/keyrings/${ns}`, { headers: vault.auth });
      assertError(res, 400, 'invalid_path', ns);
    }
    for (const ns of ['..', '%2e%2e', 'a%2Fb', 'caf%C3%A9']) {
      const res = await raw(agent, port, 'GET', `/v1/sys/keyrings/${ns}`, { headers: vault.auth });
      assertError(res, 400, 'invalid_path', ns);
    }
  });
});

describe('http bad input: approle secret-id body', () => {
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
    assert.equal((await request(vault.app).put('/v1/auth/approle/roles/builder').set(vault.auth).send({})).status, 200);
  });
  after(() => vault.cleanup());

  it('refuses fields in the body of POST …/secret-id (it takes none), and issues nothing', async () => {
    for (const body of [{ ttl: 60 }, { secret_id: 'mine' }, { num_uses: 0 }]) {
      const res = await request(vault.app).post('/v1/auth/approle/roles/builder/secret-id').set(vault.auth).send(body);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'invalid_request');
      assert.equal(res.body.secret_id, undefined);
    }
    const ok = await request(vault.app).post('/v1/auth/approle/roles/builder/secret-id').set(vault.auth).send({});
    assert.equal(ok.status, 200);
    assert.match(ok.body.secret_id, /./);
  });
});

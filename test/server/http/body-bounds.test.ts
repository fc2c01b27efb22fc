import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { MAX_BODY_BYTES } from '../../../server/http/body.js';
import { openVault, type TestVault } from '../../helpers.js';

/**
 * The JSON body reader at its bounds (server/http/body.ts, docs/api.md "Transport",
 * SECURITY-CASES D2 and D8), over real sockets with the exact bytes given: supertest would
 * serialise a Buffer as JSON, so every body here goes out as raw bytes.
 */

interface Answer {
  status: number;
  body: any;
}

function parse(status: number, text: string): Answer {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status, body };
}

describe('http body: UTF-8, byte order mark and size bounds', function () {
  this.timeout(30_000);
  let vault: TestVault;
  let server: http.Server;
  let port: number;

  before(async () => {
    vault = await openVault();
    server = http.createServer(vault.app).listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await vault.cleanup();
  });

  /** One request with exactly these body bytes; `chunked` sends them without a Content-Length. */
  function send(
    body: Buffer | undefined,
    options: {
      path?: string;
      method?: string;
      headers?: Record<string, string>;
      chunked?: boolean;
      agent?: http.Agent;
    } = {},
  ): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...vault.auth, 'Content-Type': 'application/json', ...options.headers };
      if (body && !options.chunked) headers['Content-Length'] = String(body.length);
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: options.method ?? 'PUT',
          path: options.path ?? '/v1/secrets/app/body',
          headers,
          agent: options.agent ?? false,
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => resolve(parse(res.statusCode ?? 0, Buffer.concat(parts).toString('utf8'))));
        },
      );
      req.on('error', reject);
      if (body && options.chunked) {
        for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024));
        req.end();
      } else req.end(body);
    });
  }
  const json = (text: string) => Buffer.from(text, 'utf8');
  const refused = (res: Answer, status: number, code: string, message?: string) => {
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(res.body?.error?.code, code, JSON.stringify(res.body));
    if (message !== undefined) assert.equal(res.body.error.message, message);
  };
  const stored = async (path = 'app/body') =>
    (await request(vault.app).get(`/v1/secrets/${path}`).set(vault.auth)).body?.data;

  /** `{"data":{"k":"v"}}` followed by spaces to exactly `size` bytes: valid JSON of any length. */
  const padded = (size: number, value = 'v') => {
    const text = Buffer.from(`{"data":{"k":"${value}"}}`);
    return Buffer.concat([text, Buffer.alloc(size - text.length, 0x20)]);
  };

  it('refuses a body that starts with a UTF-8 byte order mark with 400, and stores nothing', async () => {
    const res = await send(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json('{"data":{"k":"bom"}}')]), {
      path: '/v1/secrets/app/bom',
    });
    refused(res, 400, 'invalid_request', 'request body must not start with a byte order mark');
    assert.equal((await request(vault.app).get('/v1/secrets/app/bom').set(vault.auth)).status, 404);
  });

  it('refuses invalid UTF-8 with 400 instead of replacing it with U+FFFD', async () => {
    for (const [what, bytes] of [
      ['C3 28 (a lead byte without its continuation)', [0xc3, 0x28]],
      ['C0 AE (overlong)', [0xc0, 0xae]],
      ['80 (a lone continuation byte)', [0x80]],
      ['ED A0 80 (an encoded surrogate)', [0xed, 0xa0, 0x80]],
      ['FF', [0xff]],
    ] as const) {
      const res = await send(Buffer.concat([json('{"data":{"k":"x'), Buffer.from(bytes), json('"}}')]), {
        path: '/v1/secrets/app/utf8',
      });
      refused(res, 400, 'invalid_request', 'request body is not valid UTF-8');
      assert.ok(!JSON.stringify(res.body).includes('\ufffd'), what);
    }
    refused(
      await send(Buffer.concat([json('{"data":{"k":"x"}}'), Buffer.from([0xe2, 0x82])])),
      400,
      'invalid_request',
      'request body is not valid UTF-8',
    );
    assert.equal((await request(vault.app).get('/v1/secrets/app/utf8').set(vault.auth)).status, 404);
  });

  it('keeps valid multi-byte UTF-8 byte for byte, and a BOM-like character later in the body', async () => {
    const value = 'caf\u00e9 \u20ac \u{1f510} \ufeff';
    assert.equal((await send(json(`{"data":{"k":"${value}"}}`), { path: '/v1/secrets/app/utf8ok' })).status, 200);
    assert.deepEqual(await stored('app/utf8ok'), { k: value });
  });

  it('accepts a body of exactly 1 MiB and refuses 1 MiB + 1 byte, with Content-Length and chunked', async () => {
    assert.equal(MAX_BODY_BYTES, 1024 * 1024);
    assert.equal((await send(padded(MAX_BODY_BYTES, 'exact'))).status, 200);
    assert.deepEqual(await stored(), { k: 'exact' });
    refused(
      await send(padded(MAX_BODY_BYTES + 1, 'over')),
      413,
      'too_large',
      `request body exceeds ${MAX_BODY_BYTES} bytes`,
    );
    assert.equal((await send(padded(MAX_BODY_BYTES, 'chunked'), { chunked: true })).status, 200);
    assert.deepEqual(await stored(), { k: 'chunked' });
    refused(
      await send(padded(MAX_BODY_BYTES + 1, 'chunked-over'), { chunked: true }),
      413,
      'too_large',
      `request body exceeds ${MAX_BODY_BYTES} bytes`,
    );
    assert.deepEqual(await stored(), { k: 'chunked' }, 'the refused bodies changed nothing');
  });

  it('answers a 2 MiB Content-Length with 413 at once, without waiting for a body that never comes', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const answer = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\r\n\r\n') && text.includes('}}')) resolve(text);
      });
    });
    const started = Date.now();
    socket.write(
      `PUT /v1/secrets/app/huge HTTP/1.1\r\nHost: x\r\nAuthorization: ${vault.auth.Authorization}\r\nContent-Type: application/json\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n{"data":`,
    );
    const text = await Promise.race([
      answer,
      new Promise<string>((resolve) => setTimeout(() => resolve('(no answer in 5 s)'), 5_000)),
    ]);
    socket.destroy();
    assert.match(text, /^HTTP\/1\.1 413 /, text);
    assert.match(text, /"code":"too_large"/);
    assert.ok(Date.now() - started < 5_000);
    assert.equal((await request(vault.app).get('/v1/secrets/app/huge').set(vault.auth)).status, 404);
  });

  it('takes Content-Length: 0 as no body ({}), whatever the Content-Type', async () => {
    for (const type of ['application/json', 'text/plain', '']) {
      const headers: Record<string, string> = { 'Content-Length': '0', 'Content-Type': type };
      const res = await send(undefined, { path: '/v1/secrets/app/empty', headers });
      refused(res, 400, 'invalid_request');
      assert.match(res.body.error.message, /data/, 'the schema saw an empty object');
    }
    // A body-less route answers normally with Content-Length: 0.
    const renew = await send(undefined, {
      method: 'POST',
      path: '/v1/secrets:batch',
      headers: { 'Content-Length': '0', 'Content-Type': 'text/plain' },
    });
    refused(renew, 400, 'invalid_request');
  });

  it('takes a request with neither Content-Length nor Transfer-Encoding as no body ({}), not as a body of unknown type', async () => {
    // Raw bytes: node's client would add `Content-Length: 0` itself. Two requests on one connection,
    // so a reader that waited for a body would leave the second unanswered.
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    let text = '';
    const answered = new Promise<void>((resolve) => {
      socket.on('data', (d: Buffer) => {
        text += d.toString();
        if ((text.match(/HTTP\/1\.1 /g) ?? []).length === 2 && text.endsWith('}')) resolve();
      });
    });
    const head = (path: string) =>
      `PUT ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${vault.auth.Authorization}\r\n\r\n`;
    socket.write(head('/v1/secrets/app/no-length') + head('/v1/secrets/app/no-length-2'));
    await Promise.race([answered, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    socket.destroy();
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['400', '400'], text);
    assert.equal((text.match(/"code":"invalid_request"/g) ?? []).length, 2, text);
    assert.match(text, /data/, 'the schema saw an empty object');
    assert.equal(await stored('app/no-length'), undefined);
  });

  it('refuses a non-JSON type with 415 and a body too large with 413, then serves the next request on the same connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      refused(
        await send(padded(200_000), { agent, headers: { 'Content-Type': 'text/plain' } }),
        415,
        'unsupported_media_type',
      );
      const after415 = await send(json('{"data":{"k":"next"}}'), { agent, path: '/v1/secrets/app/next' });
      assert.equal(after415.status, 200, JSON.stringify(after415.body));
      refused(await send(padded(MAX_BODY_BYTES + 10), { agent, chunked: true }), 413, 'too_large');
      const after413 = await send(json('{"data":{"k":"again"}}'), { agent, path: '/v1/secrets/app/next' });
      assert.equal(after413.status, 200, JSON.stringify(after413.body));
      assert.deepEqual(await stored('app/next'), { k: 'again' });
    } finally {
      agent.destroy();
    }
  });

  it('accepts application/json with charset=utf-8 in any case and refuses other charsets with 415', async () => {
    for (const type of [
      'application/json',
      'application/json; charset=utf-8',
      'Application/JSON;charset=UTF-8',
      'application/json ; charset=utf-8',
      'application/json;  charset=utf-8  ',
      'application/json\t;\tcharset=utf-8',
    ]) {
      assert.equal(
        (await send(json('{"data":{"k":"t"}}'), { path: '/v1/secrets/app/type', headers: { 'Content-Type': type } }))
          .status,
        200,
        type,
      );
    }
    for (const type of [
      'application/json; charset=utf-16',
      'application/json; charset=latin1',
      'application/jsonx',
      'text/json',
      'application/json; charset=utf-8; x=y',
      'x-application/json',
      'text/application/json',
      'application/json;xcharset=utf-8',
      'application/json; charset=utf-8x',
      'application/json; charset=utf-8 x',
    ]) {
      refused(
        await send(json('{"data":{"k":"t"}}'), { path: '/v1/secrets/app/type', headers: { 'Content-Type': type } }),
        415,
        'unsupported_media_type',
        'request body must be application/json (UTF-8)',
      );
    }
  });
});

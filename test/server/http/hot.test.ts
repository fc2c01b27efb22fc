import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import parseurl from 'parseurl';
import request from 'supertest';
import { openVault, tokenWith, type TestVault } from '../../helpers.js';
import { raw, rawRequests } from './vault/fixture.js';

/**
 * The hot dispatcher (server/http/hot.ts) answers the per-build routes without express. It must
 * be indistinguishable from the express router it stands in front of: the same edge steps in the
 * same order, the same route for every path it claims, and the same answer and audit line for
 * every request, allowed or refused. Every other HTTP test drives `vault.app`, the dispatcher.
 */
describe('hot dispatcher', function () {
  this.timeout(30_000);
  let vault: TestVault;
  let reader: Record<string, string>;
  let writer: Record<string, string>;

  before(async () => {
    vault = await openVault();
    reader = await tokenWith(vault, 'hot-reader', [{ path: 'team/**', capabilities: ['read'] }]);
    writer = await tokenWith(vault, 'hot-writer', [{ path: 'team/**', capabilities: ['create', 'update', 'read'] }]);
    for (const [path, value] of [
      ['team/db', 'one'],
      ['team/gone', 'two'],
      ['other/key', 'three'],
    ] as const) {
      assert.equal(
        (await request(vault.app).put(`/v1/secrets/${path}`).set(vault.auth).send({ data: { value } })).status,
        200,
      );
    }
    await request(vault.app).delete('/v1/secrets/team/gone').set(vault.auth).expect(204);
    await request(vault.app)
      .put('/v1/secrets/team/db')
      .set(vault.auth)
      .send({ data: { value: 'one-b' } })
      .expect(200);
  });
  after(() => vault.cleanup());

  type Layer = {
    name: string;
    route?: { path: string; methods: Record<string, boolean> };
    handle: { stack?: Layer[] };
    match(path: string): boolean;
  };
  /** The app's one flat router (app.ts), as express walks it. */
  const stack = () => {
    const app = vault.app.express as unknown as { router: { stack: Layer[] } };
    return app.router.stack.find((l) => l.handle.stack)!.handle.stack!;
  };

  it('runs the middleware express runs before the hot routes, in the same order', () => {
    const layers = stack();
    for (const path of ['/v1/secrets/team/db', '/v1/secrets:batch', '/v1/auth/token/self', '/v1/secret/data/team/db']) {
      const route = layers.findIndex((l) => l.route && l.match(path));
      const hotRoute = vault.app.hot.routes.find((r) => r.pattern === layers[route]?.route?.path);
      assert.ok(hotRoute, path);
      // What express runs for this path before its route: the middleware whose path matches it.
      const middleware = layers
        .slice(0, route)
        .filter((l) => !l.route && l.match(path))
        .map((l) => l.name);
      assert.deepEqual(middleware, hotRoute.before, path);
      assert.deepEqual(hotRoute.before.slice(0, 2), ['stampRequest', 'vaultEdge']);
      assert.equal(hotRoute.before.at(-1), 'authenticate');
      assert.ok(!hotRoute.before.includes('<anonymous>') && !hotRoute.before.includes(''));
    }
  });

  const samples = [
    ['GET', '/v1/secrets/team/db'],
    ['GET', '/v1/secrets/team/db?version=1'],
    ['GET', '/v1/secrets/a'],
    ['GET', '/v1/secrets/a/b/c/'],
    ['GET', '/v1/secrets/'],
    ['GET', '/v1/secrets'],
    ['GET', '/v1/secretsx/a'],
    ['GET', '/v1/Secrets/a'],
    ['GET', '/v1/secrets/a%2Fb'],
    ['POST', '/v1/secrets/team/db'],
    ['HEAD', '/v1/secrets/team/db'],
    ['POST', '/v1/secrets:batch'],
    ['POST', '/v1/secrets:batch?x=1'],
    ['POST', '/v1/secrets:batch/'],
    ['GET', '/v1/secrets:batch'],
    ['GET', '/v1/auth/token/self'],
    ['GET', '/v1/auth/token/self/'],
    ['GET', '/v1/auth/token/selfish'],
    ['GET', '/v1/secret/data/team/db'],
    ['GET', '/v1/secret/data/'],
    ['GET', '/v1/secret/metadata/team/db'],
    ['PUT', '/v1/secrets/team/db'],
    ['PUT', '/v1/secrets/'],
    ['DELETE', '/v1/secrets/team/db'],
    ['GET', '/v1/secrets/#'],
    ['GET', '/v1/secrets/a#b'],
    ['GET', '/v1/secrets/a?version=1#b'],
    ['GET', 'http://host/v1/secrets/a'],
    ['GET', '//v1/secrets/a'],
    ['GET', '/v1/secrets/a;b'],
    ['GET', '/v1/secrets//a'],
  ] as const;

  it('claims a request only for the route express would give it', () => {
    const layers = stack();
    let claimed = 0;
    for (const [method, url] of samples) {
      const route = vault.app.hot.claims(method, url);
      if (!route) continue;
      claimed++;
      const path = parseurl({ url } as IncomingMessage)!.pathname!; // what express's router matches
      const first = layers.find((l) => l.route && l.match(path));
      assert.equal(first?.route?.path, route.pattern, `${method} ${url}`);
      assert.equal(first?.route?.methods[method.toLowerCase()], true, `${method} ${url}`);
    }
    assert.equal(claimed, 11, 'the sample holds eleven hot requests');
    for (const [method, url] of [
      ['HEAD', '/v1/secrets/team/db'],
      ['GET', '/v1/secrets/'],
      ['GET', '/v1/secrets/a%2Fb'],
      ['DELETE', '/v1/secrets/team/db'],
      ['PATCH', '/v1/secrets/team/db'],
      ['GET', '/v1/secrets/#'],
      ['GET', '/v1/secrets/a?version=1#b'],
      ['GET', 'http://host/v1/secrets/a'],
    ] as const)
      assert.equal(vault.app.hot.claims(method, url), undefined, `${method} ${url} is left to express`);
  });

  /** The audit lines of the two requests, without what differs between any two requests. */
  async function lastLines(n: number): Promise<Record<string, unknown>[]> {
    const text = await readFile(vault.auditFile, 'utf8');
    return text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.type === 'request')
      .slice(-n)
      .map(({ request_id: _id, time: _time, seq: _seq, prev: _prev, ...rest }) => rest);
  }

  type Build = (test: request.Test) => request.Test;
  const get = (url: string, build: Build = (t) => t.set(reader)) => ['GET', url, build] as const;
  const put = (url: string, build: Build) => ['PUT', url, (t: request.Test) => build(t.set(writer))] as const;
  const batch = (build: Build) => ['POST', '/v1/secrets:batch', (t: request.Test) => build(t.set(reader))] as const;
  const cases: [string, readonly [string, string, Build]][] = [
    ['a read', get('/v1/secrets/team/db')],
    ['an old version', get('/v1/secrets/team/db?version=1')],
    ['a bad query', get('/v1/secrets/team/db?version=x')],
    ['an unknown query field', get('/v1/secrets/team/db?nope=1')],
    ['a denied read', get('/v1/secrets/other/key')],
    ['a missing secret', get('/v1/secrets/team/none')],
    ['a deleted secret', get('/v1/secrets/team/gone')],
    ['an invalid path', get('/v1/secrets/team//db')],
    ['no token', get('/v1/secrets/team/db', (t) => t)],
    ['a bad token', get('/v1/secrets/team/db', (t) => t.set({ Authorization: 'Bearer nope' }))],
    ['a malformed header', get('/v1/secrets/team/db', (t) => t.set({ Authorization: 'Basic x' }))],
    ['a Vault namespace', get('/v1/secrets/team/db', (t) => t.set(reader).set('X-Vault-Namespace', 'ns'))],
    ['a batch read', batch((t) => t.send({ paths: ['team/db', 'other/key', 'team/none'] }))],
    ['a bad batch body', batch((t) => t.send({ paths: 'team/db' }))],
    ['a batch of the wrong type', batch((t) => t.set('Content-Type', 'text/plain').send('x'))],
    ['a batch that is not JSON', batch((t) => t.set('Content-Type', 'application/json').send('{"paths": ['))],
    ['a token self lookup', get('/v1/auth/token/self')],
    ['a Vault read', get('/v1/secret/data/team/db')],
    ['a Vault read of a deleted secret', get('/v1/secret/data/team/gone')],
    ['a denied Vault read', get('/v1/secret/data/other/key')],
    ['a Vault read, bad version', get('/v1/secret/data/team/db?version=-1')],
    ['a denied write', put('/v1/secrets/other/key', (t) => t.send({ data: { v: '1' } }))],
    ['a write without a body', put('/v1/secrets/team/new', (t) => t)],
    ['a write of the wrong type', put('/v1/secrets/team/new', (t) => t.set('Content-Type', 'text/plain').send('x'))],
    ['a write with a bad body', put('/v1/secrets/team/new', (t) => t.send({ data: { v: 1 } }))],
    ['a write with a query', put('/v1/secrets/team/new?x=1', (t) => t.send({ data: { v: '1' } }))],
    ['a write check-and-set conflict', put('/v1/secrets/team/db', (t) => t.send({ data: { v: '1' }, cas: 0 }))],
    ['a write to an invalid path', put('/v1/secrets/team//new', (t) => t.send({ data: { v: '1' } }))],
    [
      'a Vault read with X-Vault-Token',
      get('/v1/secret/data/team/db', (t) => t.set('X-Vault-Token', reader.Authorization!.slice(7))),
    ],
  ];

  const send = (
    app: TestVault['app'] | TestVault['app']['express'],
    [verb, url, build]: readonly [string, string, Build],
  ) => build(verb === 'GET' ? request(app).get(url) : verb === 'PUT' ? request(app).put(url) : request(app).post(url));

  for (const [name, spec] of cases) {
    it(`answers ${name} as express does, with the same audit line`, async () => {
      assert.ok(vault.app.hot.claims(spec[0], spec[1]), 'the dispatcher takes this request');
      const fast = await send(vault.app, spec);
      const [fastLine] = await lastLines(1);
      const slow = await send(vault.app.express, spec);
      const [slowLine] = await lastLines(1);
      assert.equal(fast.status, slow.status);
      assert.deepEqual(withoutRequestId(fast.body), withoutRequestId(slow.body));
      assert.deepEqual(headers(fast), headers(slow));
      assert.deepEqual(fastLine, slowLine);
      assert.ok(fastLine, 'the request has its audit line');
    });
  }

  it('writes as express does: the same answer but for the version, the same audit line', async () => {
    const fast = await request(vault.app)
      .put('/v1/secrets/team/written')
      .set(writer)
      .send({ data: { v: '1' } });
    const [fastLine] = await lastLines(1);
    const slow = await request(vault.app.express)
      .put('/v1/secrets/team/written')
      .set(writer)
      .send({ data: { v: '2' } });
    const [slowLine] = await lastLines(1);
    assert.equal(fast.status, 200);
    assert.equal(slow.status, 200);
    assert.deepEqual([fast.body.version, slow.body.version], [1, 2]);
    assert.deepEqual(Object.keys(fast.body), Object.keys(slow.body));
    assert.deepEqual(headers(fast), headers(slow));
    assert.deepEqual(fastLine, slowLine);
    const read = await request(vault.app).get('/v1/secrets/team/written?version=1').set(reader).expect(200);
    assert.deepEqual(read.body.data, { v: '1' });
  });

  /** One GET as its bytes (supertest would not send a fragment), answered through the dispatcher. */
  async function rawGet(target: string, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
    const server = createServer(vault.app).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const [res] = await rawRequests((server.address() as AddressInfo).port, [raw('GET', target, headers)]);
      return { status: res!.status, body: res!.json() as unknown };
    } finally {
      server.close();
    }
  }

  it('reads the query as express does: it ends at a fragment, and a ? in a fragment is no query', async () => {
    const versionOf = (r: { body: unknown }) => (r.body as { version?: number }).version;
    const withQuery = await rawGet('/v1/secrets/team/db?version=1#x', reader);
    assert.deepEqual([withQuery.status, versionOf(withQuery)], [200, 1]);
    const inFragment = await rawGet('/v1/secrets/team/db#?version=1', reader);
    assert.deepEqual([inFragment.status, versionOf(inFragment)], [200, 2]);
    const plain = await rawGet('/v1/secrets/team/db?version=1', reader);
    assert.deepEqual([plain.status, versionOf(plain)], [200, 1]);
  });

  it('answers 503 while sealed, as express does', async () => {
    const sealed = await openVault();
    try {
      const token = await tokenWith(sealed, 'sealed-reader', [{ path: '**', capabilities: ['read'] }]);
      await sealed.seal.seal();
      const fast = await request(sealed.app).get('/v1/secrets/team/db').set(token);
      const slow = await request(sealed.app.express).get('/v1/secrets/team/db').set(token);
      assert.equal(fast.status, 503);
      assert.equal(slow.status, 503);
      assert.deepEqual(withoutRequestId(fast.body), withoutRequestId(slow.body));
      assert.deepEqual(headers(fast), headers(slow));
    } finally {
      await sealed.cleanup();
    }
  });

  it('counts its requests in the metrics under the route pattern', async () => {
    await request(vault.app).get('/v1/secrets/team/db').set(reader).expect(200);
    const metrics = await request(vault.app).get('/v1/sys/metrics').set(vault.auth);
    assert.match(
      metrics.text,
      /coffer_http_requests_total\{method="GET",route="\/v1\/secrets\/\*path",status="200"\} \d+/,
    );
    assert.doesNotMatch(metrics.text, /team\/db/);
  });
});

function withoutRequestId(body: unknown): unknown {
  return JSON.parse(JSON.stringify(body), (k, v: unknown) => (k === 'request_id' ? undefined : v));
}

function headers(res: request.Response): Record<string, string> {
  const {
    date: _d,
    'x-request-id': _id,
    connection: _c,
    'keep-alive': _k,
    ...rest
  } = res.headers as Record<string, string>;
  return rest;
}

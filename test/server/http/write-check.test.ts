import assert from 'node:assert/strict';
import request from 'supertest';
import { openVault, tokenWith, type TestVault } from '../../helpers.js';

/**
 * Whether a write needs `create` or `update` is decided inside the write, against the state it
 * changes (server/secrets/engine.ts WriteCheck), never from a look taken before the write queues.
 * A token that may only create must not turn into one that may overwrite when another write of
 * the same path is queued just before its own (docs/api.md "Secrets", SECURITY-CASES C21).
 */
describe('create or update: judged inside the write', function () {
  this.timeout(30_000);
  let vault: TestVault;
  let createOnly: Record<string, string>;
  before(async () => {
    vault = await openVault();
    createOnly = await tokenWith(vault, 'create-only', [{ path: 'race/*', capabilities: ['create', 'read'] }]);
  });
  after(() => vault.cleanup());

  /**
   * Holds the store's one mutation queue, queues a root write creating `path` behind the hold,
   * sends `send()` (the create-only token's write of the same path) and lets it reach its
   * handler, then releases the queue. A check taken at request time would see no secret.
   */
  async function raceBehindCreate(path: string, send: () => request.Test): Promise<request.Response> {
    let release!: () => void;
    const held = vault.store.mutate(() => new Promise<void>((resolve) => (release = resolve)));
    const created = vault.secrets.put(path, { data: { owner: 'root' } });
    const answer = send().then((res) => res);
    // In process, the request reaches its handler (and queues its write) in well under this.
    await new Promise((resolve) => setTimeout(resolve, 150));
    release();
    await held;
    assert.equal((await created).version, 1);
    return answer;
  }

  async function current(path: string): Promise<{ version: number; data: Record<string, string> }> {
    const res = await request(vault.app).get(`/v1/secrets/${path}`).set(vault.auth);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return { version: res.body.version, data: res.body.data };
  }

  it('PUT /v1/secrets/:path: the create-only write behind a create is refused with 403 and changes nothing', async () => {
    const res = await raceBehindCreate('race/put', () =>
      request(vault.app)
        .put('/v1/secrets/race/put')
        .set(createOnly)
        .send({ data: { owner: 'create-only' } }),
    );
    assert.equal(res.status, 403, JSON.stringify(res.body));
    assert.equal(res.body.error.message, 'permission denied: create or update on race/put');
    assert.deepEqual(await current('race/put'), { version: 1, data: { owner: 'root' } });
  });

  it('POST /v1/secrets:batch-write: the entry behind a create gets its own 403, the others are written', async () => {
    const res = await raceBehindCreate('race/batch', () =>
      request(vault.app)
        .post('/v1/secrets:batch-write')
        .set(createOnly)
        .send({
          secrets: [
            { path: 'race/batch', data: { owner: 'create-only' } },
            { path: 'race/batch-new', data: { owner: 'create-only' } },
          ],
        }),
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.results, [
      {
        path: 'race/batch',
        error: { code: 'forbidden', message: 'permission denied: create or update on race/batch' },
      },
      { path: 'race/batch-new', version: 1, created_at: res.body.results[1].created_at },
    ]);
    assert.deepEqual(await current('race/batch'), { version: 1, data: { owner: 'root' } });
  });

  it('Vault KV data write and metadata write: refused with 403 behind a create, nothing changed', async () => {
    const data = await raceBehindCreate('race/kv', () =>
      request(vault.app)
        .post('/v1/secret/data/race/kv')
        .set(createOnly)
        .send({ data: { owner: 'create-only' } }),
    );
    assert.equal(data.status, 403, JSON.stringify(data.body));
    assert.deepEqual(data.body, { errors: ['permission denied: create or update on race/kv'] });
    assert.deepEqual(await current('race/kv'), { version: 1, data: { owner: 'root' } });

    const meta = await raceBehindCreate('race/meta', () =>
      request(vault.app)
        .post('/v1/secret/metadata/race/meta')
        .set(createOnly)
        .send({ max_versions: 1, custom_metadata: { owner: 'create-only' } }),
    );
    assert.equal(meta.status, 403, JSON.stringify(meta.body));
    const stored = await request(vault.app).get('/v1/metadata/race/meta').set(vault.auth);
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
    assert.deepEqual(stored.body.metadata, {}, 'the metadata write changed nothing');
    assert.equal(stored.body.max_versions, undefined);
  });

  it('Vault PATCH of data and of metadata behind a purge: 404, and the secret is not re-created', async () => {
    const updateOnly = await tokenWith(vault, 'update-only', [{ path: 'gone/*', capabilities: ['read', 'update'] }]);
    for (const [path, url, body] of [
      ['gone/data', '/v1/secret/data/gone/data', { data: { owner: 'update-only' }, options: { cas: 0 } }],
      ['gone/meta', '/v1/secret/metadata/gone/meta', { custom_metadata: { owner: 'update-only' } }],
    ] as const) {
      await vault.secrets.put(path, { data: { owner: 'root' } });
      // The PATCH reads the secret, then its write queues behind the purge.
      let release!: () => void;
      const held = vault.store.mutate(() => new Promise<void>((resolve) => (release = resolve)));
      const purged = vault.secrets.purge(path);
      const answer = request(vault.app)
        .patch(url)
        .set(updateOnly)
        .set('Content-Type', 'application/merge-patch+json')
        .send(JSON.stringify(body))
        .then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 150));
      release();
      await held;
      assert.equal(await purged, true);
      const res = await answer;
      assert.equal(res.status, 404, `${url}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.deepEqual(res.body, { errors: [] });
      assert.equal(vault.secrets.exists(path), false, `${path} stays purged`);
    }
  });

  it('a token with neither create nor update is refused before its data is looked at', async () => {
    const none = await tokenWith(vault, 'read-race', [{ path: 'race/*', capabilities: ['read'] }]);
    // Certificate data that would fail to parse: 403, not the parser's 400.
    const cert = { type: 'certificate', data: { certificate: 'not a certificate' } };
    const put = await request(vault.app).put('/v1/secrets/race/cert').set(none).send(cert);
    assert.equal(put.status, 403, JSON.stringify(put.body));
    const batch = await request(vault.app)
      .post('/v1/secrets:batch-write')
      .set(createOnly)
      .send({ secrets: [{ path: 'other/cert', ...cert }] });
    assert.equal(batch.status, 200, JSON.stringify(batch.body));
    assert.equal(batch.body.results[0].error.code, 'forbidden', JSON.stringify(batch.body));
    const kv = await request(vault.app)
      .post('/v1/secret/data/race/cert')
      .set(none)
      .send({ data: { v: 'x'.repeat(70 * 1024) } }); // the engine's size bound would answer 413
    assert.equal(kv.status, 403, JSON.stringify(kv.body));
  });

  it('a create-only token still creates a secret that does not exist, on every route', async () => {
    const put = await request(vault.app)
      .put('/v1/secrets/race/fresh-put')
      .set(createOnly)
      .send({ data: { v: '1' } });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const kv = await request(vault.app)
      .post('/v1/secret/data/race/fresh-kv')
      .set(createOnly)
      .send({ data: { v: '1' } });
    assert.equal(kv.status, 200, JSON.stringify(kv.body));
    const meta = await request(vault.app)
      .post('/v1/secret/metadata/race/fresh-meta')
      .set(createOnly)
      .send({ max_versions: 3 });
    assert.equal(meta.status, 204, JSON.stringify(meta.body));
    // And the second write of each is an update, which it may not do.
    const again = await request(vault.app)
      .put('/v1/secrets/race/fresh-put')
      .set(createOnly)
      .send({ data: { v: '2' } });
    assert.equal(again.status, 403, JSON.stringify(again.body));
  });
});

describe('POST /v1/secrets:batch-write by a token that may write nowhere', function () {
  this.timeout(30_000);
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
  });
  after(() => vault.cleanup());

  it('is refused with 403 before its body is read, with one audit line', async () => {
    const reader = await tokenWith(vault, 'reader', [{ path: '**', capabilities: ['read', 'list'] }]);
    // Declares 16 MiB and sends none of it: an answer at all shows the body was not awaited.
    const res = await request(vault.app)
      .post('/v1/secrets:batch-write')
      .set(reader)
      .set('Content-Type', 'application/json')
      .set('Content-Length', String(16 * 1024 * 1024))
      .timeout(5_000)
      .send('{')
      .catch((e: { response?: request.Response }) => e.response);
    assert.ok(res, 'answered without the body');
    assert.equal(res.status, 403, JSON.stringify(res.body));
    assert.deepEqual(res.body.error.code, 'forbidden');
    assert.equal(res.body.error.message, 'permission denied: this token may create or update no secret');

    // A token that may write somewhere gets its body read and its entries judged one by one.
    const writer = await tokenWith(vault, 'writer', [{ path: 'ci/*', capabilities: ['create'] }]);
    const ok = await request(vault.app)
      .post('/v1/secrets:batch-write')
      .set(writer)
      .send({ secrets: [{ path: 'other/x', data: { v: '1' } }] });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.results[0].error.code, 'forbidden');
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import { tempDir, type TestVault, type VaultOptions } from '../../helpers.js';
import { rm } from 'node:fs/promises';

/**
 * Integration tests of the secrets routes (API.md "Secrets"): versions, metadata, list, batch,
 * soft delete / undelete / destroy, check-and-set and the typed secrets.
 */

const DAY = 86_400_000;

function client(vault: TestVault) {
  return {
    put: (path: string, body: unknown) =>
      request(vault.app)
        .put(`/v1/secrets/${path}`)
        .set(vault.auth)
        .send(body as object),
    get: (path: string, query = '') => request(vault.app).get(`/v1/secrets/${path}${query}`).set(vault.auth),
    meta: (path: string) => request(vault.app).get(`/v1/metadata/${path}`).set(vault.auth),
    del: (path: string, query = '') => request(vault.app).delete(`/v1/secrets/${path}${query}`).set(vault.auth),
    action: (path: string, action: 'undelete' | 'destroy', versions: number[]) =>
      request(vault.app).post(`/v1/secrets/${path}/${action}`).set(vault.auth).send({ versions }),
    list: (query: string) => request(vault.app).get(`/v1/secrets${query}`).set(vault.auth),
    batch: (paths: string[]) => request(vault.app).post('/v1/secrets:batch').set(vault.auth).send({ paths }),
  };
}

function assertError(res: request.Response, status: number, code: string): void {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body?.error?.code, code, JSON.stringify(res.body));
}
/**
 * The secrets suite over HTTP, run once per master-key provider (software here, the HSM in
 * test/server/keys/pkcs11-secrets.test.ts): every behaviour must hold whatever holds the key.
 */
export function secretsSuite(provider: string, open: (options?: VaultOptions) => Promise<TestVault>): void {
  describe(`secrets suite on the ${provider} provider`, () => {
    describe('http secrets: versions, read and metadata', () => {
      let vault: TestVault;
      let c: ReturnType<typeof client>;
      before(async () => {
        vault = await open();
        c = client(vault);
      });
      after(() => vault.cleanup());

      it('gives each write of a path the next version number, starting at 1', async () => {
        for (const [i, value] of ['one', 'two', 'three'].entries()) {
          const res = await c.put('app/versioned', { data: { value } });
          assert.equal(res.status, 200, JSON.stringify(res.body));
          assert.equal(res.body.path, 'app/versioned');
          assert.equal(res.body.version, i + 1);
          assert.ok(!Number.isNaN(Date.parse(res.body.created_at)));
        }
        const latest = await c.get('app/versioned');
        assert.equal(latest.status, 200);
        assert.equal(latest.body.version, 3);
        assert.deepEqual(latest.body.data, { value: 'three' });
      });

      it('reads an older version with ?version=N', async () => {
        for (const [n, value] of [
          [1, 'one'],
          [2, 'two'],
          [3, 'three'],
        ] as const) {
          const res = await c.get('app/versioned', `?version=${n}`);
          assert.equal(res.status, 200, JSON.stringify(res.body));
          assert.equal(res.body.version, n);
          assert.deepEqual(res.body.data, { value });
        }
      });

      it('returns the full read shape: path, version, type, data, metadata, created_at, expires_at', async () => {
        const put = await c.put('app/shape', { data: { k: 'v' }, metadata: { owner: 'team-a' } });
        assert.equal(put.status, 200, JSON.stringify(put.body));
        const res = await c.get('app/shape');
        assert.deepEqual(Object.keys(res.body).sort(), [
          'created_at',
          'data',
          'expires_at',
          'metadata',
          'path',
          'type',
          'version',
        ]);
        assert.equal(res.body.path, 'app/shape');
        assert.equal(res.body.type, 'kv');
        assert.deepEqual(res.body.metadata, { owner: 'team-a' });
        assert.equal(res.body.expires_at, null);
      });

      it('answers 404 for a path that was never written', async () => {
        assertError(await c.get('app/never-written'), 404, 'not_found');
        assertError(await c.meta('app/never-written'), 404, 'not_found');
      });

      it('answers 404 for a version that does not exist', async () => {
        assertError(await c.get('app/versioned', '?version=4'), 404, 'not_found');
        assertError(await c.get('app/versioned', '?version=999'), 404, 'not_found');
      });

      it('lists versions in the metadata route and never includes values', async () => {
        const canary = 'CANARY-meta-7f3a9c1e';
        await c.put('app/meta-canary', { data: { secret: canary }, metadata: { note: 'public' } });
        await c.put('app/meta-canary', { data: { secret: `${canary}-2` } });
        const res = await c.meta('app/meta-canary');
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.ok(!res.text.includes(canary), 'metadata response contains a secret value');
        assert.equal(res.body.data, undefined);
        assert.equal(res.body.path, 'app/meta-canary');
        assert.equal(res.body.type, 'kv');
        assert.equal(res.body.current_version, 2);
        assert.deepEqual(
          res.body.versions.map((v: { version: number }) => v.version),
          [1, 2],
        );
        for (const v of res.body.versions) {
          assert.ok(!Number.isNaN(Date.parse(v.created_at)));
          assert.equal(v.deleted_at, null);
          assert.equal(v.destroyed, false);
          assert.equal(v.data, undefined);
        }
      });

      it('records the type of a token secret and returns it on read and in metadata', async () => {
        const put = await c.put('app/api-token', { type: 'token', data: { token: 'tok-123' } });
        assert.equal(put.status, 200, JSON.stringify(put.body));
        const res = await c.get('app/api-token');
        assert.equal(res.body.type, 'token');
        assert.deepEqual(res.body.data, { token: 'tok-123' });
        assert.equal((await c.meta('app/api-token')).body.type, 'token');
      });

      it('keeps data keys such as constructor and prototype as plain keys', async () => {
        const put = await c.put('app/proto-keys', { data: { constructor: 'a', prototype: 'b', hasOwnProperty: 'c' } });
        assert.equal(put.status, 200, JSON.stringify(put.body));
        const res = await c.get('app/proto-keys');
        assert.deepEqual(res.body.data, { constructor: 'a', prototype: 'b', hasOwnProperty: 'c' });
      });

      it('stores an explicit expires_at and returns it normalised', async () => {
        const when = new Date(Date.now() + 5 * DAY);
        const put = await c.put('app/expiring-kv', { data: { k: 'v' }, expires_at: when.toISOString() });
        assert.equal(put.status, 200, JSON.stringify(put.body));
        const res = await c.get('app/expiring-kv');
        assert.equal(res.body.expires_at, when.toISOString());
      });
    });

    describe('http secrets: check-and-set', () => {
      let vault: TestVault;
      let c: ReturnType<typeof client>;
      before(async () => {
        vault = await open();
        c = client(vault);
      });
      after(() => vault.cleanup());

      it('cas:0 creates a path that does not exist', async () => {
        const res = await c.put('app/cas', { data: { v: 'first' }, cas: 0 });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.version, 1);
      });

      it('cas:0 on an existing path is 409 cas_mismatch and writes nothing', async () => {
        const res = await c.put('app/cas', { data: { v: 'overwrite' }, cas: 0 });
        assertError(res, 409, 'cas_mismatch');
        const meta = await c.meta('app/cas');
        assert.equal(meta.body.current_version, 1);
        assert.equal(meta.body.versions.length, 1);
        assert.deepEqual((await c.get('app/cas')).body.data, { v: 'first' });
      });

      it('cas:N that is not the current version is 409 and writes nothing', async () => {
        for (const cas of [2, 5, 4294967295]) {
          assertError(await c.put('app/cas', { data: { v: 'stale' }, cas }), 409, 'cas_mismatch');
        }
        assert.equal((await c.meta('app/cas')).body.current_version, 1);
        assert.deepEqual((await c.get('app/cas')).body.data, { v: 'first' });
      });

      it('cas:N equal to the current version writes version N+1', async () => {
        const res = await c.put('app/cas', { data: { v: 'second' }, cas: 1 });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.version, 2);
        assertError(await c.put('app/cas', { data: { v: 'again' }, cas: 1 }), 409, 'cas_mismatch');
        assert.deepEqual((await c.get('app/cas')).body.data, { v: 'second' });
      });

      it('cas:N on a path that does not exist is 409 and creates nothing', async () => {
        assertError(await c.put('app/cas-absent', { data: { v: 'x' }, cas: 1 }), 409, 'cas_mismatch');
        assertError(await c.meta('app/cas-absent'), 404, 'not_found');
      });

      it('of concurrent cas writes against one version exactly one wins', async () => {
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => c.put('app/cas', { data: { v: `racer-${i}` }, cas: 2 })),
        );
        const statuses = results.map((r) => r.status).sort();
        assert.deepEqual(statuses, [200, ...Array(9).fill(409)]);
        const meta = await c.meta('app/cas');
        assert.equal(meta.body.current_version, 3);
      });
    });

    describe('http secrets: delete, undelete and destroy', () => {
      let vault: TestVault;
      let c: ReturnType<typeof client>;
      before(async () => {
        vault = await open();
        c = client(vault);
      });
      after(() => vault.cleanup());

      it('soft-deletes the current version: reads are 404, metadata shows deleted_at', async () => {
        await c.put('app/soft', { data: { v: 'one' } });
        const del = await c.del('app/soft');
        assert.equal(del.status, 204, JSON.stringify(del.body));
        assertError(await c.get('app/soft'), 404, 'not_found');
        assertError(await c.get('app/soft', '?version=1'), 404, 'not_found');
        const meta = await c.meta('app/soft');
        assert.equal(meta.status, 200);
        assert.ok(meta.body.versions[0].deleted_at !== null);
        assert.equal(meta.body.versions[0].destroyed, false);
      });

      it('undelete makes a soft-deleted version readable again', async () => {
        const res = await c.action('app/soft', 'undelete', [1]);
        assert.equal(res.status, 204, JSON.stringify(res.body));
        const get = await c.get('app/soft');
        assert.equal(get.status, 200);
        assert.deepEqual(get.body.data, { v: 'one' });
        assert.equal((await c.meta('app/soft')).body.versions[0].deleted_at, null);
      });

      it('deletes an older version with ?versions= and leaves the current one readable', async () => {
        await c.put('app/soft', { data: { v: 'two' } });
        await c.put('app/soft', { data: { v: 'three' } });
        assert.equal((await c.del('app/soft', '?versions=1,2')).status, 204);
        assertError(await c.get('app/soft', '?version=1'), 404, 'not_found');
        assertError(await c.get('app/soft', '?version=2'), 404, 'not_found');
        assert.deepEqual((await c.get('app/soft')).body.data, { v: 'three' });
        assert.equal((await c.action('app/soft', 'undelete', [2])).status, 204);
        assert.deepEqual((await c.get('app/soft', '?version=2')).body.data, { v: 'two' });
        assertError(await c.get('app/soft', '?version=1'), 404, 'not_found');
      });

      it('destroy makes a version unreadable for good, and undelete cannot revive it', async () => {
        await c.put('app/gone', { data: { v: 'one' } });
        await c.put('app/gone', { data: { v: 'two' } });
        const res = await c.action('app/gone', 'destroy', [1]);
        assert.equal(res.status, 204, JSON.stringify(res.body));
        assertError(await c.get('app/gone', '?version=1'), 404, 'not_found');
        const undelete = await c.action('app/gone', 'undelete', [1]);
        assert.ok(
          undelete.status === 204 || undelete.status === 404,
          `undelete of a destroyed version: ${undelete.status}`,
        );
        assertError(await c.get('app/gone', '?version=1'), 404, 'not_found');
        const meta = await c.meta('app/gone');
        assert.equal(meta.body.versions[0].destroyed, true);
        assert.equal(meta.body.versions[1].destroyed, false);
        assert.deepEqual((await c.get('app/gone')).body.data, { v: 'two' });
      });

      it('destroying the current version makes the path read 404, even after a soft delete and undelete', async () => {
        assert.equal((await c.action('app/gone', 'destroy', [2])).status, 204);
        assertError(await c.get('app/gone'), 404, 'not_found');
        await c.del('app/gone', '?versions=2');
        await c.action('app/gone', 'undelete', [2]);
        assertError(await c.get('app/gone'), 404, 'not_found');
        assertError(await c.get('app/gone', '?version=2'), 404, 'not_found');
        // The path still exists in metadata and a new write continues the numbering.
        const put = await c.put('app/gone', { data: { v: 'three' } });
        assert.equal(put.body.version, 3);
      });

      it('answers 404 for an unknown version on delete, undelete and destroy, and changes nothing', async () => {
        await c.put('app/known', { data: { v: 'one' } });
        assertError(await c.del('app/known', '?versions=7'), 404, 'not_found');
        assertError(await c.action('app/known', 'undelete', [7]), 404, 'not_found');
        assertError(await c.action('app/known', 'destroy', [7]), 404, 'not_found');
        // A list holding one good and one unknown version is refused as a whole.
        assertError(await c.action('app/known', 'destroy', [1, 7]), 404, 'not_found');
        assertError(await c.del('app/known', '?versions=1,7'), 404, 'not_found');
        const meta = await c.meta('app/known');
        assert.equal(meta.body.versions[0].destroyed, false);
        assert.equal(meta.body.versions[0].deleted_at, null);
        assert.deepEqual((await c.get('app/known')).body.data, { v: 'one' });
      });

      it('answers 404 for delete, undelete and destroy of a path that does not exist', async () => {
        assertError(await c.del('app/nothing-here'), 404, 'not_found');
        assertError(await c.action('app/nothing-here', 'undelete', [1]), 404, 'not_found');
        assertError(await c.action('app/nothing-here', 'destroy', [1]), 404, 'not_found');
        assertError(await c.meta('app/nothing-here'), 404, 'not_found');
      });

      it('answers 404 for a POST action that is neither undelete nor destroy', async () => {
        const res = await request(vault.app)
          .post('/v1/secrets/app/known/rollback')
          .set(vault.auth)
          .send({ versions: [1] });
        assertError(res, 404, 'not_found');
      });
    });

    describe('http secrets: list', () => {
      let vault: TestVault;
      let c: ReturnType<typeof client>;
      const nsPaths = ['app', 'app/x', 'app/y/z', 'application/x', 'app-2/x', 'ap/x'];
      before(async () => {
        vault = await open();
        c = client(vault);
        for (const p of nsPaths) assert.equal((await c.put(p, { data: { v: `value-of-${p}` } })).status, 200);
      });
      after(() => vault.cleanup());

      it('lists a prefix at a segment boundary: app lists app, app/x, app/y/z only', async () => {
        const res = await c.list('?prefix=app');
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(res.body.keys, ['app', 'app/x', 'app/y/z']);
        assert.equal(res.body.next, null);
      });

      it('lists a deeper prefix and a prefix that matches nothing', async () => {
        assert.deepEqual((await c.list('?prefix=app/y')).body.keys, ['app/y/z']);
        assert.deepEqual((await c.list('?prefix=ap')).body.keys, ['ap/x']);
        assert.deepEqual((await c.list('?prefix=nothing')).body, { keys: [], next: null });
      });

      it('lists paths only, never values', async () => {
        const res = await c.list('');
        assert.ok(!res.text.includes('value-of-'), 'list response contains values');
        assert.deepEqual(res.body.keys, [...nsPaths].sort());
      });

      it('paginates with limit, after and next in a stable byte order', async () => {
        for (let i = 0; i < 11; i++) await c.put(`pg/k${String(i).padStart(2, '0')}`, { data: { v: String(i) } });
        await c.put('pg/K-upper', { data: { v: 'u' } });
        const expected = ['pg/K-upper', ...Array.from({ length: 11 }, (_, i) => `pg/k${String(i).padStart(2, '0')}`)];
        const seen: string[] = [];
        let after: string | null = null;
        let pages = 0;
        do {
          const query: string = `?prefix=pg&limit=5${after ? `&after=${encodeURIComponent(after)}` : ''}`;
          const res = await c.list(query);
          assert.equal(res.status, 200, JSON.stringify(res.body));
          assert.ok(res.body.keys.length <= 5);
          seen.push(...res.body.keys);
          after = res.body.next;
          if (after !== null) assert.equal(after, res.body.keys.at(-1));
          pages++;
          assert.ok(pages < 10, 'pagination does not terminate');
        } while (after !== null);
        assert.equal(pages, 3);
        assert.deepEqual(seen, expected);
        // The same query twice gives the same page.
        const a = await c.list('?prefix=pg&limit=4&after=pg/k02');
        const b = await c.list('?prefix=pg&limit=4&after=pg/k02');
        assert.deepEqual(a.body, b.body);
        assert.deepEqual(a.body.keys, ['pg/k03', 'pg/k04', 'pg/k05', 'pg/k06']);
      });

      it('paginates a prefix that is itself a secret', async () => {
        const first = await c.list('?prefix=app&limit=1');
        assert.deepEqual(first.body, { keys: ['app'], next: 'app' });
        const second = await c.list('?prefix=app&limit=1&after=app');
        assert.deepEqual(second.body, { keys: ['app/x'], next: 'app/x' });
        const third = await c.list('?prefix=app&limit=5&after=app/x');
        assert.deepEqual(third.body, { keys: ['app/y/z'], next: null });
      });

      it('refuses limit above 1000, zero, negative or not a number with 400', async () => {
        for (const limit of ['1001', '5000', '0', '-1', 'abc', '1e2']) {
          assertError(await c.list(`?limit=${limit}`), 400, 'invalid_request');
        }
        assert.equal((await c.list('?limit=1000')).status, 200);
      });

      it('refuses an invalid prefix or after with 400', async () => {
        for (const q of ['?prefix=app//', '?prefix=../app', '?prefix=app//x', '?after=a%2F..', '?prefix=*']) {
          const res = await c.list(q);
          assert.equal(res.status, 400, `${q}: ${res.status} ${JSON.stringify(res.body)}`);
        }
      });
    });

    describe('http secrets: batch read', () => {
      let vault: TestVault;
      let c: ReturnType<typeof client>;
      before(async () => {
        vault = await open();
        c = client(vault);
        await c.put('app/a', { data: { v: 'a' } });
        await c.put('app/b', { data: { v: 'b' } });
        await c.put('app/deleted', { data: { v: 'd' } });
        await c.del('app/deleted');
      });
      after(() => vault.cleanup());

      it('returns found secrets and per-path errors for missing or deleted ones', async () => {
        const res = await c.batch(['app/a', 'app/missing', 'app/b', 'app/deleted']);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.deepEqual(Object.keys(res.body.secrets).sort(), ['app/a', 'app/b']);
        assert.deepEqual(res.body.secrets['app/a'].data, { v: 'a' });
        assert.equal(res.body.secrets['app/b'].version, 1);
        assert.equal(res.body.secrets['app/b'].path, 'app/b');
        assert.deepEqual(Object.keys(res.body.errors).sort(), ['app/deleted', 'app/missing']);
        assert.equal(res.body.errors['app/missing'].code, 'not_found');
        assert.equal(res.body.errors['app/deleted'].code, 'not_found');
      });

      it('refuses the whole batch when one path is invalid, an empty list, or more than 100 paths', async () => {
        assertError(await c.batch(['app/a', 'app/../b']), 400, 'invalid_request');
        assertError(await c.batch([]), 400, 'invalid_request');
        assertError(await c.batch(Array.from({ length: 101 }, (_, i) => `app/p${i}`)), 400, 'invalid_request');
        const noPaths = await request(vault.app).post('/v1/secrets:batch').set(vault.auth).send({});
        assertError(noPaths, 400, 'invalid_request');
      });

      it('reads a path listed twice once', async () => {
        const res = await c.batch(['app/a', 'app/a']);
        assert.equal(res.status, 200);
        assert.deepEqual(Object.keys(res.body.secrets), ['app/a']);
        assert.deepEqual(res.body.errors, {});
      });
    });

    describe('http secrets: generated passwords', () => {
      let vault: TestVault;
      let c: ReturnType<typeof client>;
      before(async () => {
        vault = await open();
        c = client(vault);
      });
      after(() => vault.cleanup());

      it('fills data[key] with a password of the requested length and charset', async () => {
        const cases = [
          { charset: 'hex', length: 40, re: /^[0-9a-f]{40}$/ },
          { charset: 'digits', length: 12, re: /^[0-9]{12}$/ },
          { charset: 'alphanumeric', length: 256, re: /^[A-Za-z0-9]{256}$/ },
          { charset: 'symbols', length: 64, re: /^[A-Za-z0-9!#%+,\-./:=@^_~]{64}$/ },
        ];
        for (const [i, { charset, length, re }] of cases.entries()) {
          const path = `app/gen-${i}`;
          const put = await c.put(path, {
            type: 'password',
            data: { username: 'svc' },
            generate: { key: 'password', length, charset },
          });
          assert.equal(put.status, 200, JSON.stringify(put.body));
          const res = await c.get(path);
          assert.ok(!put.text.includes(res.body.data.password), 'the write response echoes the generated value');
          assert.equal(res.body.type, 'password');
          assert.equal(res.body.data.username, 'svc');
          assert.match(res.body.data.password, re, `${charset}/${length}`);
        }
      });

      it('defaults to 32 alphanumeric characters and differs between writes', async () => {
        await c.put('app/gen-default', { data: { u: 'x' }, generate: { key: 'pw' } });
        const first = (await c.get('app/gen-default')).body.data.pw;
        assert.match(first, /^[A-Za-z0-9]{32}$/);
        await c.put('app/gen-default', { data: { u: 'x' }, generate: { key: 'pw' } });
        const second = (await c.get('app/gen-default')).body.data.pw;
        assert.notEqual(first, second);
      });

      it('generates into an empty data map', async () => {
        const put = await c.put('app/gen-only', { data: {}, generate: { key: 'pw', length: 8 } });
        assert.equal(put.status, 200, JSON.stringify(put.body));
        assert.match((await c.get('app/gen-only')).body.data.pw, /^[A-Za-z0-9]{8}$/);
      });

      it('refuses a generate key that is already in data with 400 and writes nothing', async () => {
        const res = await c.put('app/gen-conflict', { data: { password: 'mine' }, generate: { key: 'password' } });
        assertError(res, 400, 'invalid_request');
        assertError(await c.meta('app/gen-conflict'), 404, 'not_found');
      });

      it('refuses lengths outside 8..256 and unknown charsets with 400', async () => {
        for (const generate of [
          { key: 'p', length: 7 },
          { key: 'p', length: 257 },
          { key: 'p', length: 12.5 },
          { key: 'p', charset: 'emoji' },
          { key: 'p', extra: 1 },
        ]) {
          assertError(await c.put('app/gen-bad', { data: { u: 'x' }, generate }), 400, 'invalid_request');
        }
        assertError(await c.meta('app/gen-bad'), 404, 'not_found');
      });
    });

    describe('http secrets: certificates and expiry', () => {
      let vault: TestVault;
      let c: ReturnType<typeof client>;
      let dir: string;
      const certs: Record<string, { cert: string; key: string }> = {};

      function makeCert(name: string, days: number, cn: string, sans: string): { cert: string; key: string } {
        const keyFile = join(dir, `${name}.key`);
        const certFile = join(dir, `${name}.crt`);
        execFileSync(
          '/usr/bin/openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'ec',
            '-pkeyopt',
            'ec_paramgen_curve:prime256v1',
            '-nodes',
            '-keyout',
            keyFile,
            '-out',
            certFile,
            '-days',
            String(days),
            '-subj',
            `/CN=${cn}`,
            '-addext',
            `subjectAltName=${sans}`,
          ],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
      }

      before(async () => {
        dir = await tempDir('coffer-certs-');
        certs.soon = makeCert('soon', 10, 'app.example.com', 'DNS:app.example.com,DNS:www.example.com');
        certs.far = makeCert('far', 3650, 'far.example.com', 'DNS:far.example.com');
        certs.other = makeCert('other', 30, 'other.example.com', 'DNS:other.example.com');
        vault = await open();
        c = client(vault);
      });
      after(async () => {
        await vault.cleanup();
        await rm(dir, { recursive: true, force: true });
      });

      it('stores a certificate with its key and records not_after, subject and sans in metadata', async () => {
        const { cert, key } = certs.soon!;
        const put = await c.put('app/tls', { type: 'certificate', data: { certificate: cert, private_key: key } });
        assert.equal(put.status, 200, JSON.stringify(put.body));
        const res = await c.get('app/tls');
        assert.equal(res.body.type, 'certificate');
        assert.equal(res.body.data.certificate, cert);
        assert.equal(res.body.data.private_key, key);
        const md = res.body.metadata;
        const notAfter = Date.parse(md.not_after);
        assert.ok(Math.abs(notAfter - (Date.now() + 10 * DAY)) < DAY, `not_after ${md.not_after}`);
        assert.match(md.subject, /CN=app\.example\.com/);
        assert.match(md.sans, /DNS:app\.example\.com/);
        assert.match(md.sans, /DNS:www\.example\.com/);
        assert.equal(res.body.expires_at, new Date(notAfter).toISOString(), 'expires_at defaults to not_after');
        const meta = await c.meta('app/tls');
        assert.equal(meta.body.type, 'certificate');
        assert.equal(meta.body.metadata.not_after, md.not_after);
        assert.ok(!meta.text.includes('PRIVATE KEY'), 'metadata route leaks the private key');
        assert.ok(!meta.text.includes('BEGIN CERTIFICATE'), 'metadata route returns the certificate value');
      });

      it('keeps an explicit expires_at on a certificate', async () => {
        const when = new Date(Date.now() + 2 * DAY).toISOString();
        const put = await c.put('app/tls-explicit', {
          type: 'certificate',
          data: { certificate: certs.far!.cert },
          expires_at: when,
        });
        assert.equal(put.status, 200, JSON.stringify(put.body));
        assert.equal((await c.get('app/tls-explicit')).body.expires_at, when);
        assert.equal((await c.action('app/tls-explicit', 'destroy', [1])).status, 204);
      });

      it('refuses an invalid PEM certificate with 400 and writes nothing', async () => {
        const bad = [
          'not a certificate at all',
          '-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAAAAAA\n-----END CERTIFICATE-----\n',
          certs
            .soon!.cert.split('\n')
            .filter((_, i) => i !== 3)
            .join('\n'),
          certs.soon!.cert + certs.far!.cert,
        ];
        for (const certificate of bad) {
          assertError(
            await c.put('app/tls-bad', { type: 'certificate', data: { certificate } }),
            400,
            'invalid_request',
          );
        }
        assertError(
          await c.put('app/tls-bad', { type: 'certificate', data: { private_key: certs.soon!.key } }),
          400,
          'invalid_request',
        );
        assertError(
          await c.put('app/tls-bad', {
            type: 'certificate',
            data: { certificate: certs.soon!.cert, private_key: 'garbage' },
          }),
          400,
          'invalid_request',
        );
        assertError(
          await c.put('app/tls-bad', {
            type: 'certificate',
            data: { certificate: certs.soon!.cert, chain: 'garbage' },
          }),
          400,
          'invalid_request',
        );
        assertError(await c.meta('app/tls-bad'), 404, 'not_found');
      });

      it('refuses the private key of another certificate with 400 "does not match"', async () => {
        const res = await c.put('app/tls-mismatch', {
          type: 'certificate',
          data: { certificate: certs.soon!.cert, private_key: certs.other!.key },
        });
        assertError(res, 400, 'invalid_request');
        assert.match(res.body.error.message, /does not match/);
        assert.ok(!res.text.includes('PRIVATE KEY'), 'error echoes the private key');
        assertError(await c.meta('app/tls-mismatch'), 404, 'not_found');
      });

      it('accepts a chain of PEM certificates', async () => {
        const put = await c.put('app/tls-chain', {
          type: 'certificate',
          data: {
            certificate: certs.other!.cert,
            private_key: certs.other!.key,
            chain: certs.far!.cert + certs.soon!.cert,
          },
        });
        assert.equal(put.status, 200, JSON.stringify(put.body));
      });

      it('GET /v1/secrets?expiring_within=30d lists soon-expiring certificates and kv secrets, not far ones', async () => {
        await c.put('exp/cert-soon', { type: 'certificate', data: { certificate: certs.soon!.cert } });
        await c.put('exp/cert-far', { type: 'certificate', data: { certificate: certs.far!.cert } });
        await c.put('exp/kv-soon', { data: { k: 'v' }, expires_at: new Date(Date.now() + 3 * DAY).toISOString() });
        await c.put('exp/kv-far', { data: { k: 'v' }, expires_at: new Date(Date.now() + 365 * DAY).toISOString() });
        await c.put('exp/kv-never', { data: { k: 'v' } });
        await c.put('exp/kv-deleted', { data: { k: 'v' }, expires_at: new Date(Date.now() + 3 * DAY).toISOString() });
        await c.del('exp/kv-deleted');
        const res = await c.list('?expiring_within=30d');
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const paths = res.body.secrets.map((s: { path: string }) => s.path);
        for (const p of ['exp/cert-soon', 'exp/kv-soon', 'app/tls'])
          assert.ok(paths.includes(p), `${p} missing from ${paths}`);
        for (const p of ['exp/cert-far', 'exp/kv-far', 'exp/kv-never', 'exp/kv-deleted', 'app/tls-explicit'])
          assert.ok(!paths.includes(p), `${p} listed`);
        const soon = res.body.secrets.find((s: { path: string }) => s.path === 'exp/cert-soon');
        assert.equal(soon.type, 'certificate');
        assert.equal(soon.expired, false);
        assert.equal(soon.data, undefined);
        assert.ok(!res.text.includes('BEGIN CERTIFICATE'), 'expiring list carries values');
        // Sorted by expiry: the kv expiring in 3 days comes before the certificates expiring in 10.
        assert.ok(paths.indexOf('exp/kv-soon') < paths.indexOf('exp/cert-soon'));
        // A narrower window leaves out the certificate.
        const narrow = (await c.list('?expiring_within=5d')).body.secrets.map((s: { path: string }) => s.path);
        assert.ok(narrow.includes('exp/kv-soon'));
        assert.ok(!narrow.includes('exp/cert-soon'));
      });

      it('refuses a malformed expiring_within with 400', async () => {
        for (const v of ['30x', '-1d', '0', 'd', '30d;1']) {
          assertError(await c.list(`?expiring_within=${encodeURIComponent(v)}`), 400, 'invalid_request');
        }
      });
    });

    describe('http secrets: max_versions pruning', () => {
      let vault: TestVault;
      let c: ReturnType<typeof client>;
      before(async () => {
        vault = await open({ secrets: { maxVersions: 3 } });
        c = client(vault);
      });
      after(() => vault.cleanup());

      it('keeps only the newest max_versions versions of a path', async () => {
        for (let i = 1; i <= 5; i++)
          assert.equal((await c.put('app/pruned', { data: { v: `v${i}` } })).body.version, i);
        const meta = await c.meta('app/pruned');
        assert.equal(meta.body.current_version, 5);
        assert.deepEqual(
          meta.body.versions.map((v: { version: number }) => v.version),
          [3, 4, 5],
        );
        assertError(await c.get('app/pruned', '?version=1'), 404, 'not_found');
        assertError(await c.get('app/pruned', '?version=2'), 404, 'not_found');
        for (const n of [3, 4, 5])
          assert.deepEqual((await c.get('app/pruned', `?version=${n}`)).body.data, { v: `v${n}` });
        // Pruned versions are gone for the version operations too.
        assertError(await c.action('app/pruned', 'undelete', [1]), 404, 'not_found');
        // The next write continues the numbering.
        assert.equal((await c.put('app/pruned', { data: { v: 'v6' } })).body.version, 6);
        assert.deepEqual(
          (await c.meta('app/pruned')).body.versions.map((v: { version: number }) => v.version),
          [4, 5, 6],
        );
      });
    });
  });
}

import assert from 'node:assert/strict';
import request from 'supertest';
import { vaultSettings } from '../../../../server/http/vault/mounts.js';
import { tokenWith } from '../../../helpers.js';
import { raw, rawRequests, vaultFixture, type VaultFixture } from './fixture.js';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Vault's answer envelope around `data`, as every Vault route with a body sends it (route.ts `envelope`). */
const envelope = (res: request.Response, data: unknown, warnings: string[] | null = null) => ({
  request_id: res.headers['x-request-id'],
  lease_id: '',
  renewable: false,
  lease_duration: 0,
  data,
  wrap_info: null,
  warnings,
  auth: null,
});

/**
 * KV v2 edges (server/http/vault/kv.ts) on a real listening server: whole answers as Vault sends
 * them, the query each route refuses, metadata merges and check-and-set on PATCH, listings.
 */
describe('Vault API: KV v2 edges', function () {
  this.timeout(30_000);
  let f: VaultFixture;
  let root: { 'X-Vault-Token': string };
  const http = () => request(f.url);
  const write = async (path: string, data: object, options?: object) => {
    const res = await http()
      .post(`/v1/secret/data/${path}`)
      .set(root)
      .send({ data, ...(options ? { options } : {}) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res;
  };
  const metadataOf = async (path: string) => {
    const res = await http().get(`/v1/secret/metadata/${path}`).set(root);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.data;
  };
  const mergePatch = (path: string, body: object) =>
    http().patch(path).set(root).set('Content-Type', 'application/merge-patch+json').send(JSON.stringify(body));

  before(async () => {
    f = await vaultFixture();
    root = { 'X-Vault-Token': f.vault.rootToken };
  });
  after(() => f.close());

  it('every route refuses an unknown query parameter as "query: unknown field", and changes nothing', async () => {
    await write('edges/q', { v: '1' });
    const cases: [string, request.Test][] = [
      [
        'write',
        http()
          .post('/v1/secret/data/edges/q?x=1')
          .set(root)
          .send({ data: { v: '2' } }),
      ],
      ['read', http().get('/v1/secret/data/edges/q?x=1').set(root)],
      ['patch', mergePatch('/v1/secret/data/edges/q?x=1', { data: { v: '2' } })],
      ['delete', http().delete('/v1/secret/data/edges/q?x=1').set(root)],
      [
        'delete versions',
        http()
          .post('/v1/secret/delete/edges/q?x=1')
          .set(root)
          .send({ versions: [1] }),
      ],
      [
        'undelete',
        http()
          .post('/v1/secret/undelete/edges/q?x=1')
          .set(root)
          .send({ versions: [1] }),
      ],
      [
        'destroy',
        http()
          .post('/v1/secret/destroy/edges/q?x=1')
          .set(root)
          .send({ versions: [1] }),
      ],
      ['metadata write', http().post('/v1/secret/metadata/edges/q?x=1').set(root).send({ max_versions: 1 })],
      ['metadata patch', mergePatch('/v1/secret/metadata/edges/q?x=1', { max_versions: 1 })],
      ['metadata delete', http().delete('/v1/secret/metadata/edges/q?x=1').set(root)],
    ];
    for (const [name, req] of cases) {
      const res = await req;
      assert.equal(res.status, 400, name);
      assert.deepEqual(res.body, { errors: ['query: unknown field x'] }, name);
    }
    const meta = await metadataOf('edges/q');
    assert.equal(meta.current_version, 1);
    assert.equal(meta.max_versions, 0);
    assert.equal(meta.versions['1'].deletion_time, '');
    assert.equal(meta.versions['1'].destroyed, false);
  });

  it("a read answers Vault's whole shape; ?version=0 is the current version", async () => {
    await write('edges/read', { v: '1' });
    await write('edges/read', { v: '2', n: 3 });
    for (const query of ['', '?version=0', '?version=2']) {
      const res = await http().get(`/v1/secret/data/edges/read${query}`).set(root);
      assert.equal(res.status, 200, query);
      assert.match(res.body.data.metadata.created_time, ISO);
      assert.deepEqual(
        res.body,
        envelope(res, {
          data: { v: '2', n: 3 },
          metadata: {
            created_time: res.body.data.metadata.created_time,
            custom_metadata: null,
            deletion_time: '',
            destroyed: false,
            version: 2,
          },
        }),
        query,
      );
    }
  });

  it("metadata answers Vault's whole shape: cas_required false, delete_version_after 0s, oldest_version 0 until versions are pruned", async () => {
    await write('edges/meta', { v: '1' });
    const fresh = await http().get('/v1/secret/metadata/edges/meta').set(root);
    const created = fresh.body.data.created_time;
    assert.match(created, ISO);
    assert.deepEqual(
      fresh.body,
      envelope(fresh, {
        cas_required: false,
        created_time: created,
        current_version: 1,
        custom_metadata: null,
        delete_version_after: '0s',
        max_versions: 0,
        oldest_version: 0, // Vault's: 0 until the versions written reach max_versions
        updated_time: created,
        versions: { '1': { created_time: created, deletion_time: '', destroyed: false } },
      }),
    );
    // max_versions 2: the second write reaches it (Vault's oldest_version becomes 1), the third
    // drops version 1 and the oldest kept is version 2.
    assert.equal((await http().post('/v1/secret/metadata/edges/meta').set(root).send({ max_versions: 2 })).status, 204);
    await write('edges/meta', { v: '2' });
    assert.equal((await metadataOf('edges/meta')).oldest_version, 1);
    await write('edges/meta', { v: '3' });
    const pruned = await metadataOf('edges/meta');
    assert.deepEqual(Object.keys(pruned.versions), ['2', '3']);
    assert.equal(pruned.oldest_version, 2);
    assert.equal(pruned.current_version, 3);
    assert.equal(pruned.max_versions, 2);
  });

  it('a metadata write without custom_metadata keeps it; a metadata PATCH merges it and sets max_versions and cas_required', async () => {
    const post = (body: object) => http().post('/v1/secret/metadata/edges/custom').set(root).send(body);
    assert.equal((await post({ custom_metadata: { owner: 'api', team: 'core' } })).status, 204);
    assert.equal((await post({ max_versions: 5 })).status, 204);
    let meta = await metadataOf('edges/custom');
    assert.deepEqual(meta.custom_metadata, { owner: 'api', team: 'core' }, 'kept by a write that does not name it');
    assert.equal(meta.max_versions, 5);
    assert.equal(meta.cas_required, false);

    const patch = await mergePatch('/v1/secret/metadata/edges/custom', {
      custom_metadata: { team: null, tier: 'gold' },
      max_versions: 7,
      cas_required: true,
    });
    assert.equal(patch.status, 204, JSON.stringify(patch.body));
    meta = await metadataOf('edges/custom');
    assert.deepEqual(meta.custom_metadata, { owner: 'api', tier: 'gold' }, 'merged: the other keys stay');
    assert.equal(meta.max_versions, 7);
    assert.equal(meta.cas_required, true);

    assert.equal((await mergePatch('/v1/secret/metadata/edges/custom', { custom_metadata: null })).status, 204);
    assert.equal((await metadataOf('edges/custom')).custom_metadata, null, 'null clears it');
  });

  it('two metadata PATCHes at once each keep the keys the other adds (the merge is done inside the write)', async () => {
    const post = (body: object) => http().post('/v1/secret/metadata/edges/race').set(root).send(body);
    assert.equal((await post({ custom_metadata: { owner: 'api' } })).status, 204);
    // Hold the store's one mutation queue so both PATCHes are read and checked before either writes.
    let release!: () => void;
    const held = f.vault.store.mutate(() => new Promise<void>((resolve) => (release = resolve)));
    const first = mergePatch('/v1/secret/metadata/edges/race', { custom_metadata: { a: '1' } }).then((r) => r);
    const second = mergePatch('/v1/secret/metadata/edges/race', { custom_metadata: { b: '2', owner: null } }).then(
      (r) => r,
    );
    await new Promise((resolve) => setTimeout(resolve, 150));
    release();
    await held;
    assert.deepEqual([(await first).status, (await second).status], [204, 204]);
    assert.deepEqual((await metadataOf('edges/race')).custom_metadata, { a: '1', b: '2' });
  });

  it('a metadata PATCH that would leave more than 64 keys is refused and changes nothing', async () => {
    const keys = (from: number) => Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${from + i}`, 'v']));
    const post = await http()
      .post('/v1/secret/metadata/edges/many')
      .set(root)
      .send({ custom_metadata: keys(0) });
    assert.equal(post.status, 204);
    const patch = await mergePatch('/v1/secret/metadata/edges/many', { custom_metadata: keys(40), max_versions: 3 });
    assert.equal(patch.status, 400, JSON.stringify(patch.body));
    assert.match(JSON.stringify(patch.body), /at most 64 keys after the merge/);
    const meta = await metadataOf('edges/many');
    assert.equal(Object.keys(meta.custom_metadata as object).length, 40);
    assert.equal(meta.max_versions, 0, 'nothing of the refused PATCH was written');
    // Replacing keys stays within the bound: 40 + 24 new = 64 is accepted.
    const fits = Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`n${i}`, 'v']));
    assert.equal((await mergePatch('/v1/secret/metadata/edges/many', { custom_metadata: fits })).status, 204);
    assert.equal(Object.keys((await metadataOf('edges/many')).custom_metadata as object).length, 64);
  });

  it('a PATCH keeps custom_metadata, needs options.cas where cas_required is set, and checks-and-sets on the version it read (or the cas it is given)', async () => {
    assert.equal(
      (
        await http()
          .post('/v1/secret/metadata/edges/patch')
          .set(root)
          .send({ custom_metadata: { owner: 'api' }, cas_required: true })
      ).status,
      204,
    );
    await write('edges/patch', { a: '1' }, { cas: 0 });
    // cas_required holds for a PATCH as in Vault: one without options.cas is refused, nothing written.
    const without = await mergePatch('/v1/secret/data/edges/patch', { data: { b: '2' } });
    assert.equal(without.status, 400);
    assert.deepEqual(without.body, { errors: ['check-and-set is required for edges/patch: send options.cas'] });
    assert.equal((await metadataOf('edges/patch')).current_version, 1);
    const patched = await mergePatch('/v1/secret/data/edges/patch', { data: { b: '2' }, options: { cas: 1 } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.deepEqual(
      patched.body,
      envelope(patched, {
        created_time: patched.body.data.created_time,
        custom_metadata: { owner: 'api' },
        deletion_time: '',
        destroyed: false,
        version: 2,
      }),
    );
    const stale = await mergePatch('/v1/secret/data/edges/patch', { data: { c: '3' }, options: { cas: 1 } });
    assert.equal(stale.status, 400);
    assert.deepEqual(stale.body, { errors: ['check-and-set failed: current version is 2, not 1'] });
    const read = await http().get('/v1/secret/data/edges/patch').set(root);
    assert.deepEqual(read.body.data.data, { a: '1', b: '2' });
    assert.deepEqual(read.body.data.metadata.custom_metadata, { owner: 'api' });
    assert.equal((await metadataOf('edges/patch')).current_version, 2);
  });

  it('merges nested objects per RFC 7386: a non-object value is replaced by an object patch', async () => {
    await write('edges/merge', { obj: null, arr: [1, 2], str: 's', keep: { x: 1 } });
    const res = await mergePatch('/v1/secret/data/edges/merge', {
      data: { obj: { a: 1 }, arr: { b: 2 }, str: { c: { d: 3 } }, keep: { y: 2 } },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const read = await http().get('/v1/secret/data/edges/merge').set(root);
    assert.deepEqual(read.body.data.data, {
      obj: { a: 1 },
      arr: { b: 2 },
      str: { c: { d: 3 } },
      keep: { x: 1, y: 2 },
    });
  });

  it('deleting, undeleting or destroying versions of a missing secret is 404 {"errors":[]}, as is deleting it', async () => {
    for (const action of ['delete', 'undelete', 'destroy']) {
      const res = await http()
        .post(`/v1/secret/${action}/edges/none`)
        .set(root)
        .send({ versions: [1] });
      assert.equal(res.status, 404, action);
      assert.deepEqual(res.body, { errors: [] }, action);
    }
    const gone = await http().delete('/v1/secret/data/edges/none').set(root);
    assert.equal(gone.status, 404);
    assert.deepEqual(gone.body, { errors: [] });
    assert.equal((await http().get('/v1/secret/metadata/edges/none').set(root)).status, 404, 'nothing was created');
  });

  it('lists a secret that is also a folder by its children only, sorted, with no warnings', async () => {
    for (const p of ['edges/tree', 'edges/tree/b/c', 'edges/tree/a', 'edges/tree/a.b', 'edges/treex'])
      await write(p, { v: '1' });
    const [listed] = await rawRequests(f.port, [
      raw('LIST', '/v1/secret/metadata/edges/tree', { 'X-Vault-Token': f.vault.rootToken }),
    ]);
    assert.equal(listed!.status, 200, listed!.body);
    const body = listed!.json();
    assert.deepEqual(body, {
      request_id: listed!.headers['x-request-id'],
      lease_id: '',
      renewable: false,
      lease_duration: 0,
      data: { keys: ['a', 'a.b', 'b/'] },
      wrap_info: null,
      warnings: null,
      auth: null,
    });
  });

  it('a token that may list nothing is refused at the mount root, naming (all)', async () => {
    const readOnly = await tokenWith(f.vault, 'edges-read', [{ path: 'edges/**', capabilities: ['read'] }]);
    const res = await http().get('/v1/secret/metadata?list=true').set(readOnly);
    assert.equal(res.status, 403);
    assert.deepEqual(res.body, { errors: ['permission denied: list on (all)'] });
    const below = await http().get('/v1/secret/metadata/edges/?list=true').set(readOnly);
    assert.deepEqual(below.body, { errors: ['permission denied: list on edges'] });
  });
});

/**
 * Which error shape a request gets (server/http/vault/index.ts `vaultEdge`): Vault's alone on the
 * Vault routes, both on the paths the two APIs share and on unknown Vault mounts, Coffer's own on
 * the native routes and outside /v1.
 */
describe('Vault API: error shapes by path', function () {
  this.timeout(30_000);
  let f: VaultFixture;

  before(async () => {
    f = await vaultFixture({ vault: vaultSettings(['secret'], ['gitlab']) });
  });
  after(() => f.close());

  /** The top-level keys of the error answer to an unauthenticated request. */
  const shape = async (method: 'get' | 'post', path: string) => {
    const res = await request(f.url)[method](path).send({});
    assert.ok(res.status >= 400, `${method} ${path}: ${res.status}`);
    return Object.keys(res.body).sort().join('+');
  };

  it("answers Vault's shape alone on the KV mounts, the mount listings, token self-service and jwt logins", async () => {
    for (const [method, path] of [
      ['get', '/v1/secret/data/x'],
      ['get', '/v1/sys/mounts'],
      ['get', '/v1/sys/internal/ui/mounts/secret'],
      ['get', '/v1/auth/token/lookup-self'],
      ['post', '/v1/auth/token/renew-self'],
      ['post', '/v1/auth/token/revoke-self'],
      ['post', '/v1/auth/gitlab/login'],
    ] as const)
      assert.equal(await shape(method, path), 'errors', `${method} ${path}`);
  });

  it('answers both shapes on the shared login and health paths and on unknown mounts under /v1', async () => {
    for (const [method, path] of [
      ['post', '/v1/auth/jwt/login'],
      ['post', '/v1/auth/approle/login'],
      ['get', '/v1/nomount/data/x'],
      ['get', '/v1/kv'],
    ] as const)
      assert.equal(await shape(method, path), 'error+errors', `${method} ${path}`);
  });

  it("answers Coffer's shape alone on every native route and outside /v1", async () => {
    for (const [method, path] of [
      ['get', '/v1/sys/audit'],
      ['get', '/v1/sys/internal/counters'],
      ['get', '/v1/sys/other/ui'],
      ['get', '/v1/sys/token/lookup-self'],
      ['get', '/v1/groups/mounts'],
      ['post', '/v1/auth/token/create'],
      ['get', '/v1/auth/approle/lookup-self'],
      ['get', '/v1/auth/gitlab/roles'],
      ['get', '/v1/auth/jwt/roles/ci'],
      ['get', '/v1/secrets/x'],
      ['post', '/v1/secrets:batch'],
      ['get', '/v1/metadata/x'],
      ['get', '/v1/keys/x'],
      ['get', '/v1/policies/x'],
      ['get', '/v1/groups/x'],
      ['get', '/v2/kv/x'],
      ['get', '/nothing/here'],
    ] as const)
      assert.equal(await shape(method, path), 'error', `${method} ${path}`);
  });
});

describe('Vault API: a KV listing stops at its scan budget', function () {
  this.timeout(60_000);
  let f: VaultFixture;
  before(async () => {
    // The budget (VAULT_LIST_BUDGET, 100,000) made small, so the bound is reached with 2,500 secrets.
    f = await vaultFixture({ vault: { ...vaultSettings(['secret'], []), listBudget: 2_000 } });
    for (let start = 0; start < 2_500; start += 500) {
      const secrets = Array.from({ length: 500 }, (_, i) => ({
        path: `big/s${String(start + i).padStart(4, '0')}`,
        data: { v: '1' },
      }));
      const res = await request(f.vault.app).post('/v1/secrets:batch-write').set(f.vault.auth).send({ secrets });
      assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 300));
    }
  });
  after(() => f.close());

  it('answers the names it looked at, sorted, with a warning naming the budget', async () => {
    const res = await request(f.url)
      .get('/v1/secret/metadata/big?list=true')
      .set({ 'X-Vault-Token': f.vault.rootToken });
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 300));
    const keys = res.body.data.keys as string[];
    assert.equal(keys.length, 2_000, 'two pages of 1,000, then the budget');
    assert.deepEqual(keys.slice(0, 2), ['s0000', 's0001']);
    assert.equal(keys.at(-1), 's1999');
    assert.deepEqual(res.body.warnings, ['listing stopped after 2000 names: list a deeper prefix']);
  });
});

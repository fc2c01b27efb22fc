import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import request from 'supertest';
import { openVault, tokenWith, type TestVault } from '../../helpers.js';
import { MAX_BATCH_WRITE, MAX_BATCH_WRITE_BYTES, MAX_DATA_BYTES } from '../../../sdk/wire/constants.js';
import type { BatchWriteResult } from '../../../sdk/wire/types.js';
import { removeDir, startPair, until, type Node } from '../replication/cluster.js';

/**
 * `POST /v1/secrets:batch-write` (issue 15 item 3, docs/api.md "Secrets"): each entry gets its
 * own outcome, the others are written whole, one audit line per secret, and a batch that is
 * malformed as a whole (too many entries, a repeated path) writes nothing.
 */

type Headers = Record<string, string>;
const BATCH = '/v1/secrets:batch-write';

function assertError(res: request.Response, status: number, code: string): void {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body?.error?.code, code, JSON.stringify(res.body));
}

const batch = (vault: TestVault, secrets: unknown[], headers: Headers = vault.auth) =>
  request(vault.app).post(BATCH).set(headers).send({ secrets });

async function versionsOf(vault: TestVault, path: string): Promise<number[]> {
  const res = await request(vault.app).get(`/v1/metadata/${path}`).set(vault.auth);
  if (res.status === 404) return [];
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body.versions as { version: number }[]).map((v) => v.version);
}

async function value(vault: TestVault, path: string): Promise<Record<string, string> | undefined> {
  const res = await request(vault.app).get(`/v1/secrets/${path}`).set(vault.auth);
  if (res.status === 404) return undefined;
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.data;
}

async function linesOf(vault: TestVault, requestId: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(vault.auditFile, 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.request_id === requestId);
}

describe('POST /v1/secrets:batch-write', function () {
  this.timeout(60_000);
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/bw/exists')
          .set(vault.auth)
          .send({ data: { v: 'first' } })
      ).status,
      200,
    );
  });
  after(() => vault.cleanup());

  it('an invalid path, a CAS conflict and an oversize value get their own errors; the others are written whole', async () => {
    const res = await batch(vault, [
      { path: 'bw/a', data: { user: 'alice', pass: 'value-a' } },
      { path: 'bw//bad', data: { v: 'value-bad' } },
      { path: 'bw/exists', data: { v: 'second' }, cas: 7 },
      { path: 'bw/huge', data: { v: 'x'.repeat(MAX_DATA_BYTES + 1) } },
      { path: 'bw/typo', data: { v: 'value-typo' }, ttl: 5 },
      { path: 'bw/b', data: { v: 'value-b' }, cas: 0 },
    ]);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { results } = res.body as BatchWriteResult;
    assert.deepEqual(
      results.map((r) => ('error' in r ? [r.path, r.error.code] : [r.path, r.version])),
      [
        ['bw/a', 1],
        ['bw//bad', 'invalid_path'],
        ['bw/exists', 'cas_mismatch'],
        ['bw/huge', 'too_large'],
        ['bw/typo', 'invalid_request'],
        ['bw/b', 1],
      ],
    );
    const errors = results.flatMap((r) => ('error' in r ? [r.error.message] : []));
    assert.match(errors[1]!, /current version is 1, not 7/);
    assert.match(errors[3]!, /unknown field ttl/);
    assert.ok(!JSON.stringify(res.body).includes('value-'), 'no value echoed');
    // Read back: the written ones whole, the refused ones untouched or absent.
    assert.deepEqual(await value(vault, 'bw/a'), { user: 'alice', pass: 'value-a' });
    assert.deepEqual(await value(vault, 'bw/b'), { v: 'value-b' });
    assert.deepEqual(await value(vault, 'bw/exists'), { v: 'first' });
    assert.deepEqual(await versionsOf(vault, 'bw/exists'), [1]);
    assert.deepEqual(await versionsOf(vault, 'bw/huge'), []);
    assert.deepEqual(await versionsOf(vault, 'bw/typo'), []);
  });

  it('writes one audit line per secret, with the status a write of it alone would get, durable before the answer', async () => {
    const res = await batch(vault, [
      { path: 'audit/one', data: { v: 'value-one' } },
      { path: 'audit/two', data: { v: 'value-two' } },
      { path: 'bw/exists', data: { v: 'value-three' }, cas: 0 },
      { path: '../etc', data: { v: 'value-four' } },
    ]);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    // Read at once after the answer: the lines are already in the file.
    const lines = await linesOf(vault, res.headers['x-request-id'] as string);
    assert.deepEqual(
      lines.map((l) => [l.operation, l.path, l.status, l.outcome, l.error_code]),
      [
        ['POST /v1/secrets\\:batch-write', 'audit/one', 200, 'ok', undefined],
        ['POST /v1/secrets\\:batch-write', 'audit/two', 200, 'ok', undefined],
        ['POST /v1/secrets\\:batch-write', 'bw/exists', 409, 'error', 'cas_mismatch'],
        ['POST /v1/secrets\\:batch-write', null, 400, 'error', 'invalid_path'],
      ],
    );
    assert.ok(!JSON.stringify(lines).includes('value-'), 'no value in the audit lines');
  });

  it('writes each secret as its own mutation, sharing synced batches (group commit)', async () => {
    const n = MAX_BATCH_WRITE;
    const seq = vault.store.lastSeq;
    const synced = vault.store.syncedBatches;
    // 1,000 secrets of 2 KiB: a body above the 1 MiB of other routes.
    const filler = 'y'.repeat(2048);
    const res = await batch(
      vault,
      Array.from({ length: n }, (_, i) => ({ path: `many/s${i}`, data: { v: filler } })),
    );
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
    const { results } = res.body as BatchWriteResult;
    assert.equal(results.length, n);
    assert.ok(results.every((r, i) => !('error' in r) && r.path === `many/s${i}` && r.version === 1));
    assert.equal(vault.store.lastSeq - seq, n, 'one change-log record (one atomic version) per secret');
    const syncs = vault.store.syncedBatches - synced;
    assert.ok(syncs < n / 4, `${syncs} synced batches for ${n} secrets`);
    assert.deepEqual(await versionsOf(vault, `many/s${n - 1}`), [1]);
  });

  it('refuses 1,001 entries with 400 naming the limit, and writes nothing', async () => {
    const res = await batch(
      vault,
      Array.from({ length: MAX_BATCH_WRITE + 1 }, (_, i) => ({ path: `over/s${i}`, data: { v: 'v' } })),
    );
    assertError(res, 400, 'invalid_request');
    assert.match(res.body.error.message, /secrets: too large \(maximum 1000\)/);
    const list = await request(vault.app).get('/v1/secrets?prefix=over').set(vault.auth);
    assert.deepEqual(list.body.keys, []);
    assert.equal((await linesOf(vault, res.headers['x-request-id'] as string)).length, 1, 'one line for the refusal');
  });

  it('refuses a batch that names a path twice, or is not a list of entries with a path, and writes nothing', async () => {
    const twice = await batch(vault, [
      { path: 'dup/a', data: { v: '1' } },
      { path: 'dup/b', data: { v: '2' } },
      { path: 'dup/a', data: { v: '3' } },
    ]);
    assertError(twice, 400, 'invalid_request');
    assert.match(twice.body.error.message, /secrets\.2\.path repeats secrets\.0\.path/);
    assert.deepEqual(await versionsOf(vault, 'dup/a'), []);
    assert.deepEqual(await versionsOf(vault, 'dup/b'), []);
    assertError(await batch(vault, []), 400, 'invalid_request');
    assertError(await batch(vault, [{ data: { v: 'no path' } }]), 400, 'invalid_request');
    assertError(await batch(vault, ['dup/a']), 400, 'invalid_request');
    const extra = await request(vault.app)
      .post(BATCH)
      .set(vault.auth)
      .send({ secrets: [{ path: 'dup/c', data: { v: '1' } }], mode: 'fast' });
    assertError(extra, 400, 'invalid_request');
    assert.deepEqual(await versionsOf(vault, 'dup/c'), []);
  });

  it('takes a body up to 16 MiB; past it 413 before reading', async () => {
    const res = await request(vault.app)
      .post(BATCH)
      .set(vault.auth)
      .set('Content-Type', 'application/json')
      .set('Content-Length', String(MAX_BATCH_WRITE_BYTES + 1))
      .send('{}'.padEnd(MAX_BATCH_WRITE_BYTES + 1, ' '));
    assertError(res, 413, 'too_large');
    assert.match(res.body.error.message, new RegExp(`exceeds ${MAX_BATCH_WRITE_BYTES} bytes`));
  });

  it('checks create or update per entry: a denied entry gets its own 403, the same for an existing path', async () => {
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/prod/db')
          .set(vault.auth)
          .send({ data: { v: 'prod-first' } })
      ).status,
      200,
    );
    const ci = await tokenWith(vault, 'bw-ci', [{ path: 'ci/*', capabilities: ['create'] }]);
    const res = await batch(
      vault,
      [
        { path: 'ci/a', data: { v: 'value-ci' } },
        { path: 'prod/db', data: { v: 'value-prod' } },
        { path: 'prod/new', data: { v: 'value-new' } },
      ],
      ci,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const [ok, existing, fresh] = (res.body as BatchWriteResult).results;
    assert.ok(ok && !('error' in ok) && ok.version === 1);
    assert.ok(existing && 'error' in existing && fresh && 'error' in fresh);
    assert.equal(existing.error.code, 'forbidden');
    assert.equal(
      existing.error.message.replace('prod/db', 'P'),
      fresh.error.message.replace('prod/new', 'P'),
      'the refusal does not say whether the secret exists',
    );
    assert.deepEqual(await value(vault, 'prod/db'), { v: 'prod-first' });
    assert.deepEqual(await versionsOf(vault, 'prod/new'), []);
    const lines = await linesOf(vault, res.headers['x-request-id'] as string);
    assert.deepEqual(
      lines.map((l) => [l.path, l.outcome, l.identity]),
      [
        ['ci/a', 'ok', 'svc:bw-ci'],
        ['prod/db', 'denied', 'svc:bw-ci'],
        ['prod/new', 'denied', 'svc:bw-ci'],
      ],
    );
    // An update of ci/a needs `update`, which this token lacks.
    const again = await batch(vault, [{ path: 'ci/a', data: { v: 'value-ci-2' } }], ci);
    assert.equal(again.body.results[0]?.error?.code, 'forbidden', JSON.stringify(again.body));
    assert.deepEqual(await value(vault, 'ci/a'), { v: 'value-ci' });
  });

  it('is refused while sealed, like every other write', async () => {
    const sealed = await openVault();
    try {
      await sealed.seal.seal();
      assertError(await batch(sealed, [{ path: 'app/x', data: { v: '1' } }]), 503, 'sealed');
    } finally {
      await sealed.cleanup();
    }
  });
});

describe('POST /v1/secrets:batch-write on a replica', function () {
  this.timeout(60_000);
  const nodes: Node[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const n of nodes.reverse()) await n.stop();
    for (const d of dirs) await removeDir(d);
  });

  it('is refused as a whole with 409 read_only_replica naming the primary, and writes nothing', async () => {
    const { primary: p, replica: r } = await startPair({ nodes, dirs });
    const token = p.server.rootToken!;
    assert.equal((await p.call('PUT', '/v1/secrets/app/a', { data: { v: 'alpha' } }, token)).status, 200);
    await until(async () => (await r.call('GET', '/v1/secrets/app/a', undefined, token)).status === 200);
    const res = await r.call(
      'POST',
      BATCH,
      {
        secrets: [
          { path: 'app/b', data: { v: 'beta' } },
          { path: 'app/a', data: { v: 'alpha-2' } },
        ],
      },
      token,
    );
    assert.equal(res.status, 409, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'read_only_replica');
    assert.equal((await r.call('GET', '/v1/secrets/app/b', undefined, token)).status, 404);
    assert.equal((await p.call('GET', '/v1/secrets/app/b', undefined, token)).status, 404);
    assert.equal((await p.call('GET', '/v1/metadata/app/a', undefined, token)).body.current_version, 1);
  });
});

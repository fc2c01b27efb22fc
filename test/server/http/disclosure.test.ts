import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import request from 'supertest';
import { openVault, tokenWith, type TestVault } from '../../helpers.js';

/**
 * What a restricted caller can learn, and what the audit log records of it (issue 10 items 4,
 * 5 and 9; SECURITY-CASES C18, C21, F): listing cursors never name hidden keys, a batch read
 * audits every path, capability namespaces are out of reach of secret grants, and a refused
 * write does not say whether the secret exists. Each test failed on main before the fix.
 */

type Headers = Record<string, string>;

function assertError(res: request.Response, status: number, code: string, what = ''): void {
  assert.equal(res.status, status, `${what} expected ${status} ${code}, got ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body?.error?.code, code, `${what} ${JSON.stringify(res.body)}`);
}

async function put(
  vault: TestVault,
  path: string,
  headers: Headers = vault.auth,
  data: object = { v: `value-of-${path}` },
): Promise<request.Response> {
  return request(vault.app).put(`/v1/secrets/${path}`).set(headers).send({ data });
}

async function auditLines(vault: TestVault): Promise<Record<string, unknown>[]> {
  return (await readFile(vault.auditFile, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('listing: `next` never names a key the caller cannot list (issue 10 item 4)', function () {
  this.timeout(60_000);
  let vault: TestVault;
  let lister: Headers;
  const visible = ['app/a', 'app/b', 'app/c', 'app/z'];
  const hidden = ['app/hidden/one', 'app/hidden/two', 'app/hidden/zz'];
  before(async () => {
    vault = await openVault();
    for (const p of [...visible, ...hidden]) assert.equal((await put(vault, p)).status, 200);
    lister = await tokenWith(vault, 'app-flat', [{ path: 'app/*', capabilities: ['read', 'list'] }]);
  });
  after(() => vault.cleanup());

  it('the reported walk (limit=1 after app/c) resumes without naming app/hidden/*', async () => {
    const res = await request(vault.app)
      .get('/v1/secrets')
      .query({ prefix: 'app', limit: '1', after: 'app/c' })
      .set(lister);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.keys, ['app/z']);
    assert.ok(!JSON.stringify(res.body).includes('hidden'), JSON.stringify(res.body));
  });

  it('walking every page with limit 1 returns exactly the visible keys, and no `next` contains a hidden name', async () => {
    const seen: string[] = [];
    let after: string | undefined;
    for (let i = 0; i < 20; i++) {
      const res = await request(vault.app)
        .get('/v1/secrets')
        .query({ prefix: 'app', limit: '1', ...(after ? { after } : {}) })
        .set(lister);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      for (const h of hidden)
        assert.ok(!JSON.stringify(res.body).includes(h), `page ${i} names ${h}: ${JSON.stringify(res.body)}`);
      seen.push(...res.body.keys);
      if (res.body.next === null) break;
      after = res.body.next;
    }
    assert.deepEqual(seen, visible);
  });

  it('a run of hidden names longer than one request scans yields an opaque cursor that resumes the walk', async function () {
    const big = await openVault();
    try {
      const token = await tokenWith(big, 'see-edges', [
        { path: 'n/a', capabilities: ['list'] },
        { path: 'n/z', capabilities: ['list'] },
      ]);
      assert.equal((await put(big, 'n/a')).status, 200);
      assert.equal((await put(big, 'n/z')).status, 200);
      // 5,100 hidden names between the two visible ones: more than one request looks at.
      const rows = Array.from({ length: 5100 }, (_, i) => `n/h${String(i).padStart(5, '0')}`);
      for (let i = 0; i < rows.length; i += 100)
        await Promise.all(rows.slice(i, i + 100).map((p) => big.secrets.put(p, { data: { v: 'h' } })));
      let after: string | undefined;
      const seen: string[] = [];
      const cursors: string[] = [];
      for (let i = 0; i < 10; i++) {
        const res = await request(big.app)
          .get('/v1/secrets')
          .query({ prefix: 'n', limit: '10', ...(after ? { after } : {}) })
          .set(token);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.ok(!/n\/h\d/.test(JSON.stringify(res.body)), JSON.stringify(res.body).slice(0, 200));
        seen.push(...res.body.keys);
        if (res.body.next === null) break;
        if (String(res.body.next).startsWith('~')) cursors.push(res.body.next);
        after = res.body.next;
      }
      assert.deepEqual(seen, ['n/a', 'n/z']);
      assert.ok(cursors.length >= 1, 'the walk crossed the hidden run with an opaque cursor');
      // A cursor opens only for the caller and prefix it was issued to.
      const other = await tokenWith(big, 'same-rules', [
        { path: 'n/a', capabilities: ['list'] },
        { path: 'n/z', capabilities: ['list'] },
      ]);
      assertError(
        await request(big.app).get('/v1/secrets').query({ prefix: 'n', after: cursors[0] }).set(other),
        400,
        'invalid_request',
      );
      assertError(
        await request(big.app).get('/v1/secrets').query({ prefix: '', after: cursors[0] }).set(token),
        400,
        'invalid_request',
      );
      const again = await request(big.app)
        .get('/v1/secrets')
        .query({ prefix: 'n', limit: '10', after: cursors[0] })
        .set(token);
      assert.equal(again.status, 200, 'the same cursor can be used again by its owner');
    } finally {
      await big.cleanup();
    }
  });

  it('refuses a forged or altered cursor with 400, naming nothing', async () => {
    const forged = `~${Buffer.alloc(48, 7).toString('base64url')}`;
    for (const after of [forged, `${forged.slice(0, -2)}AA`, '~short', '~not/base64']) {
      const res = await request(vault.app).get('/v1/secrets').query({ prefix: 'app', after }).set(lister);
      assertError(res, 400, 'invalid_request', after);
      assert.ok(!JSON.stringify(res.body).includes('hidden'));
    }
  });
});

describe('batch reads are audited per secret (issue 10 item 5)', () => {
  let vault: TestVault;
  let reader: Headers;
  before(async () => {
    vault = await openVault();
    for (const p of ['ci/a', 'ci/b', 'prod/db']) assert.equal((await put(vault, p)).status, 200);
    reader = await tokenWith(vault, 'ci-read', [{ path: 'ci/*', capabilities: ['read'] }]);
  });
  after(() => vault.cleanup());

  it('one line names every path with its own outcome: disclosed, denied, missing', async () => {
    const res = await request(vault.app)
      .post('/v1/secrets:batch')
      .set(reader)
      .send({ paths: ['ci/a', 'prod/db', 'ci/missing', 'ci/b'] });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(Object.keys(res.body.secrets).sort(), ['ci/a', 'ci/b']);
    const line = (await auditLines(vault)).filter((l) => l.request_id === res.headers['x-request-id']);
    assert.equal(line.length, 1);
    assert.deepEqual(line[0]!.paths, [
      { path: 'ci/a', outcome: 'ok' },
      { path: 'prod/db', outcome: 'denied', error_code: 'forbidden' },
      { path: 'ci/missing', outcome: 'error', error_code: 'not_found' },
      { path: 'ci/b', outcome: 'ok' },
    ]);
    assert.ok(!JSON.stringify(line[0]).includes('value-of-'), 'no value in the audit line');
  });
});

describe('capability namespaces and existence (issue 10 item 9)', () => {
  let vault: TestVault;
  let everything: Headers;
  before(async () => {
    vault = await openVault();
    everything = await tokenWith(vault, 'everything', [
      { path: '**', capabilities: ['read', 'list', 'create', 'update', 'delete', 'destroy'] },
    ]);
    assert.equal((await request(vault.app).post('/v1/keys/payments').set(vault.auth).send({})).status, 200);
  });
  after(() => vault.cleanup());

  it('a `**` secret grant does not decrypt, encrypt or make data keys with transit keys', async () => {
    const enc = await request(vault.app)
      .post('/v1/keys/payments/encrypt')
      .set(vault.auth)
      .send({ plaintext: Buffer.from('card').toString('base64') });
    assert.equal(enc.status, 200, JSON.stringify(enc.body));
    assertError(
      await request(vault.app)
        .post('/v1/keys/payments/decrypt')
        .set(everything)
        .send({ ciphertext: enc.body.ciphertext }),
      403,
      'forbidden',
    );
    assertError(
      await request(vault.app).post('/v1/keys/payments/encrypt').set(everything).send({ plaintext: 'AA==' }),
      403,
      'forbidden',
    );
    assertError(await request(vault.app).post('/v1/keys/payments/datakey').set(everything).send({}), 403, 'forbidden');
  });

  it('a `**` grant with admin does not reach sys/ admin routes either', async () => {
    const admin = await tokenWith(vault, 'star-admin', [{ path: '**', capabilities: ['admin', 'read'] }]);
    assertError(await request(vault.app).get('/v1/policies/everything').set(admin), 403, 'forbidden');
    assertError(await request(vault.app).post('/v1/sys/seal').set(admin).send({}), 403, 'forbidden');
    assert.equal(vault.seal.sealed, false);
  });

  it('a rule that names transit/ or sys/ literally still grants there, and a wildcard deny still denies', async () => {
    const t = await tokenWith(vault, 'transit-user', [
      { path: 'transit/payments', capabilities: ['update', 'read'] },
      { path: '*/*', capabilities: ['read'] },
    ]);
    const enc = await request(vault.app).post('/v1/keys/payments/encrypt').set(t).send({ plaintext: 'AA==' });
    assert.equal(enc.status, 200, JSON.stringify(enc.body));
    const pol = await tokenWith(vault, 'pol-admin', [{ path: 'sys/policies/*', capabilities: ['admin'] }]);
    assert.equal((await request(vault.app).get('/v1/policies/everything').set(pol)).status, 200);
    const denied = await tokenWith(vault, 'pol-admin-denied', [
      { path: 'sys/policies/*', capabilities: ['admin'] },
      { path: '**', capabilities: ['deny'] },
    ]);
    assertError(await request(vault.app).get('/v1/policies/everything').set(denied), 403, 'forbidden');
  });

  it('no secret can be written, read or listed under sys/ or transit/ (any case)', async () => {
    for (const path of ['transit/payments', 'sys/policies/x', 'SYS/x', 'Transit/k/v']) {
      assertError(await put(vault, path, vault.auth), 400, 'invalid_path', path);
      assertError(await put(vault, path, everything), 400, 'invalid_path', path);
      assertError(await request(vault.app).get(`/v1/secrets/${path}`).set(vault.auth), 400, 'invalid_path', path);
    }
    assertError(
      await request(vault.app).get('/v1/secrets').query({ prefix: 'sys' }).set(vault.auth),
      400,
      'invalid_request',
    );
    assertError(
      await request(vault.app)
        .post('/v1/secrets:batch')
        .set(vault.auth)
        .send({ paths: ['transit/payments'] }),
      400,
      'invalid_request',
    );
    const res = await put(vault, 'sys/x', vault.auth);
    assert.match(res.body.error.message, /reserved/);
    // Names that only start like the reserved ones are ordinary namespaces.
    for (const path of ['system/x', 'transits/y', 'sys-config/z'])
      assert.equal((await put(vault, path, everything)).status, 200, path);
  });

  it('a refused write answers the same 403 whether or not the secret exists (C21)', async () => {
    assert.equal((await put(vault, 'quiet/exists')).status, 200);
    const none = await tokenWith(vault, 'quiet-read', [{ path: 'quiet/*', capabilities: ['read'] }]);
    const a = await put(vault, 'quiet/exists', none);
    const b = await put(vault, 'quiet/missing', none);
    assertError(a, 403, 'forbidden');
    assertError(b, 403, 'forbidden');
    assert.equal(a.body.error.message.replace('exists', 'X'), b.body.error.message.replace('missing', 'X'));
  });

  it('generate.key may be any data key name, `constructor` included; `__proto__` is refused', async () => {
    const res = await request(vault.app)
      .put('/v1/secrets/gen/one')
      .set(vault.auth)
      .send({ data: { user: 'u' }, generate: { key: 'constructor', length: 16 } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const got = await request(vault.app).get('/v1/secrets/gen/one').set(vault.auth);
    assert.match(got.body.data.constructor, /^[A-Za-z0-9]{16}$/);
    assert.equal(got.body.data.user, 'u');
    for (const key of ['toString', 'hasOwnProperty', 'valueOf']) {
      assert.equal(
        (await request(vault.app).put(`/v1/secrets/gen/${key}`).set(vault.auth).send({ data: {}, generate: { key } }))
          .status,
        200,
        key,
      );
    }
    assertError(
      await request(vault.app)
        .put('/v1/secrets/gen/two')
        .set(vault.auth)
        .send({ data: { a: 'b' }, generate: { key: '__proto__' } }),
      400,
      'invalid_request',
    );
    assert.equal(
      (await request(vault.app).get('/v1/secrets/gen/two').set(vault.auth)).status,
      404,
      'nothing was stored',
    );
  });
});

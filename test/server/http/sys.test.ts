import assert from 'node:assert/strict';
import request from 'supertest';
import { openVault, type TestVault } from '../../helpers.js';

/**
 * Integration tests of /v1/sys: health, seal-status, init, unseal (including refused and forged
 * shares), seal, the sealed gate, master-key rotation and keyring rotation with rewrap.
 */

function assertError(res: request.Response, status: number, code: string, what = ''): void {
  assert.equal(res.status, status, `${what} expected ${status} ${code}, got ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(res.body?.error?.code, code, `${what} ${JSON.stringify(res.body)}`);
}

const status = (vault: TestVault) => request(vault.app).get('/v1/sys/seal-status');
const unseal = (vault: TestVault, body: unknown) =>
  request(vault.app)
    .post('/v1/sys/unseal')
    .send(body as object);
const health = async (vault: TestVault) => {
  const res = await request(vault.app).get('/v1/sys/health');
  // Vault's fields beside Coffer's (server/http/vault/sys.ts; test/server/http/vault/health.test.ts checks them).
  const {
    standby,
    performance_standby,
    replication_performance_mode,
    replication_dr_mode,
    server_time_utc,
    cluster_name,
    ...body
  } = res.body;
  assert.equal(typeof server_time_utc, 'number');
  assert.deepEqual(
    { standby, performance_standby, replication_performance_mode, replication_dr_mode, cluster_name },
    {
      standby: false,
      performance_standby: false,
      replication_performance_mode: 'disabled',
      replication_dr_mode: 'disabled',
      cluster_name: 'coffer',
    },
  );
  return Object.assign(res, { body });
};

/** A copy of `share` with one byte of its y part (after the 7-byte header) flipped. */
function forge(share: string, offset = 5): string {
  const bytes = Buffer.from(share, 'base64');
  bytes[7 + offset] = bytes[7 + offset]! ^ 0x5a;
  return bytes.toString('base64');
}

function withByte(share: string, index: number, value: number): string {
  const bytes = Buffer.from(share, 'base64');
  bytes[index] = value;
  return bytes.toString('base64');
}

/** One request per route that needs an unsealed vault. */
function gatedRequests(vault: TestVault, headers: Record<string, string>) {
  const app = vault.app;
  return [
    ['GET secret', () => request(app).get('/v1/secrets/app/x').set(headers)],
    ['GET secret version', () => request(app).get('/v1/secrets/app/x?version=1').set(headers)],
    [
      'PUT secret',
      () =>
        request(app)
          .put('/v1/secrets/app/x')
          .set(headers)
          .send({ data: { v: 'while-sealed' } }),
    ],
    ['DELETE secret', () => request(app).delete('/v1/secrets/app/x').set(headers)],
    [
      'POST undelete',
      () =>
        request(app)
          .post('/v1/secrets/app/x/undelete')
          .set(headers)
          .send({ versions: [1] }),
    ],
    [
      'POST destroy',
      () =>
        request(app)
          .post('/v1/secrets/app/x/destroy')
          .set(headers)
          .send({ versions: [1] }),
    ],
    ['GET metadata', () => request(app).get('/v1/metadata/app/x').set(headers)],
    ['GET list', () => request(app).get('/v1/secrets?prefix=app').set(headers)],
    ['GET expiring', () => request(app).get('/v1/secrets?expiring_within=30d').set(headers)],
    [
      'POST batch',
      () =>
        request(app)
          .post('/v1/secrets:batch')
          .set(headers)
          .send({ paths: ['app/x'] }),
    ],
    ['GET invalid path', () => request(app).get('/v1/secrets/app/%2e%2e/x').set(headers)],
    ['POST seal', () => request(app).post('/v1/sys/seal').set(headers).send({})],
    ['POST rotate', () => request(app).post('/v1/sys/rotate').set(headers).send({})],
    ['GET keyring', () => request(app).get('/v1/sys/keyrings/app').set(headers)],
    ['POST keyring rotate', () => request(app).post('/v1/sys/keyrings/app/rotate').set(headers).send({ rewrap: true })],
    ['GET metrics', () => request(app).get('/v1/sys/metrics').set(headers)],
  ] as const;
}

describe('http sys: uninitialized vault and init', () => {
  let vault: TestVault;
  let shares: string[] = [];
  let rootToken = '';
  before(async () => {
    vault = await openVault({ init: false });
  });
  after(() => vault.cleanup());

  it('health answers 501 with initialized:false before init', async () => {
    const res = await health(vault);
    assert.equal(res.status, 501);
    assert.equal(res.body.initialized, false);
    assert.equal(res.body.sealed, true);
    assert.equal(res.body.role, 'primary');
    assert.equal(typeof res.body.version, 'string');
  });

  it('seal-status reports an uninitialized vault', async () => {
    const res = await status(vault);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      initialized: false,
      sealed: true,
      threshold: 0,
      shares: 0,
      progress: 0,
      provider: 'shamir',
    });
  });

  it('answers 503 not_initialized on secrets routes and unseal before init', async () => {
    assertError(
      await request(vault.app).get('/v1/secrets/app/x').set({ Authorization: 'Bearer anything' }),
      503,
      'not_initialized',
    );
    assertError(await request(vault.app).get('/v1/secrets/app/x'), 503, 'not_initialized');
    assertError(
      await request(vault.app)
        .put('/v1/secrets/app/x')
        .send({ data: { a: 'b' } }),
      503,
      'not_initialized',
    );
    assertError(await unseal(vault, { share: Buffer.alloc(39, 1).toString('base64') }), 503, 'not_initialized');
  });

  it('refuses init with threshold greater than shares, or out-of-range values, with 400 and stays uninitialized', async () => {
    for (const body of [
      { shares: 3, threshold: 4 },
      { shares: 1, threshold: 2 },
      { shares: 0, threshold: 0 },
      { shares: 256, threshold: 3 },
      { shares: 5, threshold: 0 },
      { shares: '5', threshold: '3' },
      { shares: 5.5, threshold: 3 },
      { shares: 5, threshold: 3, root_token: 'mine' },
    ]) {
      const res = await request(vault.app).post('/v1/sys/init').send(body);
      assertError(res, 400, 'invalid_request', JSON.stringify(body));
      if (body.threshold === 4) assert.equal(res.body.error.message, 'threshold: threshold must not exceed shares');
    }
    assert.equal((await health(vault)).status, 501);
    assert.equal((await status(vault)).body.initialized, false);
  });

  it('init returns the shares and a root token once, and leaves a shamir vault sealed', async () => {
    const res = await request(vault.app).post('/v1/sys/init').send({ shares: 3, threshold: 2 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(Object.keys(res.body).sort(), ['root_token', 'shares']);
    shares = res.body.shares;
    rootToken = res.body.root_token;
    assert.equal(shares.length, 3);
    assert.equal(new Set(shares).size, 3);
    for (const s of shares) assert.match(s, /^[A-Za-z0-9+/]+=*$/);
    assert.equal(typeof rootToken, 'string');
    assert.ok(rootToken.length >= 32);
    assert.equal((await health(vault)).status, 503);
    const st = await status(vault);
    assert.deepEqual(st.body, {
      initialized: true,
      sealed: true,
      threshold: 2,
      shares: 3,
      progress: 0,
      provider: 'shamir',
    });
  });

  it('refuses a second init with 409 already_initialized and issues no new token', async () => {
    const res = await request(vault.app).post('/v1/sys/init').send({ shares: 1, threshold: 1 });
    assertError(res, 409, 'already_initialized');
    assert.equal(res.body.shares, undefined);
    assert.equal(res.body.root_token, undefined);
    assert.equal((await status(vault)).body.threshold, 2);
  });

  it('unseals with the threshold of init shares, and the root token from init works', async () => {
    const first = await unseal(vault, { share: shares[2] });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.progress, 1);
    const second = await unseal(vault, { share: shares[0] });
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal(second.body.sealed, false);
    assert.equal((await health(vault)).status, 200);
    const auth = { Authorization: `Bearer ${rootToken}` };
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/app/x')
          .set(auth)
          .send({ data: { v: '1' } })
      ).status,
      200,
    );
    assert.deepEqual((await request(vault.app).get('/v1/secrets/app/x').set(auth)).body.data, { v: '1' });
    assertError(
      await request(vault.app).post('/v1/sys/init').send({ shares: 3, threshold: 2 }),
      409,
      'already_initialized',
    );
    assert.equal((await request(vault.app).get('/v1/secrets/app/x').set(auth)).status, 200);
  });
});

describe('http sys: health and seal-status of an unsealed vault', () => {
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
  });
  after(() => vault.cleanup());

  it('health answers 200 with initialized, sealed, role and version, without a token', async () => {
    const res = await health(vault);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { initialized: true, sealed: false, role: 'primary', version: 'test' });
  });

  it('seal-status has exactly initialized, sealed, threshold, shares, progress, provider and, unsealed, the master key', async () => {
    const res = await status(vault);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      initialized: true,
      sealed: false,
      threshold: 3,
      shares: 5,
      progress: 0,
      provider: 'shamir',
      master_key: { version: 1, imported: false, exportable: true, valid_to: null, expired: false },
    });
  });

  it('answers unseal on an unsealed vault with its status', async () => {
    const res = await unseal(vault, { share: vault.shares[0] });
    assert.equal(res.status, 200);
    assert.equal(res.body.sealed, false);
    assert.equal(res.body.progress, 0);
  });
});

describe('http sys: seal and unseal', () => {
  // A fresh vault per test: init and unseal are rate-limited per client (30 a minute).
  let vault: TestVault;
  let other: TestVault;
  before(async () => {
    other = await openVault();
  });
  after(() => other.cleanup());
  beforeEach(async () => {
    vault = await openVault();
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/app/kept')
          .set(vault.auth)
          .send({ data: { v: 'kept-value' } })
      ).status,
      200,
    );
    assert.equal((await request(vault.app).post('/v1/sys/seal').set(vault.auth).send({})).status, 204);
  });
  afterEach(() => vault.cleanup());

  it('a seal runs each seal listener once, in order, and none that was removed (even by one that ran before it)', async () => {
    await unsealAll(vault);
    const ran: string[] = [];
    let removeSecond = () => undefined as void;
    const removeFirst = vault.seal.onSeal(() => {
      ran.push('first');
      removeSecond(); // a listener removing another one mid-seal: the seal runs its own copy of the list
    });
    removeSecond = vault.seal.onSeal(() => void ran.push('second'));
    const removed = vault.seal.onSeal(() => void ran.push('removed'));
    removed();
    removed(); // twice: no other listener goes with it
    await vault.seal.seal();
    assert.deepEqual(ran, ['first', 'second']);
    removeFirst();
    await unsealAll(vault);
    await vault.seal.seal();
    assert.deepEqual(ran, ['first', 'second'], 'removed listeners stay removed');
  });

  it('POST /v1/sys/seal needs a valid token; then reads are 503 until threshold shares unseal, and old secrets read back', async () => {
    await unsealAll(vault);
    assertError(await request(vault.app).post('/v1/sys/seal').send({}), 401, 'unauthenticated');
    assertError(
      await request(vault.app).post('/v1/sys/seal').set({ Authorization: 'Bearer wrong' }).send({}),
      401,
      'unauthenticated',
    );
    assert.equal((await health(vault)).status, 200, 'a refused seal request sealed the vault');

    const sealed = await request(vault.app).post('/v1/sys/seal').set(vault.auth).send({});
    assert.equal(sealed.status, 204);
    assert.equal((await health(vault)).status, 503);
    assert.deepEqual((await health(vault)).body, { initialized: true, sealed: true, role: 'primary', version: 'test' });
    assertError(await request(vault.app).get('/v1/secrets/app/kept').set(vault.auth), 503, 'sealed');

    for (const [i, share] of vault.shares.slice(0, 2).entries()) {
      const res = await unseal(vault, { share });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const { nonce, ...rest } = res.body;
      assert.deepEqual(rest, {
        initialized: true,
        sealed: true,
        threshold: 3,
        shares: 5,
        progress: i + 1,
        provider: 'shamir',
      });
      assert.match(nonce, /^[A-Za-z0-9_-]{22}$/);
      assertError(await request(vault.app).get('/v1/secrets/app/kept').set(vault.auth), 503, 'sealed');
    }
    const last = await unseal(vault, { share: vault.shares[4] });
    assert.equal(last.status, 200, JSON.stringify(last.body));
    assert.equal(last.body.sealed, false);
    assert.equal(last.body.progress, 0);
    const get = await request(vault.app).get('/v1/secrets/app/kept').set(vault.auth);
    assert.equal(get.status, 200);
    assert.deepEqual(get.body.data, { v: 'kept-value' });
  });

  it('answers 503 sealed on every secrets route and admin route while sealed, whatever the token', async () => {
    const tokens: [string, Record<string, string>][] = [
      ['root token', vault.auth],
      ['wrong token', { Authorization: 'Bearer cof_root_wrong' }],
      ['malformed token', { Authorization: 'Basic abc' }],
      ['no token', {}],
    ];
    const messages = new Set<string>();
    for (const [who, headers] of tokens) {
      for (const [what, send] of gatedRequests(vault, headers)) {
        const res = await send();
        assertError(res, 503, 'sealed', `${what} with ${who}:`);
        assert.ok(!res.text.includes('token'), `${what} with ${who}: the sealed answer talks about the token`);
        messages.add(res.body.error.message);
      }
    }
    assert.equal(messages.size, 1, 'the sealed answer differs by token or route');
    await unsealAll(vault);
    const meta = await request(vault.app).get('/v1/metadata/app/kept').set(vault.auth);
    assert.equal(meta.body.current_version, 1, 'a request while sealed changed the secret');
    assert.equal(meta.body.versions[0].deleted_at, null);
    assert.equal(meta.body.versions[0].destroyed, false);
  });

  it('refuses the same share twice with 400 and keeps the progress', async () => {
    assert.equal((await unseal(vault, { share: vault.shares[1] })).body.progress, 1);
    const again = await unseal(vault, { share: vault.shares[1] });
    assertError(again, 400, 'invalid_request');
    assert.ok(!again.text.includes(vault.shares[1]!), 'the error echoes the share');
    assert.equal((await status(vault)).body.progress, 1);
    assert.equal((await unseal(vault, { share: vault.shares[2] })).body.progress, 2);
    assertError(await unseal(vault, { share: vault.shares[2] }), 400, 'invalid_request');
    assertError(await unseal(vault, { share: vault.shares[1] }), 400, 'invalid_request');
    assert.equal((await status(vault)).body.progress, 2);
    const done = await unseal(vault, { share: vault.shares[3] });
    assert.equal(done.body.sealed, false);
  });

  it('refuses malformed shares with 400 and keeps the progress', async () => {
    assert.equal((await unseal(vault, { share: vault.shares[0] })).body.progress, 1);
    const real = vault.shares[1]!;
    const bad: unknown[] = [
      'not base64 at all!',
      '',
      'AAAA',
      real.slice(0, -4),
      `${real}AAAA`,
      Buffer.from(real, 'base64').subarray(0, 20).toString('base64'),
      withByte(real, 0, 2), // unknown format byte
      withByte(real, 6, 0), // x = 0
      withByte(real, 5, 0), // threshold 0
      withByte(real, 5, 2), // another threshold: not this vault's split
      withByte(real, 1, Buffer.from(real, 'base64')[1]! ^ 0xff), // another set id
      'A'.repeat(2000),
      42,
      null,
      [real],
    ];
    for (const share of bad) {
      const res = await unseal(vault, { share });
      assert.equal(
        res.status,
        400,
        `${JSON.stringify(share)?.slice(0, 40)}: ${res.status} ${JSON.stringify(res.body)}`,
      );
      assert.equal(res.body.error.code, 'invalid_request');
    }
    for (const body of [{}, { share: real, reset: true }, { reset: false }, { shares: [real] }]) {
      assertError(await unseal(vault, body), 400, 'invalid_request', JSON.stringify(body).slice(0, 40));
    }
    assertError(
      await request(vault.app).post('/v1/sys/unseal').set('Content-Type', 'application/json').send('{"share":'),
      400,
      'invalid_request',
    );
    const st = await status(vault);
    assert.equal(st.body.progress, 1);
    assert.equal(st.body.sealed, true);
  });

  it('refuses a share of another vault with 400 and keeps the progress', async () => {
    assert.equal((await unseal(vault, { share: vault.shares[0] })).body.progress, 1);
    for (const share of other.shares.slice(0, 3)) {
      const res = await unseal(vault, { share });
      assertError(res, 400, 'invalid_request');
    }
    assert.equal((await status(vault)).body.progress, 1);
    assert.equal((await status(vault)).body.sealed, true);
    // The other vault's shares did not disturb it either.
    assert.equal((await health(other)).status, 200);
  });

  it('refuses forged shares at the threshold with 400 unseal_failed, stays sealed, resets progress, and real shares still unseal', async () => {
    const forgeries = [
      [vault.shares[0]!, vault.shares[1]!, forge(vault.shares[2]!)],
      [forge(vault.shares[0]!, 0), vault.shares[1]!, vault.shares[2]!],
      [forge(vault.shares[0]!, 31), forge(vault.shares[3]!, 0), forge(vault.shares[4]!, 17)],
    ];
    for (const set of forgeries) {
      for (const [i, share] of set.slice(0, 2).entries()) {
        const res = await unseal(vault, { share });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.progress, i + 1);
      }
      const res = await unseal(vault, { share: set[2] });
      assertError(res, 400, 'unseal_failed');
      const st = await status(vault);
      assert.equal(st.body.sealed, true);
      assert.equal(st.body.progress, 0);
      assert.equal((await health(vault)).status, 503);
      assertError(await request(vault.app).get('/v1/secrets/app/kept').set(vault.auth), 503, 'sealed');
    }
    await unsealAll(vault, [2, 0, 1]);
    assert.deepEqual((await request(vault.app).get('/v1/secrets/app/kept').set(vault.auth)).body.data, {
      v: 'kept-value',
    });
  });

  it('reset:true with the nonce of the first share clears the progress, after which the same share counts again', async () => {
    const first = await unseal(vault, { share: vault.shares[0] });
    assert.equal(first.body.progress, 1);
    assert.match(first.body.nonce, /^[A-Za-z0-9_-]{22}$/);
    const second = await unseal(vault, { share: vault.shares[1] });
    assert.equal(second.body.progress, 2);
    assert.equal(second.body.nonce, first.body.nonce);
    assert.equal((await status(vault)).body.nonce, undefined, 'the public seal status never shows the nonce');
    const reset = await unseal(vault, { reset: true, nonce: first.body.nonce });
    assert.equal(reset.status, 200);
    assert.equal(reset.body.progress, 0);
    assert.equal(reset.body.sealed, true);
    assert.equal((await status(vault)).body.progress, 0);
    assert.equal((await unseal(vault, { share: vault.shares[0] })).body.progress, 1);
  });

  // Fails before issue 10: the unauthenticated {reset:true} let anyone wipe the administrators' progress.
  it('refuses a reset of an unseal in progress without its nonce, and keeps the progress', async () => {
    const first = await unseal(vault, { share: vault.shares[0] });
    assert.equal(first.body.progress, 1);
    for (const body of [
      { reset: true },
      { reset: true, nonce: 'A'.repeat(22) },
      { reset: true, nonce: first.body.nonce.slice(1) },
    ]) {
      const res = await unseal(vault, body);
      assertError(res, 400, 'invalid_request');
      assert.match(res.body.error.message, /nonce/);
      assert.ok(!JSON.stringify(res.body).includes(first.body.nonce), 'the refusal does not reveal the nonce');
    }
    assert.equal((await status(vault)).body.progress, 1);
    assertError(await unseal(vault, { reset: true, nonce: 'x'.repeat(65) }), 400, 'invalid_request');
    // With nothing in progress there is nothing to protect: a reset without nonce is a no-op.
    assert.equal((await unseal(vault, { reset: true, nonce: first.body.nonce })).body.progress, 0);
    assert.equal((await unseal(vault, { reset: true })).status, 200);
    // A new unseal gets a new nonce.
    const again = await unseal(vault, { share: vault.shares[0] });
    assert.notEqual(again.body.nonce, first.body.nonce);
    assert.equal((await unseal(vault, { reset: true, nonce: again.body.nonce })).body.progress, 0);
  });

  async function unsealAll(v: TestVault, order = [0, 1, 2]): Promise<void> {
    if (!v.seal.sealed) return;
    for (const i of order) {
      const res = await unseal(v, { share: v.shares[i] });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
    assert.equal((await status(v)).body.sealed, false);
  }
});

describe('http sys: master key rotation', () => {
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
    for (const [path, v] of [
      ['app/one', 'a1'],
      ['app/one', 'a2'],
      ['other/two', 'b1'],
    ] as const) {
      assert.equal(
        (await request(vault.app).put(`/v1/secrets/${path}`).set(vault.auth).send({ data: { v } })).status,
        200,
      );
    }
  });
  after(() => vault.cleanup());

  it('refuses rotation without a valid token', async () => {
    assertError(await request(vault.app).post('/v1/sys/rotate').send({}), 401, 'unauthenticated');
    assertError(
      await request(vault.app).post('/v1/sys/rotate').set({ Authorization: 'Bearer nope' }).send({}),
      401,
      'unauthenticated',
    );
    assertError(
      await request(vault.app).post('/v1/sys/rotate').set(vault.auth).send({ version: 5 }),
      400,
      'invalid_request',
    );
  });

  it('returns master_version 2; old secrets still read and new writes work', async () => {
    const res = await request(vault.app).post('/v1/sys/rotate').set(vault.auth).send({});
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.master_version, 2);
    assert.equal(res.body.keyrings_rewrapped, 3, 'app, other and sys (token signing keys)');
    assert.deepEqual((await request(vault.app).get('/v1/secrets/app/one?version=1').set(vault.auth)).body.data, {
      v: 'a1',
    });
    assert.deepEqual((await request(vault.app).get('/v1/secrets/app/one').set(vault.auth)).body.data, { v: 'a2' });
    assert.deepEqual((await request(vault.app).get('/v1/secrets/other/two').set(vault.auth)).body.data, { v: 'b1' });
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/app/one')
          .set(vault.auth)
          .send({ data: { v: 'a3' } })
      ).body.version,
      3,
    );
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/fresh/ns')
          .set(vault.auth)
          .send({ data: { v: 'c1' } })
      ).status,
      200,
    );
    const keyring = await request(vault.app).get('/v1/sys/keyrings/app').set(vault.auth);
    assert.equal(keyring.body.master_version, 2);
    assert.ok(keyring.body.versions.every((v: { master_version: number }) => v.master_version === 2));
  });

  it('rotates again to master_version 3, and everything reads back after seal and unseal', async () => {
    const res = await request(vault.app).post('/v1/sys/rotate').set(vault.auth).send({});
    assert.equal(res.body.master_version, 3);
    assert.equal((await request(vault.app).post('/v1/sys/seal').set(vault.auth).send({})).status, 204);
    for (const share of vault.shares.slice(1, 4)) await unseal(vault, { share });
    assert.equal((await health(vault)).status, 200);
    for (const [path, v] of [
      ['app/one?version=1', 'a1'],
      ['app/one?version=2', 'a2'],
      ['app/one', 'a3'],
      ['other/two', 'b1'],
      ['fresh/ns', 'c1'],
    ] as const) {
      const get = await request(vault.app).get(`/v1/secrets/${path}`).set(vault.auth);
      assert.equal(get.status, 200, `${path}: ${JSON.stringify(get.body)}`);
      assert.deepEqual(get.body.data, { v });
    }
    assert.equal((await request(vault.app).get('/v1/sys/keyrings/app').set(vault.auth)).body.master_version, 3);
  });
});

describe('http sys: keyring rotation and rewrap', () => {
  let vault: TestVault;
  const writes: [string, string][] = [
    ['app', 'root-1'],
    ['app/a', 'a-1'],
    ['app/a', 'a-2'],
    ['app/a', 'a-3'],
    ['app/b/c', 'c-1'],
    ['app/d', 'd-1'],
    ['app/d', 'd-2'],
    ['app/e', 'e-1'],
    ['app/e', 'e-2'],
    ['app-2/x', 'x-1'],
    ['other/y', 'y-1'],
  ];
  const get = (path: string, version?: number) =>
    request(vault.app)
      .get(`/v1/secrets/${path}${version ? `?version=${version}` : ''}`)
      .set(vault.auth);

  before(async () => {
    vault = await openVault();
    for (const [path, v] of writes)
      assert.equal(
        (await request(vault.app).put(`/v1/secrets/${path}`).set(vault.auth).send({ data: { v } })).status,
        200,
      );
    assert.equal((await request(vault.app).delete('/v1/secrets/app/d?versions=1').set(vault.auth)).status, 204);
    assert.equal(
      (
        await request(vault.app)
          .post('/v1/secrets/app/e/destroy')
          .set(vault.auth)
          .send({ versions: [1] })
      ).status,
      204,
    );
  });
  after(() => vault.cleanup());

  /** Stored version records of a namespace: every version that is not destroyed. */
  async function storedVersions(prefix: string): Promise<number> {
    const keys: string[] = (await request(vault.app).get(`/v1/secrets?prefix=${prefix}&limit=1000`).set(vault.auth))
      .body.keys;
    let count = 0;
    for (const key of keys) {
      const meta = await request(vault.app).get(`/v1/metadata/${key}`).set(vault.auth);
      count += meta.body.versions.filter((v: { destroyed: boolean }) => !v.destroyed).length;
    }
    return count;
  }

  it('describes a namespace keyring without key material', async () => {
    const res = await request(vault.app).get('/v1/sys/keyrings/app').set(vault.auth);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.namespace, 'app');
    assert.equal(res.body.current, 1);
    assert.equal(res.body.rewrap, null);
    assert.equal(res.body.versions.length, 1);
    assert.ok(!/wrapped|key"/.test(res.text), `keyring view carries key material: ${res.text}`);
  });

  it('answers 404 for the keyring of a namespace that has none, and 400 for an invalid namespace', async () => {
    assertError(await request(vault.app).get('/v1/sys/keyrings/nonexistent').set(vault.auth), 404, 'not_found');
    assertError(await request(vault.app).get('/v1/sys/keyrings/-bad').set(vault.auth), 400, 'invalid_path');
    assertError(
      await request(vault.app).get('/v1/sys/keyrings/app').set({ Authorization: 'Bearer nope' }),
      401,
      'unauthenticated',
    );
  });

  it('refuses a keyring rotation with a bad body or without a token, and rotates nothing', async () => {
    assertError(
      await request(vault.app).post('/v1/sys/keyrings/app/rotate').set(vault.auth).send({ rewrap: 'yes' }),
      400,
      'invalid_request',
    );
    assertError(
      await request(vault.app).post('/v1/sys/keyrings/app/rotate').set(vault.auth).send({ rewrap: true, extra: 1 }),
      400,
      'invalid_request',
    );
    assertError(
      await request(vault.app).post('/v1/sys/keyrings/app/rotate').send({ rewrap: true }),
      401,
      'unauthenticated',
    );
    assert.equal((await request(vault.app).get('/v1/sys/keyrings/app').set(vault.auth)).body.current, 1);
  });

  it('rotate {rewrap:true} re-wraps every stored version of the namespace in the background; all secrets still read', async () => {
    const expected = await storedVersions('app');
    assert.equal(expected, 8, 'app, 3 of app/a, app/b/c, 2 of app/d (one soft-deleted), 1 of app/e (one destroyed)');
    const res = await request(vault.app).post('/v1/sys/keyrings/app/rotate').set(vault.auth).send({ rewrap: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.namespace, 'app');
    assert.equal(res.body.version, 2);
    assert.equal(res.body.rewrap.target_version, 2);
    await vault.rewrap.idle();

    const keyring = await request(vault.app).get('/v1/sys/keyrings/app').set(vault.auth);
    assert.equal(keyring.status, 200, JSON.stringify(keyring.body));
    assert.equal(keyring.body.current, 2);
    assert.deepEqual(keyring.body.versions.map((v: { version: number }) => v.version).sort(), [1, 2]);
    assert.equal(keyring.body.rewrap.state, 'done');
    assert.equal(keyring.body.rewrap.target_version, 2);
    assert.equal(keyring.body.rewrap.rewrapped, expected);
    assert.equal(keyring.body.rewrap.error, undefined);
    assert.ok(keyring.body.rewrap.finished_at);

    for (const [path, v] of [
      ['app', 'root-1'],
      ['app/a', 'a-3'],
      ['app/b/c', 'c-1'],
      ['app/d', 'd-2'],
      ['app/e', 'e-2'],
      ['app-2/x', 'x-1'],
      ['other/y', 'y-1'],
    ]) {
      const res = await get(path!);
      assert.equal(res.status, 200, `${path}: ${JSON.stringify(res.body)}`);
      assert.deepEqual(res.body.data, { v });
    }
    for (const [n, v] of [
      [1, 'a-1'],
      [2, 'a-2'],
    ] as const)
      assert.deepEqual((await get('app/a', n)).body.data, { v });
    // The soft-deleted version was re-wrapped too and reads again once undeleted.
    assert.equal(
      (
        await request(vault.app)
          .post('/v1/secrets/app/d/undelete')
          .set(vault.auth)
          .send({ versions: [1] })
      ).status,
      204,
    );
    assert.deepEqual((await get('app/d', 1)).body.data, { v: 'd-1' });
    assertError(await get('app/e', 1), 404, 'not_found');
    // Other namespaces are not part of the job.
    const sibling = await request(vault.app).get('/v1/sys/keyrings/app-2').set(vault.auth);
    assert.equal(sibling.body.current, 1);
    assert.equal(sibling.body.rewrap, null);
  });

  it('writes new versions under the new keyring version, and a second rotation without rewrap keeps old versions readable', async () => {
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/app/a')
          .set(vault.auth)
          .send({ data: { v: 'a-4' } })
      ).body.version,
      4,
    );
    const res = await request(vault.app).post('/v1/sys/keyrings/app/rotate').set(vault.auth).send({});
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.version, 3);
    assert.equal(res.body.rewrap, null);
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/app/a')
          .set(vault.auth)
          .send({ data: { v: 'a-5' } })
      ).body.version,
      5,
    );
    for (const [n, v] of [
      [1, 'a-1'],
      [3, 'a-3'],
      [4, 'a-4'],
      [5, 'a-5'],
    ] as const)
      assert.deepEqual((await get('app/a', n)).body.data, { v });
    const keyring = await request(vault.app).get('/v1/sys/keyrings/app').set(vault.auth);
    assert.equal(keyring.body.current, 3);
    assert.equal(keyring.body.rewrap.state, 'done', 'the finished job stays on record');
  });

  it('rotating the keyring of a namespace without secrets creates it', async () => {
    const res = await request(vault.app)
      .post('/v1/sys/keyrings/brand-new/rotate')
      .set(vault.auth)
      .send({ rewrap: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await vault.rewrap.idle();
    const keyring = await request(vault.app).get('/v1/sys/keyrings/brand-new').set(vault.auth);
    assert.equal(keyring.status, 200);
    assert.equal(keyring.body.rewrap.state, 'done');
    assert.equal(keyring.body.rewrap.rewrapped, 0);
  });
});

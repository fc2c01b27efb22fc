import assert from 'node:assert/strict';
import request from 'supertest';
import { z } from 'zod';
import { envelopeKeyVersion } from '../../../server/crypto/envelope.js';
import { jsonCodec } from '../../../server/store/codec.js';
import { TRANSIT_KEY_PREFIX } from '../../../server/store/keys.js';
import { openVault, tokenWith, type TestVault } from '../../helpers.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const text = (s: string) => Buffer.from(s, 'base64').toString();

describe('data-key API (/v1/keys)', () => {
  let vault: TestVault;
  const r = () => request(vault.app);
  before(async () => {
    vault = await openVault();
    assert.equal((await r().post('/v1/keys/orders').set(vault.auth).send({})).status, 200);
  });
  after(() => vault.cleanup());

  it('encrypts and decrypts, binding the key name, the version and the context', async () => {
    const enc = await r()
      .post('/v1/keys/orders/encrypt')
      .set(vault.auth)
      .send({ plaintext: b64('card 4111'), context: b64('tenant-1') });
    assert.equal(enc.status, 200);
    assert.match(enc.body.ciphertext, /^coffer:v1:[A-Za-z0-9+/]+=*$/);
    const dec = await r()
      .post('/v1/keys/orders/decrypt')
      .set(vault.auth)
      .send({ ciphertext: enc.body.ciphertext, context: b64('tenant-1') });
    assert.equal(text(dec.body.plaintext), 'card 4111');
    const wrongContext = await r()
      .post('/v1/keys/orders/decrypt')
      .set(vault.auth)
      .send({ ciphertext: enc.body.ciphertext, context: b64('tenant-2') });
    assert.equal(wrongContext.status, 400);
    await r().post('/v1/keys/other').set(vault.auth).send({});
    assert.equal(
      (
        await r()
          .post('/v1/keys/other/decrypt')
          .set(vault.auth)
          .send({ ciphertext: enc.body.ciphertext, context: b64('tenant-1') })
      ).status,
      400,
      'another key cannot open it',
    );
    const tampered =
      enc.body.ciphertext.slice(0, -6) +
      (enc.body.ciphertext.at(-6) === 'A' ? 'B' : 'A') +
      enc.body.ciphertext.slice(-5);
    assert.equal(
      (
        await r()
          .post('/v1/keys/orders/decrypt')
          .set(vault.auth)
          .send({ ciphertext: tampered, context: b64('tenant-1') })
      ).status,
      400,
    );
    for (const junk of ['coffer:v0:AAAA', 'coffer:v9:AAAA', 'vault:v1:AAAA', 'coffer:v1:!!']) {
      assert.equal(
        (await r().post('/v1/keys/orders/decrypt').set(vault.auth).send({ ciphertext: junk })).status,
        400,
        junk,
      );
    }
  });

  it('rotates: new ciphertexts name the new version, old ones still decrypt, rewrap moves them up', async () => {
    const old = (
      await r()
        .post('/v1/keys/orders/encrypt')
        .set(vault.auth)
        .send({ plaintext: b64('v1 data') })
    ).body.ciphertext;
    const rotated = await r().post('/v1/keys/orders/rotate').set(vault.auth).send({});
    assert.equal(rotated.body.latest_version, 2);
    assert.match(
      (
        await r()
          .post('/v1/keys/orders/encrypt')
          .set(vault.auth)
          .send({ plaintext: b64('x') })
      ).body.ciphertext,
      /^coffer:v2:/,
    );
    const rewrapped = (await r().post('/v1/keys/orders/rewrap').set(vault.auth).send({ ciphertext: old })).body
      .ciphertext;
    assert.match(rewrapped, /^coffer:v2:/);
    assert.equal(
      text((await r().post('/v1/keys/orders/decrypt').set(vault.auth).send({ ciphertext: rewrapped })).body.plaintext),
      'v1 data',
    );
    assert.equal(
      (await r().post('/v1/keys/orders/config').set(vault.auth).send({ min_decryption_version: 2 })).status,
      200,
    );
    const refused = await r().post('/v1/keys/orders/decrypt').set(vault.auth).send({ ciphertext: old });
    assert.equal(refused.status, 400);
    assert.match(refused.body.error.message, /min_decryption_version/);
    assert.equal(
      (await r().post('/v1/keys/orders/config').set(vault.auth).send({ min_decryption_version: 9 })).status,
      400,
    );
  });

  it('makes data keys: 256-bit plaintext plus the same key encrypted', async () => {
    const dk = await r().post('/v1/keys/orders/datakey').set(vault.auth).send({});
    assert.equal(Buffer.from(dk.body.plaintext, 'base64').length, 32);
    const back = await r().post('/v1/keys/orders/decrypt').set(vault.auth).send({ ciphertext: dk.body.ciphertext });
    assert.equal(back.body.plaintext, dk.body.plaintext);
  });

  it('a transit keyring rotation with rewrap seals every key version again under the new keyring version', async () => {
    await r().post('/v1/keys/ringed').set(vault.auth).send({});
    await r().post('/v1/keys/ringed/rotate').set(vault.auth).send({});
    const before = (
      await r()
        .post('/v1/keys/ringed/encrypt')
        .set(vault.auth)
        .send({ plaintext: b64('kept') })
    ).body.ciphertext as string;
    const rotated = await r().post('/v1/sys/keyrings/transit/rotate').set(vault.auth).send({ rewrap: true });
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.equal(rotated.body.rewrap.state, 'done');
    assert.ok(rotated.body.rewrap.rewrapped >= 2, JSON.stringify(rotated.body.rewrap));
    assert.equal(rotated.body.rewrap.rewrapped, rotated.body.rewrap.total, 'every version was under the old keyring');
    const ring = (await r().get('/v1/sys/keyrings/transit').set(vault.auth)).body;
    assert.equal(ring.rewrap?.state, 'done', 'the keyring shows the re-wrap as any namespace does');
    const current = ring.current as number;
    const table = vault.barrier.table(
      TRANSIT_KEY_PREFIX,
      jsonCodec(z.looseObject({ versions: z.record(z.string(), z.object({ sealed: z.string() })) })),
      'transit key',
    );
    const record = (await table.get('ringed'))!;
    assert.deepEqual(
      Object.values(record.versions).map((v) => envelopeKeyVersion(Buffer.from(v.sealed, 'base64'))),
      [current, current],
      'every version sealed under the current keyring version',
    );
    const back = await r().post('/v1/keys/ringed/decrypt').set(vault.auth).send({ ciphertext: before });
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.equal(Buffer.from(back.body.plaintext, 'base64').toString(), 'kept', 'what the keys encrypt is untouched');
  });

  it('configuring a key needs admin on transit/<name>: update, which encrypts, may not move min_decryption_version', async () => {
    await r().post('/v1/keys/guarded').set(vault.auth).send({});
    await r().post('/v1/keys/guarded/rotate').set(vault.auth).send({});
    const encrypter = await tokenWith(vault, 'encrypter', [
      { path: 'transit/guarded', capabilities: ['update', 'read'] },
    ]);
    const admin = await tokenWith(vault, 'key-admin', [{ path: 'transit/guarded', capabilities: ['admin'] }]);
    const config = (auth: Record<string, string>, v: number) =>
      r().post('/v1/keys/guarded/config').set(auth).send({ min_decryption_version: v });
    assert.equal(
      (
        await r()
          .post('/v1/keys/guarded/encrypt')
          .set(encrypter)
          .send({ plaintext: b64('x') })
      ).status,
      200,
    );
    const refused = await config(encrypter, 2);
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal((await r().get('/v1/keys/guarded').set(vault.auth)).body.min_decryption_version, 1, 'unchanged');
    const allowed = await config(admin, 2);
    assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
    assert.equal(allowed.body.min_decryption_version, 2);
  });

  it('rewraps only with a key that allows both decrypt and encrypt (403 otherwise, whatever the ciphertext)', async () => {
    for (const [name, usage] of [
      ['enc-only', ['encrypt']],
      ['dec-only', ['decrypt']],
      ['dk-only', ['datakey']],
      ['both', ['encrypt', 'decrypt']],
    ] as const) {
      const made = await r().post(`/v1/keys/${name}`).set(vault.auth).send({ usage });
      assert.equal(made.status, 200, JSON.stringify(made.body));
    }
    const sealed = (
      await r()
        .post('/v1/keys/enc-only/encrypt')
        .set(vault.auth)
        .send({ plaintext: b64('x') })
    ).body.ciphertext as string;
    for (const name of ['enc-only', 'dec-only', 'dk-only']) {
      for (const ciphertext of [sealed, 'coffer:v1:AAAA']) {
        const res = await r().post(`/v1/keys/${name}/rewrap`).set(vault.auth).send({ ciphertext });
        assert.equal(res.status, 403, `${name}: ${JSON.stringify(res.body)}`);
        assert.match(res.body.error.message, new RegExp(`key ${name} does not allow (decrypt|encrypt)`));
      }
    }
    const own = (
      await r()
        .post('/v1/keys/both/encrypt')
        .set(vault.auth)
        .send({ plaintext: b64('y') })
    ).body.ciphertext;
    assert.equal((await r().post('/v1/keys/both/rewrap').set(vault.auth).send({ ciphertext: own })).status, 200);
  });

  it('enforces usage rights, capabilities on transit/<name>, and refuses duplicates and bad input', async () => {
    await r()
      .post('/v1/keys/sign-only')
      .set(vault.auth)
      .send({ usage: ['datakey'] });
    assert.equal(
      (
        await r()
          .post('/v1/keys/sign-only/encrypt')
          .set(vault.auth)
          .send({ plaintext: b64('x') })
      ).status,
      403,
    );
    assert.equal((await r().post('/v1/keys/orders').set(vault.auth).send({})).status, 409);
    assert.equal(
      (await r().post('/v1/keys/orders/encrypt').set(vault.auth).send({ plaintext: 'not base64!' })).status,
      400,
    );
    assert.equal(
      (
        await r()
          .post('/v1/keys/missing/encrypt')
          .set(vault.auth)
          .send({ plaintext: b64('x') })
      ).status,
      404,
    );
    await r()
      .put('/v1/policies/orders-encrypt')
      .set(vault.auth)
      .send({ rules: [{ path: 'transit/orders', capabilities: ['update'] }] });
    const svc = (
      await r()
        .post('/v1/auth/token/create')
        .set(vault.auth)
        .send({ identity: 'svc:shop', policies: ['orders-encrypt'] })
    ).body.token;
    const auth = { Authorization: `Bearer ${svc}` };
    const ct = await r()
      .post('/v1/keys/orders/encrypt')
      .set(auth)
      .send({ plaintext: b64('x') });
    assert.equal(ct.status, 200);
    assert.equal(
      (await r().post('/v1/keys/orders/decrypt').set(auth).send({ ciphertext: ct.body.ciphertext })).status,
      403,
      'decrypt needs read',
    );
    assert.equal(
      (
        await r()
          .post('/v1/keys/other/encrypt')
          .set(auth)
          .send({ plaintext: b64('x') })
      ).status,
      403,
    );
    const info = await r().get('/v1/keys/orders').set(vault.auth);
    assert.deepEqual(Object.keys(info.body).sort(), [
      'exportable',
      'latest_version',
      'min_decryption_version',
      'name',
      'usage',
      'versions',
    ]);
  });
});

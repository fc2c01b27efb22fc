import assert from 'node:assert/strict';
import request from 'supertest';
import { openVault, type TestVault } from '../../helpers.js';

const kek = { source: { kind: 'env' as const, variable: 'K' }, env: { K: Buffer.alloc(32, 8).toString('base64') } };

describe('token signing key rotation', () => {
  let vault: TestVault;
  beforeEach(async () => {
    vault = await openVault(kek);
  });
  afterEach(() => vault.cleanup());

  const create = async (ttl: string) =>
    (await request(vault.app).post('/v1/auth/token/create').set(vault.auth).send({ identity: 'svc:a', ttl })).body
      .token as string;
  const self = (token: string) =>
    request(vault.app)
      .get('/v1/auth/token/self')
      .set({ Authorization: `Bearer ${token}` });
  const kids = async () =>
    ((await request(vault.app).get('/v1/auth/jwks')).body.keys as { kid: string }[]).map((k) => k.kid).sort();

  it('signs new tokens with the new kid and keeps old tokens valid until they expire', async () => {
    const old = await create('1h');
    const before = await kids();
    const rotated = await request(vault.app).post('/v1/auth/jwks/rotate').set(vault.auth).send({});
    assert.equal(rotated.status, 200);
    assert.equal(rotated.body.token, undefined);
    assert.deepEqual(await kids(), [...before, rotated.body.kid].sort(), 'both keys are published during the overlap');
    const fresh = await create('1h');
    assert.equal(JSON.parse(Buffer.from(fresh.split('.')[0]!, 'base64url').toString()).kid, rotated.body.kid);
    assert.equal((await self(old)).status, 200, 'an old token still works during the overlap');
    assert.equal((await self(fresh)).status, 200);
    assert.equal((await self(vault.rootToken)).status, 200, 'the root token too');
  });

  it('retires the previous keys at once on request: every older token fails, the caller gets a new one', async () => {
    const old = await create('1h');
    const rotated = await request(vault.app)
      .post('/v1/auth/jwks/rotate')
      .set(vault.auth)
      .send({ retire_previous: true });
    assert.equal(rotated.status, 200);
    assert.equal((await self(old)).status, 401);
    assert.equal((await self(vault.rootToken)).status, 401, 'the old root token is dead');
    const replaced = { Authorization: `Bearer ${rotated.body.token}` };
    assert.equal((await request(vault.app).get('/v1/auth/token/self').set(replaced)).body.identity, 'root');
    assert.deepEqual(await kids(), [rotated.body.kid]);
  });

  it('refuses tokens of a retired key after a restart too', async () => {
    const old = await create('1h');
    const rotated = await request(vault.app)
      .post('/v1/auth/jwks/rotate')
      .set(vault.auth)
      .send({ retire_previous: true });
    const dir = vault.dir;
    await vault.cleanup(true);
    vault = await openVault({ ...kek, dir, init: false });
    await vault.seal.autoUnsealNow();
    assert.equal((await self(old)).status, 401);
    assert.equal((await self(rotated.body.token)).status, 200);
  });

  it('needs admin, and refuses an unknown field', async () => {
    const plain = await create('1h');
    assert.equal(
      (
        await request(vault.app)
          .post('/v1/auth/jwks/rotate')
          .set({ Authorization: `Bearer ${plain}` })
          .send({})
      ).status,
      403,
    );
    assert.equal(
      (await request(vault.app).post('/v1/auth/jwks/rotate').set(vault.auth).send({ retire: true })).status,
      400,
    );
  });
});

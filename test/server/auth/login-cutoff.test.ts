import assert from 'node:assert/strict';
import request from 'supertest';
import { TokenService } from '../../../server/auth/tokens.js';
import { CUTOFF_PREFIX } from '../../../server/store/keys.js';
import { vaultFixture, type VaultFixture } from '../http/vault/fixture.js';

/**
 * Deleting a login (a userpass user, an approle role, a jwt role) ends the access it handed
 * out (SECURITY-CASES B): each token it issued before the deletion is refused at its next
 * request, and so is every token minted below one of them; a login made again afterwards works.
 */
describe('deleting a login ends the tokens it issued', function () {
  this.timeout(30_000);
  let f: VaultFixture;
  let ahead = 0; // the vault's clock runs this far ahead of the issuer's, which signs with the real time
  const clock = () => Date.now() + ahead;
  const app = () => request(f.vault.app);
  const tick = () => (ahead += 2_000); // past the second of the deletion: what is issued then is new
  const status = async (token: string) =>
    (
      await app()
        .get('/v1/secrets/ci/app/db')
        .set({ Authorization: `Bearer ${token}` })
    ).status;
  const admin = async (method: 'put' | 'post' | 'delete', path: string, body?: object) => {
    const res = await app()[method](path).set(f.vault.auth).send(body);
    assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };

  before(async () => {
    f = await vaultFixture({ now: clock });
    await admin('put', '/v1/secrets/ci/app/db', { data: { v: '1' } });
    await admin('put', '/v1/policies/minter', { rules: [{ path: 'sys/auth/token/create', capabilities: ['admin'] }] });
  });
  after(() => f.close());

  it('userpass: the deleted user’s token and a token it minted are refused; the user made again logs in afresh', async () => {
    const user = { password: 'correct horse battery', groups: ['ci'], policies: ['minter'] };
    await admin('put', '/v1/auth/userpass/users/alice', user);
    const login = async () => {
      const res = await app().post('/v1/auth/userpass/login').send({ username: 'alice', password: user.password });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.token as string;
    };
    const token = await login();
    const child = (
      await app()
        .post('/v1/auth/token/create')
        .set({ Authorization: `Bearer ${token}` })
        .send({ identity: 'svc:from-alice', groups: ['ci'] })
    ).body.token as string;
    assert.equal(await status(token), 200);
    assert.equal(await status(child), 200);

    const before = await f.vault.store.scanPrefix(CUTOFF_PREFIX);
    assert.equal((await app().delete('/v1/auth/userpass/users/alice').set(f.vault.auth)).status, 204);
    assert.equal(await status(token), 401);
    assert.equal(await status(child), 401, 'a token minted below the deleted login');
    const renewed = await app()
      .post('/v1/auth/token/renew')
      .set({ Authorization: `Bearer ${token}` })
      .send({});
    assert.equal(renewed.status, 401, 'nor can it be renewed');
    assert.equal((await f.vault.store.scanPrefix(CUTOFF_PREFIX)).length, before.length + 1);

    // A reload (a restart, a replica's snapshot) keeps the cut-off.
    await f.vault.access.tokens.reload();
    assert.equal(await status(token), 401);

    tick();
    await admin('put', '/v1/auth/userpass/users/alice', user);
    const again = await login();
    assert.equal(await status(again), 200, 'a login after the deletion is not cut off');
    assert.equal(await status(token), 401, 'the old token stays refused');
  });

  it('approle: the deleted role’s tokens are refused', async () => {
    await admin('put', '/v1/auth/approle/roles/deploy', { groups: ['ci'], token_ttl: 600, token_max_ttl: 3600 });
    const roleId = ((await admin('put', '/v1/auth/approle/roles/deploy', { groups: ['ci'] })) as { role_id: string })
      .role_id;
    const secretId = ((await admin('post', '/v1/auth/approle/roles/deploy/secret-id', {})) as { secret_id: string })
      .secret_id;
    const res = await app().post('/v1/auth/approle/login').send({ role_id: roleId, secret_id: secretId });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const token = res.body.token as string;
    assert.equal(await status(token), 200);
    const other = await app()
      .post('/v1/auth/approle/login')
      .send({ role_id: f.roleId, secret_id: await f.secretId() });
    assert.equal(await status(other.body.token as string), 200);
    await admin('delete', '/v1/auth/approle/roles/deploy');
    assert.equal(await status(token), 401);
    assert.equal(await status(other.body.token as string), 200, 'another role’s tokens are untouched');
  });

  it('jwt: the deleted role’s tokens are refused, whatever their subject', async () => {
    const login = async () => {
      const res = await app()
        .post('/v1/auth/jwt/login')
        .send({ role: 'ci', jwt: await f.idp.sign() });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.token as string;
    };
    const token = await login();
    assert.equal(await status(token), 200);
    const config = (await app().get('/v1/auth/jwt/roles/ci').set(f.vault.auth)).body;
    await admin('delete', '/v1/auth/jwt/roles/ci');
    assert.equal(await status(token), 401);
    tick();
    const { name: _name, ...body } = config as Record<string, unknown>;
    await admin('put', '/v1/auth/jwt/roles/ci', body);
    assert.equal(await status(await login()), 200);
  });

  it('a login still hashing its password when the user is deleted gets no token', async () => {
    tick();
    const password = 'correct horse battery';
    await admin('put', '/v1/auth/userpass/users/racer', { password, groups: ['ci'] });
    // Wrong passwords for other names hold both hash slots, so racer's login waits in the queue
    // after it has read racer's record.
    const noise = Array.from({ length: 8 }, (_, i) =>
      app()
        .post('/v1/auth/userpass/login')
        .send({ username: `nobody${i}`, password: 'x'.repeat(12) }),
    );
    const racing = app().post('/v1/auth/userpass/login').send({ username: 'racer', password });
    const pending = racing.then((r) => r);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal((await app().delete('/v1/auth/userpass/users/racer').set(f.vault.auth)).status, 204);
    const login = await pending;
    await Promise.all(noise);
    assert.equal(login.status, 401, JSON.stringify(login.body));
    assert.equal(login.body.token, undefined);
    assert.match(login.body.error.message, /deleted/);
  });

  it('a cut-off outlives every token already signed, even one issued under a longer token_max_ttl_s', async () => {
    tick();
    const longer = new TokenService(f.vault.barrier, f.vault.seal, { now: clock, maxTtlSeconds: 30 * 86_400 });
    const shorter = new TokenService(f.vault.barrier, f.vault.seal, { now: clock, maxTtlSeconds: 86_400 });
    await f.vault.seal.seal();
    for (const share of f.vault.shares.slice(0, 3))
      assert.equal((await app().post('/v1/sys/unseal').send({ share })).status, 200);
    const issued = await longer.issue({
      sub: 'user:long-lived',
      groups: [],
      policies: [],
      ttlSeconds: 30 * 86_400,
      maxTtlSeconds: 30 * 86_400,
      method: 'userpass',
    });
    await shorter.reload(); // the restarted server sees the signing key's raised signed_until
    tick();
    await shorter.cutOff('user:long-lived');
    assert.equal(await shorter.verify(issued.token), undefined);
    ahead += 2 * 86_400_000;
    await shorter.sweepStore();
    assert.equal(await shorter.verify(issued.token), undefined, 'still refused after the shorter maximum');
    const record = (await f.vault.store.scanPrefix(`${CUTOFF_PREFIX}user:long-lived@`))[0];
    assert.ok(record, 'the record is kept');
    ahead -= 2 * 86_400_000;
  });

  it('one record per source: a newer cut-off replaces the older', async () => {
    const remove = () => app().delete('/v1/auth/userpass/users/twice').set(f.vault.auth);
    tick();
    assert.equal((await remove()).status, 404);
    tick();
    assert.equal((await remove()).status, 404);
    assert.equal((await f.vault.store.scanPrefix(`${CUTOFF_PREFIX}user:twice@`)).length, 1);
  });

  it('a group deleted and made again grants nothing to tokens that named the old one; their other grants stay', async () => {
    tick();
    await admin('put', '/v1/policies/other-read', { rules: [{ path: 'other/**', capabilities: ['read'] }] });
    await admin('put', '/v1/secrets/other/x', { data: { v: '1' } });
    await admin('put', '/v1/groups/ops', { policies: ['ci-read'] });
    const minted = (await admin('post', '/v1/auth/token/create', {
      identity: 'svc:ops-bot',
      groups: ['ops'],
      policies: ['other-read'],
    })) as { token: string };
    const readOther = async (token: string) =>
      (
        await app()
          .get('/v1/secrets/other/x')
          .set({ Authorization: `Bearer ${token}` })
      ).status;
    assert.equal(await status(minted.token), 200);
    await admin('delete', '/v1/groups/ops');
    tick();
    await admin('put', '/v1/groups/ops', { policies: ['ci-read'] });
    assert.equal(await status(minted.token), 403, 'the new group ops is not the one the token named');
    assert.equal(await readOther(minted.token), 200, 'the token itself stays valid');
    const fresh = (await admin('post', '/v1/auth/token/create', { identity: 'svc:ops-bot', groups: ['ops'] })) as {
      token: string;
    };
    assert.equal(await status(fresh.token), 200, 'a token issued after the group was made again holds it');
  });

  it('a delete of a login that does not exist is 404 and still cuts (a retried delete whose cut-off failed)', async () => {
    const before = (await f.vault.store.scanPrefix(CUTOFF_PREFIX)).length;
    assert.equal((await app().delete('/v1/auth/userpass/users/nobody').set(f.vault.auth)).status, 404);
    assert.equal((await f.vault.store.scanPrefix(CUTOFF_PREFIX)).length, before + 1);
  });

  it('a replica learns a cut-off from the changed key alone (applyChanged), as replication hands it over', async () => {
    const replica = new TokenService(f.vault.barrier, f.vault.seal, { now: clock });
    await f.vault.seal.seal();
    for (const share of f.vault.shares.slice(0, 3))
      assert.equal((await app().post('/v1/sys/unseal').send({ share })).status, 200);
    tick();
    await admin('put', '/v1/auth/userpass/users/bob', { password: 'correct horse battery', groups: ['ci'] });
    const login = await app()
      .post('/v1/auth/userpass/login')
      .send({ username: 'bob', password: 'correct horse battery' });
    const token = login.body.token as string;
    assert.ok(await replica.verify(token));
    const cutBefore = new Set((await f.vault.store.scanPrefix(CUTOFF_PREFIX)).map(([k]) => k));
    await admin('delete', '/v1/auth/userpass/users/bob');
    assert.ok(await replica.verify(token), 'not told yet');
    const changed = (await f.vault.store.scanPrefix(CUTOFF_PREFIX)).map(([k]) => k).filter((k) => !cutBefore.has(k));
    assert.equal(changed.length, 1);
    await replica.applyChanged(changed);
    assert.equal(await replica.verify(token), undefined);
  });

  it('a cut-off is swept once every token it could refuse has expired (token_max_ttl_s)', async () => {
    const records = await f.vault.store.scanPrefix(CUTOFF_PREFIX);
    assert.ok(records.length > 0);
    // The latest `until`: a token_max_ttl_s past the cut-off, or the signing key's signed_until if later.
    const untils = await Promise.all(
      records.map(async ([key]) => Number(new TextDecoder().decode((await f.vault.barrier.get(key))!))),
    );
    ahead += (Math.max(...untils) + 3_600) * 1000 - clock();
    await f.vault.access.tokens.sweepStore();
    assert.deepEqual(await f.vault.store.scanPrefix(CUTOFF_PREFIX), []);
  });
});

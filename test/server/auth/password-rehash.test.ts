import assert from 'node:assert/strict';
import { randomBytes, scryptSync } from 'node:crypto';
import request from 'supertest';
import { z } from 'zod';
import { needsRehash, verifyPassword } from '../../../server/auth/password-hash.js';
import { jsonCodec } from '../../../server/store/codec.js';
import { USER_PREFIX } from '../../../server/store/keys.js';
import { openVault, type TestVault } from '../../helpers.js';
import { startPair, stopAll, until, type Track } from '../replication/cluster.js';

/**
 * Password hashes (server/auth/password-hash.ts): scrypt N=2^15, r=8, p=3; a hash stored with
 * older parameters is replaced at the user's next successful login, and only then.
 */
describe('userpass: hashes made with older parameters are replaced at the next login', function () {
  this.timeout(30_000);
  let vault: TestVault;
  const PASSWORD = 'correct horse battery staple';
  const users = () => vault.barrier.table(USER_PREFIX, jsonCodec(z.looseObject({ password_hash: z.string() })), 'user');
  const stored = async () => (await users().get('old'))!.password_hash;
  const login = (password: string) =>
    request(vault.app).post('/v1/auth/userpass/login').send({ username: 'old', password });

  before(async () => {
    vault = await openVault({ loginLimits: { failuresPerMinute: 1_000, userFailuresPerMinute: 1_000 } });
    assert.equal(
      (await request(vault.app).put('/v1/auth/userpass/users/old').set(vault.auth).send({ password: PASSWORD })).status,
      200,
    );
    assert.match(await stored(), /^scrypt\$32768\$8\$3\$/, 'a new hash has today’s parameters');
    // The hash an earlier release wrote for the same password: p=1.
    const salt = randomBytes(16);
    const old = `scrypt$32768$8$1$${salt.toString('base64')}$${scryptSync(PASSWORD, salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 << 20 }).toString('base64')}`;
    assert.equal(await verifyPassword(PASSWORD, old), true);
    assert.equal(needsRehash(old), true);
    const table = users();
    const record = (await table.get('old'))!;
    await table.mutate((tx) => table.write(tx, 'old', { ...record, password_hash: old }));
  });
  after(() => vault.cleanup());

  it('a wrong password leaves the old hash; the right one logs in and replaces it; both hashes verify the password', async () => {
    const old = await stored();
    assert.equal((await login('not the password, sorry')).status, 401);
    assert.equal(await stored(), old, 'a failed login rewrites nothing');
    assert.equal((await login(PASSWORD)).status, 200);
    const now = await stored();
    assert.notEqual(now, old);
    assert.match(now, /^scrypt\$32768\$8\$3\$/);
    assert.equal(needsRehash(now), false);
    assert.equal(await verifyPassword(PASSWORD, now), true);
    assert.equal((await login(PASSWORD)).status, 200, 'and logs in with it');
    assert.equal(await stored(), now, 'an up-to-date hash is left alone');
  });
});

describe('userpass: on a replica, a hash with older parameters still logs in (the rehash is best effort)', function () {
  this.timeout(60_000);
  const track: Track = { nodes: [], dirs: [] };
  after(() => stopAll(track));

  it('the right password logs in on the replica, which cannot write the new hash, and the primary rehashes', async () => {
    const { primary, replica } = await startPair(track);
    const root = primary.server.rootToken!;
    const password = 'pw-of-an-earlier-release';
    assert.equal((await primary.call('PUT', '/v1/auth/userpass/users/old', { password }, root)).status, 200);
    const salt = randomBytes(16);
    const old = `scrypt$32768$8$1$${salt.toString('base64')}$${scryptSync(password, salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 << 20 }).toString('base64')}`;
    const codec = jsonCodec(z.looseObject({ password_hash: z.string() }));
    const table = primary.server.seal.barrier.table(USER_PREFIX, codec, 'user');
    const record = (await table.get('old'))!;
    await table.mutate((tx) => table.write(tx, 'old', { ...record, password_hash: old }));
    const replicated = replica.server.seal.barrier.table(USER_PREFIX, codec, 'user');
    await until(async () => (await replicated.get('old'))?.password_hash === old, 20_000, 'the old hash replicated');
    for (let i = 0; i < 2; i++) {
      const login = await replica.call('POST', '/v1/auth/userpass/login', { username: 'old', password });
      assert.equal(login.status, 200, JSON.stringify(login.body));
    }
    assert.equal((await replicated.get('old'))?.password_hash, old, 'the replica wrote nothing');
    assert.equal((await primary.call('POST', '/v1/auth/userpass/login', { username: 'old', password })).status, 200);
    assert.match((await table.get('old'))!.password_hash, /^scrypt\$32768\$8\$3\$/);
  });
});

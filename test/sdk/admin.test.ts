import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { exportJWK } from 'jose';
import { Coffer, isNotFound } from '../../sdk/index.js';
import type { AdminKind, AppRole, Group, JwtRole, Policy, UserpassUser } from '../../sdk/index.js';
import { loadConfig } from '../../server/config.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { silentLog, tempDir } from '../helpers.js';
import { keyPair } from '../key-pairs.js';

/** Compile-time only (never called): `admin(kind)` takes and returns the wire types of that kind. */
export function adminTypes(c: Coffer): void {
  void (async () => {
    const policy: Policy = await c.admin('policy').get('p');
    const group: Group = await c.admin('group').put('g', { policies: ['p'] });
    const user: UserpassUser = await c.admin('user').get('u');
    const role: AppRole = await c.admin('approle').get('r');
    const jwt: JwtRole = await c.admin('jwt').get('j');
    void [policy.rules[0]?.capabilities, group.members, user.token_ttl, role.role_id, jwt.bound_audiences];
    // @ts-expect-error a policy needs rules
    await c.admin('policy').put('p', { policies: ['x'] });
    // @ts-expect-error capabilities are the closed list
    await c.admin('policy').put('p', { rules: [{ path: 'a/*', capabilities: ['write'] }] });
    // @ts-expect-error a user answer never has a password (hash)
    void (await c.admin('user').get('u')).password_hash;
    // @ts-expect-error a group is not a policy
    const wrong: Policy = await c.admin('group').get('g');
    void wrong;
  });
}

describe('sdk admin(kind): typed admin objects', function () {
  this.timeout(20_000);
  let dir: string;
  let server: RunningServer;
  let client: Coffer;

  before(async () => {
    dir = await tempDir('coffer-sdk-admin-');
    server = await startServer(await loadConfig({ flags: { dev: true, data_dir: dir, listen: '127.0.0.1:0' } }), {
      log: silentLog,
    });
    client = new Coffer({ addr: server.url, token: server.rootToken });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('puts, reads, lists and deletes each kind, answering the objects as the server stores them', async () => {
    const policy = await client
      .admin('policy')
      .put('app-read', { rules: [{ path: 'app/*', capabilities: ['read', 'list'] }] });
    assert.deepEqual(policy, { name: 'app-read', rules: [{ path: 'app/*', capabilities: ['read', 'list'] }] });
    assert.deepEqual(await client.admin('policy').get('app-read'), policy);

    const group = await client.admin('group').put('devs', { policies: ['app-read'] });
    assert.deepEqual(group, { name: 'devs', policies: ['app-read'], members: [] });

    const user = await client.admin('user').put('alice', { password: 'correct horse battery', policies: ['app-read'] });
    assert.deepEqual(user, {
      name: 'alice',
      groups: [],
      policies: ['app-read'],
      token_ttl: 3600,
      token_max_ttl: 86_400,
    });
    assert.deepEqual(await client.admin('user').get('alice'), user, 'never a password hash');

    const role = await client.admin('approle').put('builder', { policies: ['app-read'], token_ttl: '10m' });
    assert.match(role.role_id, /^[0-9a-f-]{36}$/);
    assert.equal(role.token_ttl, 600, 'a duration comes back in seconds');
    assert.deepEqual((await client.admin('approle').get('builder')).role_id, role.role_id);

    const key = keyPair('ed25519').publicKey;
    const jwt = await client.admin('jwt').put('ci', {
      issuer: 'https://idp.example.test',
      jwks: { keys: [{ ...(await exportJWK(key)), kid: 'k1' }] },
      bound_audiences: ['coffer'],
    });
    assert.equal(jwt.name, 'ci');
    assert.deepEqual(
      [jwt.allowed_algorithms, jwt.token_ttl, jwt.leeway, jwt.bound_claims_type],
      [['RS256', 'ES256', 'EdDSA'], 900, 30, 'exact'],
      'the defaults are filled in',
    );

    const kinds: [AdminKind, string][] = [
      ['policy', 'app-read'],
      ['group', 'devs'],
      ['user', 'alice'],
      ['approle', 'builder'],
      ['jwt', 'ci'],
    ];
    for (const [kind, name] of kinds) {
      assert.ok((await client.admin(kind).list()).includes(name), `${kind} ${name} listed`);
    }
    for (const [kind, name] of kinds.reverse()) {
      await client.admin(kind).delete(name);
      await assert.rejects(client.admin(kind).get(name), isNotFound);
    }
  });
});

import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Directory } from '../../server/auth/directory.js';
import { JwtMethod } from '../../server/auth/jwt-login.js';
import { AppRoleMethod, UserpassMethod } from '../../server/auth/logins.js';
import { TokenService } from '../../server/auth/tokens.js';
import { TransitEngine } from '../../server/transit/engine.js';
import { systemRandom, type RandomSource } from '../../server/crypto/random.js';
import { SealManager } from '../../server/keys/seal.js';
import { SecretsEngine } from '../../server/secrets/engine.js';
import { RewrapJobs } from '../../server/secrets/rewrap.js';
import { Store } from '../../server/store/db.js';
import { silentLog, tempDir } from '../helpers.js';

/** Every file of a LevelDB directory (WAL, SSTs, manifest) as one buffer. */
async function databaseBytes(dir: string): Promise<Buffer> {
  const files = await readdir(dir);
  return Buffer.concat(await Promise.all(files.map((f) => readFile(join(dir, f)))));
}

describe('at rest: LevelDB files hold no plaintext', function () {
  this.timeout(30_000);

  it('never contains a stored value, a metadata value, a policy, group, user, role or transit record, a plain DEK, a keyring key, the master key, the root key or the root token', async () => {
    const dir = await tempDir('coffer-at-rest-');
    const keys: Uint8Array[] = [];
    // Record every 256-bit draw: root key, master versions, keyring versions and DEKs.
    const recording: RandomSource = (n) => {
      const bytes = systemRandom(n);
      if (n === 32) keys.push(Uint8Array.from(bytes));
      return bytes;
    };
    const store = await Store.open(join(dir, 'db'));
    const seal = new SealManager(store, {
      source: { kind: 'shamir' },
      env: {},
      random: recording,
      keyring: { random: recording, maxWraps: 5 },
    });
    const tokens = new TokenService(seal.barrier, seal, Date.now, recording);
    const directory = new Directory(seal.barrier, seal, new Map());
    let rootToken = '';
    const shares = await seal.init(3, 2, async (tx, keys) => {
      rootToken = await tokens.createRoot(tx, keys);
    });
    for (const share of shares.slice(0, 2)) await seal.submitShare(share);
    const secrets = new SecretsEngine(seal.barrier, { random: recording });
    const canaries: string[] = [];
    for (let i = 0; i < 40; i++) {
      const canary = `CANARY-${i}-${Buffer.from(systemRandom(12)).toString('hex')}`;
      canaries.push(canary);
      await secrets.put(`ns${i % 3}/app/s${i}`, { data: { value: canary } });
    }
    // Records that were stored as plain JSON before the storage barrier: a canary in each.
    const records: Record<string, string> = {};
    const mark = (kind: string) => (records[kind] = `${kind}canary${Buffer.from(systemRandom(8)).toString('hex')}`);
    await secrets.put('ns0/with-meta', { data: { v: 'x' }, metadata: { owner: mark('meta') } });
    await directory.putPolicy('readers', [{ path: `${mark('policy')}/*`, capabilities: ['read'] }]);
    await directory.putGroup('team', ['readers'], [`user:${mark('group')}`]);
    await new UserpassMethod(seal.barrier).put('alice', {
      password: 'correct horse battery',
      groups: [mark('user')],
      policies: [],
      token_ttl: 60,
      token_max_ttl: 60,
    });
    const approle = new AppRoleMethod(seal.barrier);
    await approle.put('build', {
      groups: [],
      policies: [mark('role')],
      token_ttl: 60,
      token_max_ttl: 60,
      secret_id_ttl: 0,
      secret_id_num_uses: 0,
      bound_cidrs: [],
    });
    await approle.createSecretId('build');
    await new JwtMethod(seal.barrier, silentLog).put('ci', {
      issuer: 'https://ci.example',
      jwks_url: 'https://ci.example/jwks',
      bound_audiences: [mark('jwt')],
    });
    await new TransitEngine(seal.barrier).create('app-key', { exportable: false });
    await tokens.revoke('abcdefghijklmnopqrstuv', 4_000_000_000);
    const generated = await secrets.put('ns0/generated', {
      data: { user: 'admin' },
      generate: { key: 'password', length: 40 },
    });
    const password = String((await secrets.get(generated.path))!.data.password);
    canaries.push(password);
    // Rotations and a rewrap write more key material; all of it must stay wrapped.
    await seal.keys().provider.rotate();
    await seal.keys().keyrings.rewrapUnderCurrentMaster();
    const rewrap = new RewrapJobs(seal.barrier, seal, silentLog);
    await rewrap.start('ns1', await seal.keys().keyrings.rotate('ns1'));
    await rewrap.idle();
    await seal.seal();
    await store.close();

    const bytes = await databaseBytes(join(dir, 'db'));
    try {
      assert.ok(bytes.length > 10_000, 'the database should hold data');
      assert.ok(keys.length >= 45, `expected key draws to be recorded, got ${keys.length}`);
      for (const canary of canaries) assert.equal(bytes.indexOf(canary), -1, 'a secret value is stored in plaintext');
      for (const [kind, canary] of Object.entries(records)) {
        assert.equal(bytes.indexOf(canary), -1, `a ${kind} record is stored in clear`);
        assert.equal(
          bytes.indexOf(Buffer.from(canary).toString('base64').slice(0, 16)),
          -1,
          `a ${kind} record is stored in base64`,
        );
      }
      assert.notEqual(bytes.indexOf('ns0/with-meta'), -1, 'key names stay in clear (control: the scan sees them)');
      assert.equal(bytes.indexOf('"owner"'), -1, 'no metadata JSON in clear');
      assert.equal(bytes.indexOf('scrypt$'), -1, 'no password hash in clear');
      for (const key of keys) {
        assert.equal(bytes.indexOf(Buffer.from(key)), -1, 'a key is stored in plaintext');
        assert.equal(bytes.indexOf(Buffer.from(key).toString('base64')), -1, 'a key is stored in base64');
      }
      assert.equal(bytes.indexOf(rootToken), -1, 'the root token is stored');
      for (const share of shares) assert.equal(bytes.indexOf(share), -1, 'an unseal share is stored');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

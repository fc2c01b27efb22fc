import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { chmod, cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import request from 'supertest';
import { startBackup } from '../../server/backup/backup.js';
import { restoreBackup } from '../../server/backup/restore.js';
import { CofferError, isCofferError } from '../../server/errors.js';
import { BARRIER_TAG } from '../../server/store/barrier.js';
import { FORMAT_KEY, LOG_PREFIX, isClearKey, logKey, metaKey } from '../../server/store/keys.js';
import { formatCodec } from '../../server/store/migrate.js';
import { pino } from 'pino';
import { openVault, tempDir, type TestVault, type VaultOptions } from '../helpers.js';
import { startServerProcess } from './server-process.js';

/**
 * A data directory written by the version before the storage barrier (test/fixtures/
 * legacy-store, made by its own server: see generate.mjs there) is migrated on its first
 * unseal, and everything in it keeps working: secrets and their metadata, policies, groups,
 * users, approle roles and secret_ids, jwt roles, tokens with their revocations and renewals,
 * transit keys, the keyring rewrap record, the BYOK wrapping key, the audit key.
 */
const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'legacy-store');

interface Facts {
  created_at: number;
  canaries: Record<'secret' | 'meta' | 'policy' | 'group' | 'user' | 'role' | 'jwt' | 'transit', string>;
  password: string;
  role_id: string;
  secret_id: string;
  jwt_private_jwk: object;
  live_token: string;
  revoked_token: string;
  renewed_token: string;
  ciphertext: string;
}

async function databaseBytes(dir: string): Promise<Buffer> {
  const files = await readdir(dir);
  return Buffer.concat(await Promise.all(files.map((f) => readFile(join(dir, f)))));
}

/** A copy of the fixture, opened as the fixture's dev server would be (its key file), clock at the fixture's time. */
async function openCopy(facts: Facts, options: Partial<VaultOptions> = {}): Promise<TestVault> {
  const dir = await tempDir('coffer-migrate-');
  await copyFixture(dir);
  const clock = facts.created_at + 60_000;
  return openVault({
    dir,
    source: { kind: 'file', path: join(dir, 'kek.key') },
    init: false,
    now: () => clock,
    ...options,
  });
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** Copies the fixture; git keeps no file modes, and the server refuses a key file others can read. */
async function copyFixture(dir: string): Promise<void> {
  await cp(FIXTURE, dir, { recursive: true });
  for (const f of ['kek.key', 'root-token']) await chmod(join(dir, f), 0o600);
}

describe('migration of a data directory written before the storage barrier', function () {
  this.timeout(60_000);
  let facts: Facts;
  let vault: TestVault | undefined;
  before(async () => {
    facts = JSON.parse(await readFile(join(FIXTURE, 'fixture.json'), 'utf8')) as Facts;
  });
  afterEach(async () => {
    await vault?.cleanup();
    vault = undefined;
  });

  it('the fixture is in the old format: metadata, policies, groups, users, roles in clear', async () => {
    const bytes = await databaseBytes(join(FIXTURE, 'db'));
    for (const kind of ['meta', 'policy', 'group', 'user', 'role', 'jwt'] as const)
      assert.notEqual(bytes.indexOf(facts.canaries[kind]), -1, `${kind} canary in clear`);
  });

  it('seals every value on the first unseal, and everything still works', async () => {
    const lines: { msg?: string; prefix?: string }[] = [];
    const log = pino(
      { level: 'info' },
      { write: (line: string) => void lines.push(JSON.parse(line) as { msg?: string }) },
    );
    vault = await openCopy(facts, { log });
    const auth = { Authorization: `Bearer ${(await readFile(join(vault.dir, 'root-token'), 'utf8')).trim()}` };
    await vault.seal.autoUnsealNow();

    // Stored: every value outside the clear records carries the envelope; the marker says migrated.
    const marker = formatCodec.decode(vault.store.get(FORMAT_KEY)!);
    assert.equal(marker.migration, undefined);
    assert.ok(marker.legacy_log_until! > 300 && marker.migrated_values! > 600, JSON.stringify(marker));
    for (const [key, value] of await vault.store.range('', '\uffff')) {
      if (!isClearKey(key)) assert.equal(value[0], BARRIER_TAG, `${key} sealed`);
    }
    assert.deepEqual(
      await vault.store.range(LOG_PREFIX, logKey(marker.legacy_log_until! + 1)),
      [],
      'the change-log records from before are dropped',
    );
    const prefixes = lines.filter((l) => l.msg === 'storage: prefix sealed').map((l) => l.prefix);
    for (const p of ['audit/', 'auth/', 'byok/', 'meta/', 'rw/', 'transit/', 'ver/'])
      assert.ok(prefixes.includes(p), `progress logged for ${p}: ${prefixes}`);
    assert.ok(lines.some((l) => l.msg === 'storage: migration to the storage barrier finished'));

    // Secrets, versions and metadata.
    const db = await request(vault.app).get('/v1/secrets/app/db').set(auth);
    assert.equal(db.status, 200, db.text);
    assert.deepEqual(
      [db.body.version, db.body.data.password, db.body.metadata.owner],
      [3, facts.canaries.secret, facts.canaries.meta],
    );
    assert.equal(
      (await request(vault.app).get('/v1/secrets/app/db?version=1').set(auth)).status,
      404,
      'the soft delete survived',
    );
    assert.equal(
      (await request(vault.app).get('/v1/secrets/app/db?version=2').set(auth)).body.data.password,
      `${facts.canaries.secret}-v2`,
    );
    assert.equal((await request(vault.app).get('/v1/secrets/bulk/s299').set(auth)).body.data.v, 'bulk-299');
    assert.equal((await request(vault.app).get('/v1/secrets?prefix=bulk&limit=1000').set(auth)).body.keys.length, 300);
    const meta = await request(vault.app).get('/v1/metadata/app/db').set(auth);
    assert.equal(meta.body.versions[0].deleted_at !== null, true);

    // Policies and groups (loaded after unseal), users, roles.
    assert.deepEqual(
      (await request(vault.app).get('/v1/policies/app-read').set(auth)).body.rules[1].path,
      `${facts.canaries.policy}/*`,
    );
    assert.deepEqual((await request(vault.app).get('/v1/groups/devs').set(auth)).body.members, [
      `user:${facts.canaries.group}`,
    ]);
    assert.deepEqual((await request(vault.app).get('/v1/auth/userpass/users/alice').set(auth)).body.groups, [
      facts.canaries.user,
    ]);
    const login = await request(vault.app)
      .post('/v1/auth/userpass/login')
      .send({ username: 'alice', password: facts.password });
    assert.equal(login.status, 200, login.text);
    assert.equal(
      (await request(vault.app).get('/v1/secrets/app/db').set(bearer(login.body.token))).status,
      200,
      'the user reads through the migrated policy',
    );
    const approle = await request(vault.app)
      .post('/v1/auth/approle/login')
      .send({ role_id: facts.role_id, secret_id: facts.secret_id });
    assert.equal(approle.status, 200, approle.text);
    assert.ok(approle.body.policies.includes(facts.canaries.role));
    const jwt = await new SignJWT({ sub: 'repo:acme/app:ref:refs/heads/main', jti: 'one-use' })
      .setProtectedHeader({ alg: 'EdDSA', kid: 'fixture' })
      .setIssuer('https://token.actions.githubusercontent.com')
      .setAudience(facts.canaries.jwt)
      .setIssuedAt(Math.floor((facts.created_at + 60_000) / 1000))
      .setExpirationTime(Math.floor((facts.created_at + 600_000) / 1000))
      .sign(createPrivateKey({ key: facts.jwt_private_jwk as never, format: 'jwk' }));
    assert.equal((await request(vault.app).post('/v1/auth/jwt/login').send({ role: 'ci', jwt })).status, 200);
    assert.equal(
      (await request(vault.app).post('/v1/auth/jwt/login').send({ role: 'ci', jwt })).status,
      401,
      'single use: its jti is recorded, sealed',
    );

    // Tokens: the live one works, the revoked one stays revoked, the renewal record is honoured.
    assert.equal((await request(vault.app).get('/v1/auth/token/self').set(bearer(facts.live_token))).status, 200);
    assert.equal((await request(vault.app).get('/v1/auth/token/self').set(bearer(facts.revoked_token))).status, 401);
    assert.ok(
      vault.access.tokens.isRevoked(
        JSON.parse(Buffer.from(facts.revoked_token.split('.')[1]!, 'base64url').toString()).jti,
      ),
    );
    const renewed = JSON.parse(Buffer.from(facts.renewed_token.split('.')[1]!, 'base64url').toString()) as {
      ttl_exp: number;
    };
    const self = await request(vault.app).get('/v1/auth/token/self').set(bearer(facts.renewed_token));
    assert.ok(Date.parse(self.body.expires_at) / 1000 > renewed.ttl_exp, 'the expiry comes from the renewal record');

    // Transit, the rewrap job record, keyrings after the master rotation.
    const decrypted = await request(vault.app)
      .post('/v1/keys/app-key/decrypt')
      .set(auth)
      .send({ ciphertext: facts.ciphertext });
    assert.equal(Buffer.from(decrypted.body.plaintext, 'base64').toString(), facts.canaries.transit);
    const keyring = await request(vault.app).get('/v1/sys/keyrings/bulk').set(auth);
    assert.equal(keyring.body.rewrap.state, 'done');
    assert.equal(keyring.body.master_version, 2);
    assert.equal(
      (await request(vault.app).get('/v1/sys/byok/wrapping-key').set(auth)).status,
      200,
      'the sealed BYOK wrapping key opens',
    );

    // Writes go on, and after a restart nothing is migrated again.
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/app/new')
          .set(auth)
          .send({ data: { v: 'after' } })
      ).status,
      200,
    );
    const seq = vault.store.lastSeq;
    await vault.seal.seal();
    await vault.seal.autoUnsealNow();
    assert.equal(vault.store.lastSeq, seq, 'a second unseal writes nothing');
    assert.equal((await request(vault.app).get('/v1/secrets/app/new').set(auth)).body.data.v, 'after');
  });

  for (const [server, changeLog] of [
    ['replicating', true],
    ['standalone', false],
  ] as const)
    it(`leaves nothing of the old values in the LevelDB files (metadata, policy, group, user, role, jwt role), ${server}`, async () => {
      // A standalone store drops the old change log at open, before the migration: the
      // compaction that removes the overwritten clear values must happen all the same.
      vault = await openCopy(facts, { store: { changeLog } });
      await vault.seal.autoUnsealNow();
      await vault.cleanup(true);
      const dir = vault.dir;
      vault = undefined;
      try {
        const bytes = await databaseBytes(join(dir, 'db'));
        for (const [kind, canary] of Object.entries(facts.canaries)) {
          assert.equal(bytes.indexOf(canary), -1, `${kind} canary still in the files`);
          assert.equal(
            bytes.indexOf(Buffer.from(canary).toString('base64').slice(0, 16)),
            -1,
            `${kind} canary in base64`,
          );
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

  it('resumes after a crash mid-way, and recognises values it sealed already', async () => {
    vault = await openCopy(facts);
    let batches = 0;
    vault.store.setWriteGuard({
      beforeWrite: () => {
        if (++batches === 4) throw new CofferError('storage_unavailable', 'disk gone (test)');
      },
      beforeAck: () => undefined,
    });
    await assert.rejects(vault.seal.autoUnsealNow(), (e: unknown) => isCofferError(e, 'storage_unavailable'));
    assert.equal(vault.seal.sealed, true, 'a migration that fails leaves the vault sealed');
    const partial = formatCodec.decode(vault.store.get(FORMAT_KEY)!);
    assert.ok(
      partial.migration && partial.migration.cursor !== null && partial.migration.sealed > 0,
      JSON.stringify(partial),
    );
    const sealedSoFar = partial.migration.sealed;

    // The marker is put back to before the committed batches: those values are recognised as sealed.
    await vault.store.writeRaw([
      {
        type: 'put',
        key: FORMAT_KEY,
        value: formatCodec.encode({ ...partial, migration: { ...partial.migration, cursor: null, sealed: 0 } }),
      },
    ]);
    vault.store.setWriteGuard(undefined);
    await vault.seal.autoUnsealNow();
    const done = formatCodec.decode(vault.store.get(FORMAT_KEY)!);
    assert.equal(done.migration, undefined);
    const total = (await vault.store.range('', '\uffff')).filter(([k]) => !isClearKey(k)).length;
    assert.equal(
      done.migrated_values,
      total - sealedSoFar,
      `the ${sealedSoFar} values sealed before the crash were recognised, not sealed again`,
    );
    assert.equal((await vault.secrets.get('app/db'))!.data.password, facts.canaries.secret);
    assert.equal((await vault.secrets.metadata('app/db'))!.metadata.owner, facts.canaries.meta);
    assert.equal((await vault.secrets.get('bulk/s000'))!.data.v, 'bulk-0');
    assert.deepEqual(vault.access.directory.getPolicy('app-read')!.rules[0], {
      path: 'app/*',
      capabilities: ['read', 'list'],
    });
  });

  it("a server that may not write (a replica) reads the old format as it is until the primary's migration reaches it, then turns strict", async () => {
    vault = await openCopy(facts);
    vault.store.setWriteGuard({
      beforeWrite: () => {
        throw new CofferError('read_only_replica', 'this server is a read-only replica (test)');
      },
      beforeAck: () => undefined,
    });
    await vault.seal.autoUnsealNow();
    assert.equal(vault.store.get(FORMAT_KEY), undefined, 'nothing was written');
    assert.equal(vault.seal.barrier.acceptsLegacyValues, true);
    assert.equal((await vault.secrets.get('app/db'))!.data.password, facts.canaries.secret);
    assert.equal((await vault.secrets.metadata('app/db'))!.metadata.owner, facts.canaries.meta);
    assert.ok(vault.access.directory.getGroup('devs'));
    const auth = { Authorization: `Bearer ${(await readFile(join(vault.dir, 'root-token'), 'utf8')).trim()}` };
    assert.deepEqual((await request(vault.app).get('/v1/auth/userpass/users/alice').set(auth)).body.groups, [
      facts.canaries.user,
    ]);
    await assert.rejects(vault.secrets.put('app/x', { data: { v: '1' } }), (e: unknown) =>
      isCofferError(e, 'read_only_replica'),
    );

    // The primary (another copy of the same data directory) migrates; its change records are
    // applied here as replication applies them (stored bytes, sealed), and the barrier re-reads the marker.
    const primary = await openCopy(facts);
    try {
      await primary.seal.autoUnsealNow();
      await vault.store.applyReplicated(await primary.store.changes(vault.store.lastSeq, 100_000));
    } finally {
      await primary.cleanup();
    }
    await vault.seal.barrier.refresh();
    assert.equal(vault.seal.barrier.acceptsLegacyValues, false);
    assert.equal((await vault.secrets.get('app/db'))!.data.password, facts.canaries.secret);
    assert.equal((await vault.secrets.metadata('app/db'))!.metadata.owner, facts.canaries.meta);
    await vault.access.directory.reload();
    assert.deepEqual(vault.access.directory.getGroup('devs')!.members, [`user:${facts.canaries.group}`]);
    const bytes = await databaseBytes(join(vault.dir, 'db'));
    for (const kind of ['meta', 'policy', 'group', 'user', 'role', 'jwt'] as const)
      assert.equal(bytes.indexOf(facts.canaries[kind]), -1, `${kind} canary left on the replica`);
    await vault.store.writeRaw([
      {
        type: 'put',
        key: metaKey('app/forged'),
        value: Buffer.from(
          JSON.stringify({ type: 'kv', current_version: 0, metadata: {}, created_at: 0, updated_at: 0, versions: [] }),
        ),
      },
    ]);
    await assert.rejects(
      vault.secrets.metadata('app/forged'),
      (e: unknown) => isCofferError(e, 'integrity_error'),
      'a value in the old format is refused once migrated',
    );
  });

  it('a backup taken before the migration restores, and the restored vault is migrated at its first unseal', async () => {
    // A server that may not write keeps the old format (see above): its backup holds the old values as stored.
    vault = await openCopy(facts);
    vault.store.setWriteGuard({
      beforeWrite: () => {
        throw new CofferError('read_only_replica', 'this server is a read-only replica (test)');
      },
      beforeAck: () => undefined,
    });
    await vault.seal.autoUnsealNow();
    const keys = vault.seal.keys();
    const backup = await startBackup(vault.store, keys.provider, keys.clusterId);
    const file = join(vault.dir, 'old.backup');
    const chunks: Uint8Array[] = [];
    try {
      for await (const chunk of backup.body) chunks.push(chunk);
    } finally {
      await backup.dispose();
    }
    await writeFile(file, Buffer.concat(chunks));
    assert.notEqual(Buffer.concat(chunks).length, 0);

    const restored = join(vault.dir, 'restored');
    await restoreBackup({ file, dataDir: restored, kek: `file:${join(vault.dir, 'kek.key')}`, env: {} });
    const again = await openVault({
      dir: restored,
      source: { kind: 'file', path: join(vault.dir, 'kek.key') },
      init: false,
      now: () => facts.created_at + 60_000,
    });
    try {
      await again.seal.autoUnsealNow();
      assert.equal(again.seal.barrier.acceptsLegacyValues, false);
      for (const [key, value] of await again.store.range('', '\uffff'))
        if (!isClearKey(key)) assert.equal(value[0], BARRIER_TAG, `${key} sealed`);
      assert.equal((await again.secrets.get('app/db'))!.data.password, facts.canaries.secret);
      assert.equal((await again.secrets.metadata('app/db'))!.metadata.owner, facts.canaries.meta);
      assert.deepEqual(again.access.directory.getPolicy('app-read')!.rules[1], {
        path: `${facts.canaries.policy}/*`,
        capabilities: ['read'],
      });
    } finally {
      await again.cleanup(true);
    }
  });

  it('`coffer server` on a copy of the old data directory migrates it and serves it', async () => {
    const dir = await tempDir('coffer-migrate-server-');
    await copyFixture(dir);
    const server = await startServerProcess(['--dev', '--data-dir', dir]);
    try {
      const token = (await readFile(join(dir, 'root-token'), 'utf8')).trim();
      const res = await fetch(`${server.url}/v1/secrets/app/db`, { headers: bearer(token) });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { metadata: { owner: string } }).metadata.owner, facts.canaries.meta);
      const policy = await fetch(`${server.url}/v1/policies/app-read`, { headers: bearer(token) });
      assert.equal(policy.status, 200);
      assert.match(server.output(), /storage: migration to the storage barrier finished/);
      assert.doesNotMatch(
        server.output(),
        new RegExp(`${facts.canaries.meta}|${facts.canaries.secret}|${facts.password}`),
        'no value in the log',
      );
    } finally {
      await server.kill('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    }
  });
});

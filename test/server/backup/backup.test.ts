import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import request from 'supertest';
import { restoreBackup, type RestoreOptions } from '../../../server/backup/restore.js';
import { isCofferError } from '../../../server/errors.js';
import { openVault, tempDir, type TestVault } from '../../helpers.js';
import { describeHsm, hsmEnv, openHsmVault } from '../../hsm.js';

/** The backup file a vault serves to `token` (default root). */
async function backupOf(vault: TestVault, auth = vault.auth): Promise<Buffer> {
  const res = await request(vault.app)
    .get('/v1/sys/backup')
    .set(auth)
    .buffer(true)
    .parse((r, done) => {
      const parts: Buffer[] = [];
      r.on('data', (c: Buffer) => parts.push(c));
      r.on('end', () => done(null, Buffer.concat(parts)));
    });
  assert.equal(res.status, 200, String(res.body));
  assert.equal(res.headers['content-type'], 'application/octet-stream');
  return res.body as Buffer;
}

/** Every secret (all versions), its metadata, and the policies, as the API shows them. */
async function apiDigest(vault: TestVault, paths: string[]): Promise<string> {
  const out: unknown[] = [];
  for (const path of paths) {
    const meta = await request(vault.app).get(`/v1/metadata/${path}`).set(vault.auth);
    out.push(meta.status, meta.body);
    for (const v of (meta.body as { versions?: { version: number }[] }).versions ?? []) {
      const s = await request(vault.app).get(`/v1/secrets/${path}?version=${v.version}`).set(vault.auth);
      out.push(s.status, s.body);
    }
  }
  const policies = await request(vault.app).get('/v1/policies/ci-read').set(vault.auth);
  out.push(policies.status, policies.body);
  return JSON.stringify(out);
}

async function expectRefused(options: RestoreOptions, code: string): Promise<void> {
  await assert.rejects(restoreBackup(options), (e: unknown) => {
    assert.ok(isCofferError(e), String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });
  // Nothing written: the directory is absent again, or as empty as it was.
  if (existsSync(options.dataDir)) assert.deepEqual(await readdir(options.dataDir), []);
}

async function seed(vault: TestVault): Promise<{ paths: string[]; token: string }> {
  const paths = ['app/db', 'app/api', 'ci/deploy/key'];
  for (const path of paths) {
    for (let v = 1; v <= 3; v++)
      assert.equal(
        (
          await request(vault.app)
            .put(`/v1/secrets/${path}`)
            .set(vault.auth)
            .send({ data: { v: `${path}-${v}`, pad: 'x'.repeat(200) } })
        ).status,
        200,
      );
  }
  assert.equal(
    (
      await request(vault.app)
        .put('/v1/policies/ci-read')
        .set(vault.auth)
        .send({ rules: [{ path: 'ci/**', capabilities: ['read'] }] })
    ).status,
    200,
  );
  const minted = await request(vault.app)
    .post('/v1/auth/token/create')
    .set(vault.auth)
    .send({ identity: 'svc:ci', policies: ['ci-read'] });
  assert.equal(minted.status, 200, JSON.stringify(minted.body));
  return { paths, token: (minted.body as { token: string }).token };
}

describe('backup and restore', function () {
  this.timeout(60_000);
  let work: string;
  const keyFile = () => join(work, 'kek.key');
  const otherKeyFile = () => join(work, 'other.key');
  let source: TestVault;
  let seeded: { paths: string[]; token: string };
  let file: string;
  let digest: string;

  before(async () => {
    work = await tempDir('coffer-backup-');
    await writeFile(keyFile(), Buffer.alloc(32, 7).toString('base64'), { mode: 0o600 });
    await writeFile(otherKeyFile(), Buffer.alloc(32, 9).toString('base64'), { mode: 0o600 });
    source = await openVault({ source: { kind: 'file', path: keyFile() }, init: { shares: 1, threshold: 1 } });
    seeded = await seed(source);
    file = join(work, 'vault.backup');
    await writeFile(file, await backupOf(source), { mode: 0o600 });
    digest = await apiDigest(source, seeded.paths);
  });
  after(async () => {
    await source.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  it('restores a key-file vault that serves the same secrets, versions, policies and tokens', async () => {
    const dataDir = join(work, 'restored-file');
    const result = await restoreBackup({ file, dataDir, kek: `file:${keyFile()}`, env: {} });
    assert.equal(result.seq, source.store.lastSeq);
    const restored = await openVault({ dir: dataDir, source: { kind: 'file', path: keyFile() }, init: false });
    try {
      await restored.seal.autoUnsealNow();
      restored.auth = source.auth; // the root token of the backup works: signing keys came along
      assert.equal(await apiDigest(restored, seeded.paths), digest);
      assert.equal(restored.store.lastSeq, result.seq);
      // A token minted before the backup still works, with its policy.
      const ci = { Authorization: `Bearer ${seeded.token}` };
      assert.equal((await request(restored.app).get('/v1/secrets/ci/deploy/key').set(ci)).status, 200);
      assert.equal((await request(restored.app).get('/v1/secrets/app/db').set(ci)).status, 403);
      // And the restored vault takes writes from where the backup stood.
      assert.equal(
        (
          await request(restored.app)
            .put('/v1/secrets/app/db')
            .set(source.auth)
            .send({ data: { v: 'after' }, cas: 3 })
        ).status,
        200,
      );
    } finally {
      await restored.cleanup(true);
    }
    assert.ok(!existsSync(join(dataDir, 'db', 'sys')), 'no stray staging directory');
    assert.deepEqual(
      (await readdir(dataDir)).filter((n) => n.startsWith('.coffer-restore-')),
      [],
    );
  });

  it('refuses one flipped byte anywhere (header, chunk, digest), writing nothing', async () => {
    const bytes = await readFile(file);
    for (const at of [12, 40, Math.floor(bytes.length / 2), bytes.length - 40, bytes.length - 1]) {
      const flipped = Buffer.from(bytes);
      flipped[at]! ^= 0x01;
      const bad = join(work, `flipped-${at}.backup`);
      await writeFile(bad, flipped);
      await expectRefused(
        { file: bad, dataDir: join(work, `flip-${at}`), kek: `file:${keyFile()}`, env: {} },
        'backup_corrupt',
      );
    }
  });

  it('refuses a truncated file (mid-chunk, at the end marker, empty), writing nothing', async () => {
    const bytes = await readFile(file);
    for (const length of [0, 10, Math.floor(bytes.length / 2), bytes.length - 36, bytes.length - 1]) {
      const bad = join(work, `cut-${length}.backup`);
      await writeFile(bad, bytes.subarray(0, length));
      await expectRefused(
        { file: bad, dataDir: join(work, `cut-${length}`), kek: `file:${keyFile()}`, env: {} },
        'backup_corrupt',
      );
    }
  });

  it('refuses a forger who recomputed the digest after changing the header', async () => {
    const bytes = await readFile(file);
    const headerLength = bytes.readUInt32BE(9);
    const header = JSON.parse(bytes.subarray(13, 13 + headerLength).toString('utf8')) as { seq: number };
    header.seq += 1000;
    const json = Buffer.from(JSON.stringify(header));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(json.length);
    const body = Buffer.concat([
      bytes.subarray(0, 9),
      length,
      json,
      bytes.subarray(13 + headerLength, bytes.length - 32),
    ]);
    const { createHash } = await import('node:crypto');
    const forged = join(work, 'forged.backup');
    await writeFile(forged, Buffer.concat([body, createHash('sha256').update(body).digest()]));
    await expectRefused(
      { file: forged, dataDir: join(work, 'forged'), kek: `file:${keyFile()}`, env: {} },
      'backup_corrupt',
    );
  });

  it('refuses to restore with a different master key', async () => {
    await expectRefused(
      { file, dataDir: join(work, 'wrong-key'), kek: `file:${otherKeyFile()}`, env: {} },
      'backup_foreign',
    );
  });

  it('refuses a backup of another vault (its key source does not open this one)', async () => {
    // Vault B: its own key file. Restoring A's backup with B's key source is foreign, and so is
    // B's backup with A's key.
    const other = await openVault({
      source: { kind: 'file', path: otherKeyFile() },
      init: { shares: 1, threshold: 1 },
    });
    try {
      const otherFile = join(work, 'other.backup');
      await writeFile(otherFile, await backupOf(other));
      await expectRefused(
        { file: otherFile, dataDir: join(work, 'foreign'), kek: `file:${keyFile()}`, env: {} },
        'backup_foreign',
      );
    } finally {
      await other.cleanup();
    }
  });

  it('refuses a Shamir backup given shares of another vault, and a wrong key source kind', async () => {
    const a = await openVault({ init: { shares: 3, threshold: 2 } });
    const b = await openVault({ init: { shares: 3, threshold: 2 } });
    try {
      await seed(a);
      const aFile = join(work, 'shamir-a.backup');
      await writeFile(aFile, await backupOf(a));
      await expectRefused(
        { file: aFile, dataDir: join(work, 'shamir-foreign'), shares: b.shares.slice(0, 2), env: {} },
        'backup_foreign',
      );
      await assert.rejects(
        restoreBackup({ file: aFile, dataDir: join(work, 'shamir-kind'), kek: `file:${keyFile()}`, env: {} }),
        /initialized with --kek shamir/,
      );
      // The right shares restore it.
      const dataDir = join(work, 'shamir-ok');
      await restoreBackup({
        file: aFile,
        dataDir,
        askShares: async (threshold) => a.shares.slice(1, 1 + threshold),
        env: {},
      });
      const restored = await openVault({ dir: dataDir, init: false });
      try {
        for (const share of a.shares.slice(0, 2)) await restored.seal.submitShare(share);
        restored.auth = a.auth;
        assert.equal(
          (await request(restored.app).get('/v1/secrets/app/api?version=2').set(a.auth)).body.data.v,
          'app/api-2',
        );
      } finally {
        await restored.cleanup(true);
      }
    } finally {
      await a.cleanup();
      await b.cleanup();
    }
  });

  it('refuses to restore into a non-empty data directory', async () => {
    const dataDir = join(work, 'occupied');
    await mkdir(dataDir);
    await writeFile(join(dataDir, 'keep-me'), 'x');
    await assert.rejects(restoreBackup({ file, dataDir, kek: `file:${keyFile()}`, env: {} }), (e: unknown) =>
      isCofferError(e, 'not_empty'),
    );
    assert.deepEqual(await readdir(dataDir), ['keep-me']);
  });

  it('answers 403 to a token without admin on sys/backup', async () => {
    const ci = { Authorization: `Bearer ${seeded.token}` };
    const res = await request(source.app).get('/v1/sys/backup').set(ci);
    assert.equal(res.status, 403);
    assert.equal((res.body as { error: { code: string } }).error.code, 'forbidden');
    // A policy that grants admin on sys/backup is enough.
    assert.equal(
      (
        await request(source.app)
          .put('/v1/policies/backup-op')
          .set(source.auth)
          .send({ rules: [{ path: 'sys/backup', capabilities: ['admin'] }] })
      ).status,
      200,
    );
    const op = await request(source.app)
      .post('/v1/auth/token/create')
      .set(source.auth)
      .send({ identity: 'svc:backup', policies: ['backup-op'] });
    await backupOf(source, { Authorization: `Bearer ${(op.body as { token: string }).token}` });
  });

  it('audits the backup before its first byte, and again at its end', async () => {
    await backupOf(source);
    const lines = (await readFile(source.auditFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { operation?: string; path?: string });
    const ops = lines.filter((l) => l.path === 'sys/backup').map((l) => l.operation);
    assert.ok(ops.includes('GET /v1/sys/backup (start)'), ops.join());
    assert.ok(ops.includes('GET /v1/sys/backup'), ops.join());
  });
});

describeHsm('backup and restore with the master key in SoftHSM2', function (this: Mocha.Suite) {
  this.timeout(60_000);
  it('round-trips a vault whose master key is a non-extractable HSM key', async () => {
    const work = await tempDir('coffer-backup-hsm-');
    const vault = await openHsmVault();
    try {
      const seeded = await seed(vault);
      const file = join(work, 'hsm.backup');
      await writeFile(file, await backupOf(vault));
      const digest = await apiDigest(vault, seeded.paths);
      const dataDir = join(work, 'restored');
      await restoreBackup({ file, dataDir, kek: vault.kek, env: hsmEnv() });
      const restored = await openVault({
        dir: dataDir,
        source: { kind: 'pkcs11', uri: vault.kek },
        env: hsmEnv(),
        init: false,
      });
      try {
        await restored.seal.autoUnsealNow();
        restored.auth = vault.auth;
        assert.equal(await apiDigest(restored, seeded.paths), digest);
      } finally {
        await restored.cleanup(true);
      }
    } finally {
      await vault.cleanup();
      await rm(work, { recursive: true, force: true });
    }
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../server/config.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { parseVersionKey } from '../../server/store/keys.js';
import { silentLog, tempDir } from '../helpers.js';
import { CLI } from './server-process.js';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

const runCli = (args: string[], env: NodeJS.ProcessEnv): Promise<Result> =>
  new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => done({ code, stdout, stderr }));
  });

const WRITERS = 8;
const PATHS_PER_WRITER = 6;
const SEEDED = 800;

/**
 * A real server (dev mode: LevelDB, key file, audit fdatasync), real CLI processes for backup
 * and restore, and a second real server on the restored directory.
 */
describe('backup while 8 writers write, restored through the CLI', function () {
  this.timeout(120_000);
  let dir: string;
  let server: RunningServer;
  let env: NodeJS.ProcessEnv;
  let token: string;
  const api = (base: string, path: string, init: RequestInit = {}) =>
    fetch(`${base}${path}`, {
      ...init,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...init.headers },
    });

  before(async () => {
    dir = await tempDir('coffer-backup-int-');
    server = await startServer(
      // Shipping to a directory keeps the change log, the oracle of what the backup must hold
      // (a standalone server writes none).
      await loadConfig({
        flags: {
          dev: true,
          data_dir: join(dir, 'vault'),
          listen: '127.0.0.1:0',
          replicate_to: [`file://${join(dir, 'bucket')}`],
        },
      }),
      { log: silentLog },
    );
    token = server.rootToken!;
    env = { PATH: process.env.PATH, HOME: join(dir, 'home'), COFFER_ADDR: server.url, COFFER_TOKEN: token };
    // Enough data that the snapshot spans several chunks and takes a while to stream.
    for (let i = 0; i < SEEDED; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, k) =>
          api(server.url, `/v1/secrets/seed/s${i + k}`, {
            method: 'PUT',
            body: JSON.stringify({ data: { v: `seed-${i + k}`, blob: 'z'.repeat(1024) } }),
          }).then((r) => assert.equal(r.status, 200)),
        ),
      );
    }
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('restores exactly the state at the backup’s sequence: acknowledged versions only, none torn, same API digests', async () => {
    // Each writer owns its paths and writes new versions as fast as it is acknowledged.
    const acked = new Map<string, Map<number, string>>(); // path -> version -> value
    const ackedBeforeBackup = new Map<string, number>();
    let stop = false;
    let backupStarted = false;
    const writer = async (w: number) => {
      for (let n = 0; !stop; n++) {
        const path = `w${w}/p${n % PATHS_PER_WRITER}`;
        const value = `writer ${w} write ${n} ${'y'.repeat(300 + ((n * 37) % 500))}`;
        const r = await api(server.url, `/v1/secrets/${path}`, {
          method: 'PUT',
          body: JSON.stringify({ data: { value } }),
        });
        assert.equal(r.status, 200);
        const { version } = (await r.json()) as { version: number };
        if (!acked.has(path)) acked.set(path, new Map());
        acked.get(path)!.set(version, value);
        if (!backupStarted) ackedBeforeBackup.set(path, version);
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    await new Promise((r) => setTimeout(r, 400));
    const file = join(dir, 'online.backup');
    backupStarted = true;
    const backup = await runCli(['backup', '--out', file, '--json'], env);
    await new Promise((r) => setTimeout(r, 200)); // writers keep going after it, too
    stop = true;
    await Promise.all(writers);
    assert.equal(backup.code, 0, backup.stderr);
    const info = JSON.parse(backup.stdout) as { seq: number; bytes: number };
    const seqAtBackup = info.seq;
    assert.equal(((await stat(file)).mode & 0o777).toString(8), '600');
    assert.ok(seqAtBackup < server.store.lastSeq, 'writes went on during and after the backup');

    // Which version of each path the source had at the backup's sequence: from its change log.
    const versionAt = new Map<string, number>();
    const seqOf = new Map<string, number>();
    for (const record of await server.store.changes(0, 1_000_000)) {
      for (const op of record.ops) {
        const parsed = op.type === 'put' ? parseVersionKey(op.key) : undefined;
        if (!parsed || !parsed.path.startsWith('w')) continue;
        seqOf.set(`${parsed.path}#${parsed.version}`, record.seq);
        if (record.seq <= seqAtBackup)
          versionAt.set(parsed.path, Math.max(versionAt.get(parsed.path) ?? 0, parsed.version));
      }
    }
    // Everything acknowledged before the backup was requested is at or before its sequence.
    for (const [path, version] of ackedBeforeBackup)
      assert.ok(seqOf.get(`${path}#${version}`)! <= seqAtBackup, `${path} v${version} acknowledged before the backup`);
    assert.ok(
      [...seqOf.values()].some((seq) => seq > seqAtBackup),
      'some writes landed after the snapshot',
    );

    const restoredDir = join(dir, 'restored');
    const kek = `file:${join(dir, 'vault', 'kek.key')}`;
    const restore = await runCli(['restore', file, '--data-dir', restoredDir, '--kek', kek, '--json'], env);
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal((JSON.parse(restore.stdout) as { seq: number }).seq, seqAtBackup);

    const restored = await startServer(
      await loadConfig({ flags: { data_dir: restoredDir, kek, listen: '127.0.0.1:0' } }),
      { log: silentLog },
    );
    try {
      assert.equal(restored.store.lastSeq, seqAtBackup);
      const writerPaths = Array.from(
        { length: WRITERS * PATHS_PER_WRITER },
        (_, i) => `w${Math.floor(i / PATHS_PER_WRITER)}/p${i % PATHS_PER_WRITER}`,
      );
      const seededPaths = Array.from({ length: SEEDED / 10 }, (_, i) => `seed/s${i * 10}`);
      const restoredView: unknown[] = [];
      const sourceAtBackup: unknown[] = [];
      for (const path of [...writerPaths, ...seededPaths]) {
        const at = path.startsWith('w') ? (versionAt.get(path) ?? 0) : 1;
        const meta = await api(restored.url, `/v1/metadata/${path}`);
        if (at === 0) {
          assert.equal(meta.status, 404, `${path} did not exist at the backup`);
          continue;
        }
        assert.equal(meta.status, 200, path);
        const restoredMeta = (await meta.json()) as {
          current_version: number;
          updated_at: string;
          versions: { version: number; created_at: string }[];
        };
        assert.equal(restoredMeta.current_version, at, `${path}: the version of the backup's sequence`);
        // The source as it was at that sequence: versions are immutable, so its API answer now
        // with the later versions left out (writers only add versions).
        const now = (await (await api(server.url, `/v1/metadata/${path}`)).json()) as typeof restoredMeta;
        const versions = now.versions.filter((v) => v.version <= at);
        sourceAtBackup.push({ ...now, current_version: at, updated_at: versions.at(-1)!.created_at, versions });
        restoredView.push(restoredMeta);
        for (const { version } of versions) {
          const [r, s] = await Promise.all([
            api(restored.url, `/v1/secrets/${path}?version=${version}`),
            api(server.url, `/v1/secrets/${path}?version=${version}`),
          ]);
          const [rb, sb] = [(await r.json()) as { data: { value?: string } }, await s.json()];
          restoredView.push(r.status, rb);
          sourceAtBackup.push(s.status, sb);
          if (path.startsWith('w'))
            assert.equal(
              rb.data.value,
              acked.get(path)!.get(version),
              `${path} v${version} is a value a writer wrote and had acknowledged`,
            );
        }
      }
      assert.deepEqual(restoredView, sourceAtBackup);
    } finally {
      await restored.close();
    }
  });

  it('coffer backup refuses to overwrite an existing file, and restore a non-empty directory', async () => {
    const existing = join(dir, 'exists.backup');
    await writeFile(existing, 'precious', { mode: 0o600 });
    const again = await runCli(['backup', '--out', existing], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists: coffer backup never overwrites/);
    assert.equal(await readFile(existing, 'utf8'), 'precious');

    const occupied = join(dir, 'vault'); // the live source's own data directory
    const refused = await runCli(['restore', existing, '--data-dir', occupied, '--kek', 'file:/nonexistent'], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is not empty .*Nothing was written/);

    const corrupt = await runCli(
      ['restore', existing, '--data-dir', join(dir, 'never'), '--kek', 'file:/nonexistent'],
      env,
    );
    assert.equal(corrupt.code, 1);
    assert.match(corrupt.stderr, /not a Coffer backup/);
  });

  it('the SDK streams a backup over fetch (its default transport)', async () => {
    const { Coffer } = await import('../../sdk/client.js');
    const download = await new Coffer({ addr: server.url, token }).backup();
    assert.match(download.vault, /^[0-9a-f]{32}$/);
    assert.ok(download.seq <= server.store.lastSeq);
    const parts: Uint8Array[] = [];
    for await (const piece of download.body) parts.push(piece);
    const bytes = Buffer.concat(parts);
    assert.equal(bytes.subarray(0, 8).toString(), 'COFFERBK');
    const { createHash } = await import('node:crypto');
    assert.deepEqual(createHash('sha256').update(bytes.subarray(0, -32)).digest(), bytes.subarray(-32));
  });

  it('coffer backup without admin on sys/backup exits 3 and leaves no file', async () => {
    const minted = await api(server.url, '/v1/auth/token/create', {
      method: 'POST',
      body: JSON.stringify({ identity: 'svc:reader', policies: [] }),
    });
    const { token: weak } = (await minted.json()) as { token: string };
    const out = join(dir, 'denied.backup');
    const denied = await runCli(['backup', '--out', out], { ...env, COFFER_TOKEN: weak });
    assert.equal(denied.code, 3, denied.stderr);
    assert.match(denied.stderr, /permission denied: admin on sys\/backup/);
    await assert.rejects(stat(out));
  });
});

/**
 * Backup benchmark (npm run bench:backup): a vault of BENCH_SECRETS (default 100,000) secrets
 * of ~1 KiB, then in the same run, alternating, three times each (medians):
 *   read    every secret once through the secrets engine (metadata, version record, DEK unwrap,
 *           XChaCha20-Poly1305 open): "reading them all once";
 *   backup  the whole store through `startBackup` into a file (snapshot iterator, chunking,
 *           AEAD, HMAC, SHA-256, the writes to disk);
 *   http    the same over `GET /v1/sys/backup` on loopback, streamed to a file.
 * Target: backup < 2x read. Also prints a raw LevelDB scan of the store, for scale.
 */
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { once } from 'node:events';
import { startBackup } from '../../server/backup/backup.js';
import { META_PREFIX, prefixEnd } from '../../server/store/keys.js';
import { openVault, tempDir } from '../helpers.js';
import { writeFile } from 'node:fs/promises';

const SECRETS = Number(process.env.BENCH_SECRETS ?? 100_000);
const RUNS = 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const work = await tempDir('coffer-bench-backup-');
const keyFile = join(work, 'kek.key');
await writeFile(keyFile, Buffer.alloc(32, 3).toString('base64'), { mode: 0o600 });
const vault = await openVault({
  dir: join(work, 'vault'),
  source: { kind: 'file', path: keyFile },
  init: { shares: 1, threshold: 1 },
});
const server = createServer(vault.app);
try {
  const fillStart = performance.now();
  let next = 0;
  const blob = 'x'.repeat(900);
  const worker = async () => {
    while (next < SECRETS) {
      const i = next++;
      await vault.secrets.put(`bench/s${i % 100}/k${i}`, { data: { user: `u${i}`, password: `${i}-${blob}` } });
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  console.log(
    `filled ${SECRETS} secrets in ${((performance.now() - fillStart) / 1000).toFixed(1)} s (store at sequence ${vault.store.lastSeq})`,
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/sys/backup`;

  const readAll = async () => {
    let n = 0;
    for await (const [key] of vault.store.iterate(META_PREFIX, prefixEnd(META_PREFIX))) {
      const secret = await vault.secrets.get(key.slice(META_PREFIX.length));
      if (!secret) throw new Error(`missing ${key}`);
      n++;
    }
    if (n !== SECRETS) throw new Error(`read ${n} secrets, expected ${SECRETS}`);
  };
  const scanAll = async () => {
    let bytes = 0;
    for await (const [k, v] of vault.store.iterate('', '\uffff')) bytes += k.length + v.length;
    return bytes;
  };
  const backupToFile = async (file: string) => {
    const keys = vault.seal.keys();
    const { body } = await startBackup(vault.store, keys.provider, keys.clusterId);
    const out = createWriteStream(file, { mode: 0o600 });
    let bytes = 0;
    for await (const piece of body) {
      bytes += piece.length;
      if (!out.write(piece)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
    return bytes;
  };
  const backupOverHttp = async (file: string) => {
    const res = await fetch(url, { headers: vault.auth });
    if (res.status !== 200 || !res.body) throw new Error(`backup answered ${res.status}`);
    const out = createWriteStream(file, { mode: 0o600 });
    for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>)
      if (!out.write(piece)) await once(out, 'drain');
    out.end();
    await once(out, 'finish');
  };
  const time = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };

  await readAll(); // warm-up: keyring cache, page cache
  const reads: number[] = [];
  const backups: number[] = [];
  const https: number[] = [];
  const scans: number[] = [];
  let size = 0;
  for (let i = 0; i < RUNS; i++) {
    reads.push(await time(readAll));
    backups.push(await time(async () => (size = await backupToFile(join(work, `b${i}.backup`)))));
    https.push(await time(() => backupOverHttp(join(work, `h${i}.backup`))));
    scans.push(await time(scanAll));
    await rm(join(work, `b${i}.backup`));
    await rm(join(work, `h${i}.backup`));
  }
  const [read, backup, http, scan] = [median(reads), median(backups), median(https), median(scans)];
  console.log(
    `${SECRETS} secrets, backup file ${(size / 1024 / 1024).toFixed(1)} MiB; medians of ${RUNS} runs in this process:`,
  );
  console.log(`  read every secret once (engine, decrypt): ${read.toFixed(0)} ms`);
  console.log(
    `  backup to a file (startBackup):            ${backup.toFixed(0)} ms  -> ${(backup / read).toFixed(2)}x the read (target < 2x)`,
  );
  console.log(
    `  backup over HTTP to a file:                ${http.toFixed(0)} ms  -> ${(http / read).toFixed(2)}x the read`,
  );
  console.log(`  raw LevelDB scan of the whole store:       ${scan.toFixed(0)} ms (for scale)`);
} finally {
  server.close();
  await vault.cleanup();
  await rm(work, { recursive: true, force: true });
}

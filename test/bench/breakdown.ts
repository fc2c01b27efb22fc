import { rm } from 'node:fs/promises';
import { openVault } from '../helpers.js';

/**
 * Where a secret read's server time goes: each stage of the hot path timed in-process on a real
 * vault (microseconds per operation, median of 5 batches). Run: npm run bench:breakdown.
 */
const vault = await openVault({ audit: { checkpointEvery: 1000 } });
await vault.secrets.put('bench/secret', { data: { value: 'x'.repeat(1024) } });
await vault.access.directory.putPolicy('bench-read', [{ path: 'bench/*', capabilities: ['read'] }]);
await vault.access.directory.putGroup('bench', ['bench-read'], []);
const { token } = await vault.access.tokens.issue({
  sub: 'svc:bench',
  groups: ['bench'],
  ttlSeconds: 3600,
  maxTtlSeconds: 3600,
  method: 'token',
});
const identity = (await vault.access.authenticate(token))!;

async function time(name: string, op: () => unknown, n = 5_000, parallel = 1): Promise<void> {
  const batches: number[] = [];
  for (let b = 0; b < 5; b++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i += parallel) await Promise.all(Array.from({ length: parallel }, op));
    batches.push(Number(process.hrtime.bigint() - start) / 1000 / n);
  }
  batches.sort((a, b) => a - b);
  console.log(`${name.padEnd(48)} ${batches[2]!.toFixed(1).padStart(7)} us`);
}

await time('token verify (cached) + revocation check', () => vault.access.tokens.verify(token));
await time('authenticate (verify + effective groups)', () => vault.access.authenticate(token));
await time('policy check (compiled, cached evaluator)', () => vault.access.authorize(identity, 'read', 'bench/secret'));
await time('secret read: 2 LevelDB gets + 2 AEAD opens + JSON', () => vault.secrets.get('bench/secret'));
await time('response JSON (1 KiB secret)', async () => JSON.stringify(await vault.secrets.get('bench/secret')));
await time(
  'audit line, 50 in flight (one fdatasync per group)',
  () =>
    vault.audit.record({
      request_id: 'r',
      identity: 'svc:bench',
      groups: ['bench'],
      operation: 'GET /v1/secrets/*path',
      path: 'bench/secret',
      status: 200,
      outcome: 'ok',
      client: '127.0.0.1',
    }),
  2_000,
  50,
);
await time(
  'audit line, alone (a full fdatasync each)',
  () =>
    vault.audit.record({
      request_id: 'r',
      identity: 'svc:bench',
      groups: ['bench'],
      operation: 'GET /v1/secrets/*path',
      path: 'bench/secret',
      status: 200,
      outcome: 'ok',
      client: '127.0.0.1',
    }),
  200,
);
await vault.cleanup();
await rm(vault.dir, { recursive: true, force: true });

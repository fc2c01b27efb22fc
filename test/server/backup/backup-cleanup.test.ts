import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import request from 'supertest';
import { startBackup } from '../../../server/backup/backup.js';
import type { Store } from '../../../server/store/db.js';
import { openVault, type TestVault } from '../../helpers.js';

/**
 * Every LevelDB iterator `store.iterate` hands out (the backup's pinned snapshot), and whether
 * it was closed. Restores the original method on `restore()`.
 */
function countIterators(store: Store): { opened: () => number; open: () => number; restore: () => void } {
  const original = store.iterate.bind(store);
  let opened = 0;
  let closed = 0;
  store.iterate = (gte: string, lt: string) => {
    const it = original(gte, lt);
    opened++;
    let done = false;
    const close = it.close.bind(it);
    it.close = async () => {
      if (!done) {
        done = true;
        closed++;
      }
      await close();
    };
    return it;
  };
  return { opened: () => opened, open: () => opened - closed, restore: () => void (store.iterate = original) };
}

describe('backup: the snapshot and the working keys are released on every path', function () {
  this.timeout(60_000);
  let vault: TestVault;
  let iterators: ReturnType<typeof countIterators>;
  beforeEach(async () => {
    // A short audit timeout: a refused request waits it out once per audit line (two per retry).
    vault = await openVault({ init: { shares: 1, threshold: 1 }, audit: { timeoutMs: 200, retryMs: 50 } });
    assert.equal(
      (
        await request(vault.app)
          .put('/v1/secrets/app/db')
          .set(vault.auth)
          .send({ data: { password: 'p' } })
      ).status,
      200,
    );
    iterators = countIterators(vault.store);
  });
  afterEach(async () => {
    iterators.restore();
    await vault.cleanup();
  });

  it('a backup refused for want of audit (20 retries) answers 503 audit_unavailable and leaves no iterator open', async () => {
    await rm(vault.auditFile);
    await mkdir(vault.auditFile); // the only sink's path is now a directory: every write fails
    for (let i = 0; i < 20; i++) {
      const res = await request(vault.app).get('/v1/sys/backup').set(vault.auth);
      assert.equal(res.status, 503, `retry ${i}: ${res.text}`);
      assert.equal((res.body as { error: { code: string } }).error.code, 'audit_unavailable');
      assert.equal(iterators.open(), 0, `retry ${i}: ${iterators.open()} snapshot iterator(s) left open`);
    }
  });

  it('a finished backup leaves no iterator open', async () => {
    const res = await request(vault.app)
      .get('/v1/sys/backup')
      .set(vault.auth)
      .buffer(true)
      .parse((r, done) => {
        const parts: Buffer[] = [];
        r.on('data', (c: Buffer) => parts.push(c));
        r.on('end', () => done(null, Buffer.concat(parts)));
      });
    assert.equal(res.status, 200);
    assert.ok((res.body as Buffer).length > 0);
    assert.equal(iterators.opened(), 1);
    assert.equal(iterators.open(), 0);
  });

  it('a seal while the client has stopped reading cuts the stream at once, releasing the snapshot and the backup key', async () => {
    // Some 16 MB of backup: more than the socket buffers hold both ways, so the stream waits on drain.
    const value = 'v'.repeat(4000);
    for (let batch = 0; batch < 40; batch++) {
      const res = await request(vault.app)
        .post('/v1/secrets:batch-write')
        .set(vault.auth)
        .send({
          secrets: Array.from({ length: 100 }, (_, i) => ({ path: `bulk/s${batch}-${i}`, data: { v: value } })),
        });
      assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 300));
    }
    const server = createServer(vault.app);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    try {
      socket.write(`GET /v1/sys/backup HTTP/1.1\r\nHost: vault\r\nAuthorization: ${vault.auth.Authorization}\r\n\r\n`);
      await once(socket, 'data');
      socket.pause(); // and never reads again
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(iterators.open(), 1, 'the stream is still on its snapshot');
      const cutLine = async () => (await readFile(vault.auditFile, 'utf8')).includes('"GET /v1/sys/backup (cut)"');
      assert.equal(await cutLine(), false);
      const sealedAt = Date.now();
      await vault.seal.seal();
      while (!(await cutLine()) && Date.now() - sealedAt < 3_000) await new Promise((r) => setTimeout(r, 20));
      assert.ok(await cutLine(), 'the stream stopped as sealed while its client still held the connection');
      assert.equal(iterators.open(), 0, 'the snapshot is released');
      assert.ok(Date.now() - sealedAt < 3_000);
    } finally {
      socket.destroy();
      server.closeAllConnections();
      server.close();
    }
  });

  it('dispose() of a backup whose body was never read closes its iterator and zeroizes its working keys', async () => {
    const keys = vault.seal.keys();
    const started = await startBackup(vault.store, keys.provider, keys.clusterId);
    assert.equal(iterators.open(), 1);
    assert.equal(started.keysForgotten(), false, 'working keys are live before dispose');
    await started.dispose();
    await started.dispose(); // idempotent
    assert.equal(iterators.open(), 0);
    assert.equal(started.keysForgotten(), true, 'working keys zeroized by dispose');
    // A disposed backup streams nothing (no preamble, no chunk under forgotten keys).
    assert.deepEqual(await started.body.next(), { done: true, value: undefined });
  });
});

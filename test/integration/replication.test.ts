import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isLocalKey } from '../../server/store/keys.js';
import type { Store } from '../../server/store/db.js';
import { tempDir } from '../helpers.js';
import { FAST, removeDir, startNode, until, type Node } from '../server/replication/cluster.js';
import { startS3, type TestS3 } from '../server/replication/s3rver.js';

const WRITES = process.env.COFFER_LONG ? 10_000 : 1_000;

/** Digest of every replicated store entry (keys and stored bytes), local state excluded. */
async function storeDigest(store: Store): Promise<string> {
  const h = createHash('sha256');
  const it = store.iterate('', '\uffff');
  for await (const [k, v] of it) if (!isLocalKey(k)) h.update(k).update('\0').update(v).update('\0');
  await it.close();
  return h.digest('hex');
}

/** Digest of path, version and value of every secret, read through the HTTP API. */
async function apiDigest(node: Node, token: string, paths: string[]): Promise<string> {
  const h = createHash('sha256');
  for (let i = 0; i < paths.length; i += 100) {
    const r = await node.call('POST', '/v1/secrets:batch', { paths: paths.slice(i, i + 100) }, token);
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
    for (const p of paths.slice(i, i + 100)) {
      const s = r.body.secrets[p];
      assert.ok(s, `${p} missing on ${node.url}`);
      h.update(`${p}\0${s.version}\0${JSON.stringify(s.data)}\0`);
    }
  }
  return h.digest('hex');
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

describe('replication end to end: primary, a replica through S3 and one through a directory', function () {
  this.timeout(180_000);
  let s3: TestS3;
  let dirBucket: string;
  let primary: Node;
  let viaS3: Node;
  let viaDir: Node;
  let token: string;
  const paths: string[] = [];

  before(async () => {
    s3 = await startS3();
    dirBucket = await tempDir('coffer-bucket-');
    primary = await startNode({
      replicate_to: [s3.url('e2e'), `file://${dirBucket}`],
      ...FAST,
      replication_batch_ms: 50,
    });
    token = primary.server.rootToken!;
    viaS3 = await startNode({
      replica_of: s3.url('e2e'),
      kekFile: join(primary.dir, 'kek.key'),
      ...FAST,
      poll_interval: 0.2,
    });
    viaDir = await startNode({
      replica_of: `file://${dirBucket}`,
      kekFile: join(primary.dir, 'kek.key'),
      ...FAST,
      poll_interval: 0.2,
    });
  });
  after(async () => {
    for (const n of [viaS3, viaDir, primary]) await n?.stop().catch(() => undefined);
    await s3?.close();
    for (const d of [dirBucket, primary?.dir, viaS3?.dir, viaDir?.dir]) if (d) await removeDir(d);
  });

  it(`converges on ${WRITES} writes to identical content on both replicas`, async () => {
    await primary.call(
      'PUT',
      '/v1/policies/e2e-readers',
      { rules: [{ path: 'e2e/**', capabilities: ['read'] }] },
      token,
    );
    let next = 0;
    const worker = async () => {
      while (next < WRITES) {
        const i = next++;
        const path = `e2e/svc-${i % 50}/key-${i}`;
        paths.push(path);
        const r = await primary.call(
          'PUT',
          `/v1/secrets/${path}`,
          { data: { value: `plain-value-${i}-zebra` } },
          token,
        );
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    const head = primary.server.store.lastSeq;
    await until(
      () => viaS3.server.store.lastSeq === head && viaDir.server.store.lastSeq === head,
      60_000,
      'both replicas at the head',
    );
    const expected = await storeDigest(primary.server.store);
    assert.equal(await storeDigest(viaS3.server.store), expected);
    assert.equal(await storeDigest(viaDir.server.store), expected);
    const api = await apiDigest(primary, token, paths);
    assert.equal(await apiDigest(viaS3, token, paths), api);
    assert.equal(await apiDigest(viaDir, token, paths), api);
    const status = (await viaS3.call('GET', '/v1/sys/replication', undefined, token)).body;
    assert.equal(status.role, 'replica');
    assert.equal(status.lag_seq, 0);
    assert.equal(status.primary, primary.url);
    const metrics = await viaS3.call('GET', '/v1/sys/metrics', undefined, token);
    assert.equal(metrics.status, 200);
    assert.match(String(metrics.body), /coffer_replication_lag_records 0/);
  });

  it('H15: no bucket object holds a path, a name or a value in plaintext', async () => {
    const needles = ['e2e/svc', 'key-1', 'plain-value', 'zebra', 'e2e-readers', 'svc-7'];
    const files = [...(await filesUnder(dirBucket)), ...(await filesUnder(s3.directory))];
    assert.ok(files.length > 5);
    for (const file of files) {
      const bytes = await readFile(file);
      const text = bytes.toString('latin1');
      for (const needle of needles) {
        assert.ok(!text.includes(needle), `${file} contains "${needle}"`);
      }
    }
  });

  it('promotes the S3 replica: it takes writes, and the old primary refuses them', async () => {
    const promoted = await viaS3.call('POST', '/v1/sys/replication/promote', {}, token);
    assert.equal(promoted.status, 200, JSON.stringify(promoted.body));
    assert.equal(promoted.body.epoch, 2);
    const write = await viaS3.call('PUT', '/v1/secrets/e2e/after-failover', { data: { value: 'x' } }, token);
    assert.equal(write.status, 200, JSON.stringify(write.body));
    assert.equal((await viaS3.call('GET', '/v1/sys/health')).status, 200);
    // The old primary lost its lease on the S3 bucket when the manifest changed hands.
    const old = await primary.call('PUT', '/v1/secrets/e2e/split-brain', { data: { value: 'y' } }, token);
    assert.ok([409, 503].includes(old.status), `old primary answered ${old.status}`);
    const fenced = await until(
      async () => {
        const r = await primary.call('PUT', '/v1/secrets/e2e/split-brain', { data: { value: 'y' } }, token);
        return r.status === 409 ? r : undefined;
      },
      10_000,
      'old primary fenced',
    );
    assert.equal(fenced.body.error.code, 'read_only_replica');
    assert.match(fenced.body.error.message, /epoch 2/);
    assert.ok(
      primary.logs.some((l) => /fenced/.test(l.msg)),
      'the old primary says so in its log',
    );
    assert.ok((await primary.call('GET', '/v1/sys/replication', undefined, token)).body.fenced);
  });
});

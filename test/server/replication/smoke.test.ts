import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../../helpers.js';
import { FAST, removeDir, startNode, until, type Node, readWhenThere } from './cluster.js';

describe('replication smoke', function () {
  this.timeout(60_000);
  let primary: Node;
  let replica: Node;
  let bucketDir: string;
  let token: string;

  before(async () => {
    bucketDir = await tempDir('coffer-bucket-');
    primary = await startNode({ replicate_to: [`file://${bucketDir}`], ...FAST });
    token = primary.server.rootToken!;
    await until(
      async () => (await primary.call('GET', '/v1/sys/replication', undefined, token)).body.targets[0]?.ok,
      10_000,
      'primary shipping',
    );
    replica = await startNode({ replica_of: `file://${bucketDir}`, kekFile: join(primary.dir, 'kek.key'), ...FAST });
  });
  after(async () => {
    await replica?.stop();
    await primary?.stop();
    for (const d of [primary?.dir, replica?.dir, bucketDir]) if (d) await removeDir(d);
  });

  it('replicates a write', async () => {
    const put = await primary.call('PUT', '/v1/secrets/app/db', { data: { password: 'hunter2' } }, token);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const got = await readWhenThere(replica, token, 'app/db', 10_000);
    assert.equal(got.data.password, 'hunter2');
    const w = await replica.call('PUT', '/v1/secrets/app/db', { data: { password: 'x' } }, token);
    assert.equal(w.status, 409);
    assert.equal(w.body.error.code, 'read_only_replica');
    const health = await replica.call('GET', '/v1/sys/health');
    assert.equal(health.status, 429);
    // Probe flags (docs/api.md "System"): a replica's readiness probe asks with replicaok.
    assert.equal((await replica.call('GET', '/v1/sys/health?replicaok=true')).status, 200);
    assert.equal((await replica.call('GET', '/v1/sys/health?replicaok=false')).status, 429);
    assert.equal((await replica.call('GET', '/v1/sys/health?replicacode=299')).status, 299);
    assert.equal(
      (await primary.call('GET', '/v1/sys/health?replicacode=299')).status,
      200,
      'the primary is not a replica',
    );
  });

  it('a fresh replica reads the sealed values it applied, and accepts no value in the format from before the barrier', async () => {
    // It unsealed with only the vault identity copied (no format marker yet); the snapshot brought the primary's.
    assert.equal(replica.server.seal.barrier.acceptsLegacyValues, false);
    assert.equal(primary.server.seal.barrier.acceptsLegacyValues, false);
  });
});

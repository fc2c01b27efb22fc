import assert from 'node:assert/strict';
import { join } from 'node:path';
import { promoteAndWatch } from '../../cli/commands/replica.js';
import { Coffer } from '../../sdk/client.js';
import { CliError } from '../../cli/errors.js';
import { CofferError } from '../../sdk/errors.js';
import { tempDir } from '../helpers.js';
import { FAST, removeDir, startNode, until, type Node } from '../server/replication/cluster.js';

describe('coffer replica promote: watching the promotion', function () {
  this.timeout(60_000);
  const nodes: Node[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const n of nodes.splice(0)) await n.stop().catch(() => undefined);
    for (const d of dirs.splice(0)) await removeDir(d);
  });
  const track = (n: Node) => (nodes.push(n), dirs.push(n.dir), n);

  async function pair() {
    const bucket = await tempDir('coffer-bucket-');
    dirs.push(bucket);
    const p = track(await startNode({ replicate_to: [`file://${bucket}`], ...FAST }));
    const token = p.server.rootToken!;
    const r = track(await startNode({ replica_of: `file://${bucket}`, kekFile: join(p.dir, 'kek.key'), ...FAST }));
    assert.equal((await p.call('PUT', '/v1/secrets/app/a', { data: { v: 'alpha' } }, token)).status, 200);
    await until(
      async () => (await r.call('GET', '/v1/secrets/app/a', undefined, token)).status === 200,
      10_000,
      'the replica has app/a',
    );
    return { p, r, token };
  }

  it('a promote request cut before its answer (here by a 300 ms timeout) is followed through replica status until writes are accepted', async () => {
    const { p, r, token } = await pair();
    await p.stop(); // its lease (3 s) still runs
    const lines: string[] = [];
    const started = Date.now();
    const result = await promoteAndWatch(new Coffer({ addr: r.url, token }), (l) => lines.push(l), {
      promoteTimeoutMs: 300,
    });
    assert.equal(result.epoch, 2);
    assert.ok(Date.now() - started >= 2_000, 'it waited for the lease, not for the cut request');
    assert.ok(
      lines.some((l) =>
        /^promoted to epoch 2; waiting for the old primary's lease to run out: writes accepted in \ds/.test(l),
      ),
      lines.join('\n'),
    );
    assert.equal(
      (await r.call('PUT', '/v1/secrets/app/b', { data: { v: 'bravo' } }, token)).status,
      200,
      'writes are accepted once it returned',
    );
  });

  it("a refusal is not watched: promoting a primary fails at once with the server's reason", async () => {
    const { p, token } = await pair();
    const lines: string[] = [];
    await assert.rejects(
      promoteAndWatch(new Coffer({ addr: p.url, token }), (l) => lines.push(l)),
      (e: unknown) => e instanceof CofferError && /only a replica can be promoted/.test(e.message),
    );
    assert.deepEqual(lines, []);
    assert.equal(p.server.replication.role, 'primary');
  });

  it('an unreachable server fails at once with unavailable: nothing was sent', async () => {
    const { r, token } = await pair();
    const url = r.url;
    await r.stop();
    await assert.rejects(
      promoteAndWatch(new Coffer({ addr: url, token, retries: 0 }), () => undefined),
      (e: unknown) => e instanceof CofferError && e.code === 'unavailable' && /cannot reach/.test(e.message),
    );
  });

  it("after a lost answer, only this node in a later epoch counts: another server's primary status (a load balancer) is not success", async () => {
    const { p, r, token } = await pair();
    const lines: string[] = [];
    // A client whose status reads go to the old primary (as through a load balancer), while
    // the promote request goes to the replica and is cut at once.
    const statusFromPrimary = new Coffer({ addr: p.url, token });
    const toReplica = new Coffer({ addr: r.url, token });
    let reads = 0;
    const confused = Object.assign(Object.create(toReplica) as Coffer, {
      replicationStatus: () => (reads++ === 0 ? toReplica : statusFromPrimary).replicationStatus(),
      promote: () => Promise.reject(new CofferError('unavailable', 'cut', 0)),
    });
    await assert.rejects(
      promoteAndWatch(confused, (l) => lines.push(l), {
        now: (() => {
          let t = 0;
          return () => (t += 30_000);
        })(),
      }),
      (e: unknown) => e instanceof CliError && e.code === 'unavailable' && /may still be under way/.test(e.message),
    );
    assert.equal(r.server.replication.role, 'replica', 'nothing was promoted');
  });
});

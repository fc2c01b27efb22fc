import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Store } from '../../../server/store/db.js';
import { tempDir } from '../../helpers.js';
import { FAST, removeDir, startNode, until } from './cluster.js';

/**
 * A fresh replica copies the vault identity out of the manifest before it can verify anything
 * (it cannot unseal without it). A bucket attacker must not get anything else into its store
 * that way, and what it copied must be confirmed, byte for byte, by the authenticated manifest.
 */
describe('replication: the identity a fresh replica copies from the bucket', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await removeDir(d);
  });

  const b64 = (s: string) => Buffer.from(s).toString('base64');
  /** What the replica's data directory holds after a refused start. */
  const contents = async (dir: string) => {
    const store = await Store.open(join(dir, 'db'));
    try {
      const all = await store.range('', '\uffff');
      return all.map(([k]) => k).filter((k) => k !== 'sys/repl/node');
    } finally {
      await store.close();
    }
  };

  it('S1: a planted key beside the identity (sys/repl/stream promoted) is refused and nothing is written; a copy the authenticated manifest does not confirm is wiped', async () => {
    const bucket = await tempDir('coffer-bucket-');
    const p = await startNode({ replicate_to: [`file://${bucket}`], ...FAST });
    dirs.push(bucket, p.dir);
    await until(() => p.server.replication.status().targets[0]?.ok, 10_000, 'shipping');
    await p.stop();
    const kekFile = join(p.dir, 'kek.key');
    const manifestFile = join(bucket, 'manifest.json');
    const original = await readFile(manifestFile, 'utf8');
    const forged = (change: (identity: Record<string, string>) => void) => {
      const doc = JSON.parse(original);
      const body = JSON.parse(doc.body);
      assert.deepEqual(
        Object.keys(body.identity).filter((k) => !/^sys\/(seal|master\/\d{10})$/.test(k)),
        [],
        'the primary publishes only identity',
      );
      change(body.identity);
      doc.body = JSON.stringify(body);
      return JSON.stringify(doc);
    };

    // Replication state that would make this node a promoted primary at its next start.
    await writeFile(
      manifestFile,
      forged((id) => {
        id['sys/repl/stream'] = b64(JSON.stringify({ epoch: 1, seq: 0, chain: '0'.repeat(64), promoted: true }));
      }),
    );
    const planted = await tempDir('coffer-repl-');
    dirs.push(planted);
    await assert.rejects(
      startNode({ dir: planted, replica_of: `file://${bucket}`, kekFile, ...FAST }),
      /refusing to copy the vault identity.*sys\/repl\/stream/,
    );
    assert.deepEqual(await contents(planted), [], 'nothing copied');

    // Only identity keys, but not the bytes the primary published (the seal configuration
    // re-encoded): the replica copies it, unseals, then finds the authenticated manifest
    // (put back right after the copy) disagrees. It wipes the copy and refuses to start.
    await writeFile(
      manifestFile,
      forged((id) => {
        id['sys/seal'] = b64(
          JSON.stringify(JSON.parse(Buffer.from(id['sys/seal']!, 'base64').toString('utf8')), null, 1),
        );
      }),
    );
    const altered = await tempDir('coffer-repl-');
    dirs.push(altered);
    const onLog = (line: { msg: string }) => {
      if (line.msg.startsWith('replica: copied the vault identity')) writeFileSync(manifestFile, original);
    };
    await assert.rejects(
      startNode({ dir: altered, replica_of: `file://${bucket}`, kekFile, ...FAST, onLog }),
      /differs from the authenticated manifest/,
    );
    assert.deepEqual(await contents(altered), [], 'the unconfirmed copy is wiped');

    // The same directory starts once the bucket holds the real manifest again.
    const r = await startNode({ dir: altered, replica_of: `file://${bucket}`, kekFile, ...FAST });
    try {
      assert.equal(r.server.replication.role, 'replica');
      assert.equal(r.server.store.get('sys/repl/identity-unverified'), undefined);
      assert.ok(r.server.store.get('sys/seal'));
    } finally {
      await r.stop();
    }
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { tempDir } from '../../helpers.js';
import { createToken, describeHsm, hsmEnv, kekUri } from '../../hsm.js';
import { initHsmKey } from '../../../server/keys/pkcs11/init.js';
import { parsePkcs11Uri } from '../../../server/keys/pkcs11/uri.js';
import { FAST, removeDir, startNode, until, type Node, readWhenThere } from './cluster.js';

/**
 * A primary and a standby in two "data centres", each with its own HSM holding the same key
 * material (generated outside, put into each with `coffer hsm init --key-file`): the standby
 * unwraps the replicated keyrings in its own HSM. Neither key ever leaves its token.
 */
describeHsm('replication between two HSM-backed servers', function (this: Mocha.Suite) {
  this.timeout(60_000);
  let primary: Node | undefined;
  let standby: Node | undefined;
  let bucket: string;

  after(async () => {
    await standby?.stop();
    await primary?.stop();
    for (const d of [primary?.dir, standby?.dir, bucket]) if (d) await removeDir(d);
  });

  it('the standby reads what the primary wrote, through its own token', async () => {
    const material = randomBytes(32);
    const [a, b] = [createToken(), createToken()];
    for (const t of [a, b]) initHsmKey(parsePkcs11Uri(kekUri([t.label])), hsmEnv(), material);
    bucket = await tempDir('coffer-hsm-bucket-');
    primary = await startNode({ kek: kekUri([a.label]), env: hsmEnv(), replicate_to: [`file://${bucket}`], ...FAST });
    const token = primary.server.rootToken!;
    assert.equal((await primary.call('GET', '/v1/sys/seal-status')).body.provider, 'pkcs11');
    await until(
      async () => (await primary!.call('GET', '/v1/sys/replication', undefined, token)).body.targets[0]?.ok,
      10_000,
      'primary shipping',
    );
    standby = await startNode({ kek: kekUri([b.label]), env: hsmEnv(), replica_of: `file://${bucket}`, ...FAST });
    for (let i = 0; i < 5; i++) {
      assert.equal(
        (await primary.call('PUT', `/v1/secrets/ns${i % 3}/s${i}`, { data: { v: `value ${i}` } }, token)).status,
        200,
      );
    }
    for (let i = 0; i < 5; i++) {
      const got = await readWhenThere(standby, token, `ns${i % 3}/s${i}`);
      assert.equal(got.data.v, `value ${i}`);
    }
    assert.equal((await standby.call('GET', '/v1/sys/seal-status')).body.provider, 'pkcs11');
  });
});

import assert from 'node:assert/strict';
import { removeDir, startPair, until, type Node } from '../../replication/cluster.js';
import { raw, rawRequests } from './fixture.js';

/**
 * A replica answers the Vault routes' writes in Vault's error shape, naming the primary
 * (docs/vault-compatibility.md "Errors"), and writes nothing; reads through them still work.
 */
describe('Vault API: writes on a replica', function () {
  this.timeout(60_000);
  const track: { nodes: Node[]; dirs: string[] } = { nodes: [], dirs: [] };
  let primary: Node;
  let replica: Node;
  let token: string;
  const port = (node: Node) => Number(new URL(node.url).port);

  before(async () => {
    ({ primary, replica } = await startPair(track));
    token = primary.server.rootToken!;
    const put = await primary.call('PUT', '/v1/secrets/ci/db', { data: { password: 'on-primary' } }, token);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await until(
      async () => (await replica.call('GET', '/v1/secrets/ci/db', undefined, token)).status === 200,
      20_000,
      'the replica applied the write',
    );
  });
  after(async () => {
    for (const node of track.nodes.reverse()) await node.stop();
    for (const dir of track.dirs) await removeDir(dir);
  });

  it("refuses every KV write with Vault's errors naming the primary, and changes nothing", async () => {
    const headers = { 'X-Vault-Token': token, 'X-Vault-Request': 'true' };
    const writes = [
      raw('PUT', '/v1/secret/data/ci/db', headers, '{"data":{"password":"on-replica"}}\n'),
      raw('POST', '/v1/secret/data/ci/new', headers, '{"data":{"a":"1"},"options":{"cas":0}}'),
      raw('PUT', '/v1/secret/metadata/ci/db', headers, '{"custom_metadata":{"owner":"x"}}'),
      raw('DELETE', '/v1/secret/data/ci/db', headers),
      raw('POST', '/v1/secret/destroy/ci/db', headers, '{"versions":[1]}'),
      raw('DELETE', '/v1/secret/metadata/ci/db', headers),
    ];
    const answers = await rawRequests(port(replica), writes);
    answers.forEach((res, i) => {
      assert.equal(res.status, 409, `${writes[i]!.split('\r\n')[0]}: ${res.body}`);
      const body = res.json();
      assert.deepEqual(Object.keys(body), ['errors'], 'only Vault shape on a Vault route');
      assert.equal(body.errors.length, 1);
      assert.match(body.errors[0], /read-only replica: write to the primary at /);
      assert.ok(body.errors[0].includes(primary.url), body.errors[0]);
    });
    const [read, meta] = await rawRequests(port(replica), [
      raw('GET', '/v1/secret/data/ci/db', headers),
      raw('GET', '/v1/secret/metadata/ci/db', headers),
    ]);
    assert.equal(read!.status, 200, 'reads still answer on the replica');
    assert.deepEqual(read!.json().data.data, { password: 'on-primary' });
    assert.equal(meta!.json().data.current_version, 1);
    assert.equal(meta!.json().data.custom_metadata, null, 'no metadata written');
    assert.equal((await replica.call('GET', '/v1/secrets/ci/new', undefined, token)).status, 404);
    assert.equal((await primary.call('GET', '/v1/secrets/ci/db', undefined, token)).body.data.password, 'on-primary');
  });
});

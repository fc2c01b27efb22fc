import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { safeFetch, type Resolve } from '../../../server/auth/safe-fetch.js';

describe('identity-provider fetch (JWKS)', () => {
  let server: Server;
  let port: number;
  const hosts: string[] = [];
  before(async () => {
    server = createServer((req, res) => {
      hosts.push(req.headers.host ?? '');
      res.setHeader('Content-Type', 'application/json');
      res.end('{"keys":[]}');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((done) => server.close(() => done())));

  /** A resolver that answers the loopback server first and the cloud metadata address after. */
  function rebinding(): Resolve & { calls: number } {
    const resolve = Object.assign(
      async () => {
        resolve.calls++;
        return [{ address: resolve.calls === 1 ? '127.0.0.1' : '169.254.169.254', family: 4 }];
      },
      { calls: 0 },
    );
    return resolve;
  }

  // Fails before issue 10: the host was resolved once to check it and again by fetch to connect.
  it('connects to the address it checked: a resolver that rebinds after the check is never asked again', async () => {
    const resolve = rebinding();
    const res = await safeFetch(`http://idp.example.test:${port}/jwks`, {}, resolve);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { keys: [] });
    assert.equal(resolve.calls, 1);
    assert.equal(hosts.at(-1), `idp.example.test:${port}`, 'the Host header stays the URL host');
  });

  it('refuses a host that resolves to a link-local or metadata address among others, before connecting', async () => {
    const seen = hosts.length;
    const resolve: Resolve = async () => [
      { address: '127.0.0.1', family: 4 },
      { address: '169.254.169.254', family: 4 },
    ];
    await assert.rejects(
      safeFetch(`http://idp.example.test:${port}/jwks`, {}, resolve),
      (e: Error & { code?: string }) => e.code === 'idp_unavailable',
    );
    await assert.rejects(
      safeFetch(`http://mapped.example.test:${port}/jwks`, {}, async () => [
        { address: '::ffff:169.254.169.254', family: 6 },
      ]),
      (e: Error & { code?: string }) => e.code === 'idp_unavailable',
    );
    // Every spelling of the metadata address, in the URL or in a DNS answer (review of issue 10:
    // the URL parser writes [::ffff:169.254.169.254] as [::ffff:a9fe:a9fe], which passed).
    const spellings = [
      '::ffff:169.254.169.254',
      '::ffff:a9fe:a9fe',
      '::a9fe:a9fe',
      '::ffff:0:a9fe:a9fe',
      '64:ff9b::a9fe:a9fe',
      '0:0:0:0:0:ffff:a9fe:a9fe',
      'fe80::1',
      'fd00:ec2::254',
      '0.1.2.3',
    ];
    for (const address of spellings) {
      const url = address.includes(':') ? `http://[${address}]:${port}/jwks` : `http://${address}:${port}/jwks`;
      await assert.rejects(safeFetch(url, {}), (e: Error & { code?: string }) => e.code === 'idp_unavailable', url);
      await assert.rejects(
        safeFetch(`http://idp.example.test:${port}/jwks`, {}, async () => [
          { address, family: address.includes(':') ? 6 : 4 },
        ]),
        (e: Error & { code?: string }) => e.code === 'idp_unavailable',
        address,
      );
    }
    assert.equal(hosts.length, seen, 'no request reached any server');
  });

  it('refuses a host that does not resolve and a scheme other than http(s)', async () => {
    await assert.rejects(
      safeFetch(`http://nowhere.example.test:${port}/`, {}, async () => []),
      (e: Error & { code?: string }) => e.code === 'idp_unavailable',
    );
    await assert.rejects(
      safeFetch('file:///etc/passwd', {}),
      (e: Error & { code?: string }) => e.code === 'idp_unavailable',
    );
  });
});

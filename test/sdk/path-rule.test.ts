import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { Coffer, CofferError } from '../../sdk/index.js';
import { isValidPath } from '../../server/paths.js';

/**
 * The SDK checks a secret path before it sends anything, with the server's rule (one module,
 * sdk/wire/paths.ts, which server/paths.ts wraps). These tests hold the SDK to server/paths.ts:
 * the same paths are accepted and refused, the length and reserved-namespace bounds included.
 */
const client = new Coffer({ addr: 'http://127.0.0.1:9', token: 'unused' });
const sdkAccepts = (path: string): boolean => {
  try {
    (client as unknown as { secretPath(p: string): string }).secretPath(path);
    return true;
  } catch (e) {
    assert.ok(e instanceof CofferError && e.code === 'invalid_path', String(e));
    return false;
  }
};

describe('sdk path rule agrees with the server', () => {
  const cases = [
    'app/x',
    'a',
    '9/x',
    'app/A.b_c-9',
    'app/x..y',
    `app/${'c'.repeat(128)}`,
    `app/${'c'.repeat(129)}`,
    Array.from({ length: 16 }, (_, i) => `s${i}`).join('/'),
    Array.from({ length: 17 }, (_, i) => `s${i}`).join('/'),
    [...Array.from({ length: 5 }, () => 'd'.repeat(100)), 'e'.repeat(7)].join('/'), // 512 characters
    [...Array.from({ length: 5 }, () => 'd'.repeat(100)), 'e'.repeat(8)].join('/'), // 513 characters
    '',
    '/app',
    'app/',
    'app//x',
    'app/../x',
    'app/./x',
    'app/-x',
    'app/_x',
    'app/x y',
    'app/caf\u00e9',
    'sys',
    'sys/x',
    'SYS/x',
    'Transit/k',
    'transit',
    'sysx/y',
    'app/sys',
    'transitive/x',
  ];

  for (const path of cases) {
    it(`${isValidPath(path) ? 'accepts' : 'refuses'} ${JSON.stringify(path.length > 40 ? `${path.slice(0, 20)}…(${path.length})` : path)} like the server`, () => {
      assert.equal(sdkAccepts(path), isValidPath(path));
    });
  }

  it('agrees with the server on generated paths near every bound', () => {
    const segment = fc.oneof(
      fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,3}$/),
      fc.constantFrom(
        'sys',
        'SYS',
        'transit',
        'Transit',
        '..',
        '.',
        '',
        '-a',
        'a b',
        'c'.repeat(128),
        'c'.repeat(129),
        'd'.repeat(100),
      ),
    );
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 18 }), (segments) => {
        const path = segments.join('/');
        assert.equal(sdkAccepts(path), isValidPath(path), path);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a 513-character path before sending any request', async () => {
    let requests = 0;
    const server = createServer((_req, res) => {
      requests++;
      res
        .writeHead(404, { 'Content-Type': 'application/json' })
        .end('{"error":{"code":"not_found","message":"not found","request_id":"x"}}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const sdk = new Coffer({ addr: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 't' });
      const long = [...Array.from({ length: 5 }, () => 'd'.repeat(100)), 'e'.repeat(8)].join('/');
      assert.throws(
        () => sdk.getSecret(long),
        (e: unknown) =>
          e instanceof CofferError && e.code === 'invalid_path' && /512 characters at most/.test(e.message),
      );
      assert.throws(
        () => sdk.getSecret('sys/seal'),
        (e: unknown) => e instanceof CofferError && e.code === 'invalid_path' && /reserved/.test(e.message),
      );
      assert.equal(requests, 0);
      await assert.rejects(
        sdk.getSecret(long.slice(0, 512)),
        (e: unknown) => e instanceof CofferError && e.code === 'not_found',
      );
      assert.equal(requests, 1, 'a 512-character path is sent');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

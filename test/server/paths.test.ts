import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CofferError } from '../../server/errors.js';
import {
  MAX_PATH_LENGTH,
  MAX_SEGMENTS,
  checkPath,
  isValidPath,
  namespaceOf,
  parseUrlPath,
} from '../../server/paths.js';
import { openVault, type TestVault } from '../helpers.js';

/**
 * The secret path rule (server/paths.ts, docs/api.md "Conventions", SECURITY-CASES C3-C12) at
 * its exact bounds: 512 characters, 16 segments, 128-character segments, the reserved
 * namespaces, the raw-URL limits, and `namespaceOf`, which names the keyring a secret is sealed
 * under and is part of the context bound to every stored value.
 */

const invalidPath = (e: unknown) => e instanceof CofferError && e.code === 'invalid_path' && e.status === 400;
/** A valid path of exactly `length` characters: segments of 128 and a shorter last one. */
function pathOfLength(length: number): string {
  const segments: string[] = [];
  for (let left = length; left > 0; left -= 129) segments.push('p'.repeat(Math.min(128, left)));
  return segments.join('/');
}

describe('paths: the rule at its bounds', () => {
  it('accepts a path of exactly 512 characters and refuses 513', () => {
    const at = pathOfLength(512);
    assert.equal(at.length, 512);
    assert.equal(isValidPath(at), true);
    assert.equal(checkPath(at), at);
    const over = `${at.slice(0, -1)}pp`;
    assert.equal(over.length, 513);
    assert.ok(
      over.split('/').every((s) => s.length <= 128) && over.split('/').length <= MAX_SEGMENTS,
      'only the length is wrong',
    );
    assert.equal(isValidPath(over), false);
    assert.throws(
      () => checkPath(over),
      (e: unknown) => invalidPath(e) && /512 characters at most/.test((e as Error).message),
    );
    assert.equal(MAX_PATH_LENGTH, 512);
  });

  it('accepts 16 segments and refuses 17, and 128-character segments but not 129', () => {
    const sixteen = Array.from({ length: 16 }, (_, i) => `s${i}`).join('/');
    assert.equal(isValidPath(sixteen), true);
    assert.equal(isValidPath(`${sixteen}/x`), false);
    assert.equal(isValidPath(`a/${'c'.repeat(128)}`), true);
    assert.equal(isValidPath(`a/${'c'.repeat(129)}`), false);
    assert.equal(isValidPath('a'), true);
  });

  it('refuses the empty path and everything that is not a string', () => {
    for (const bad of ['', undefined, null, 7, ['a'], { path: 'a' }]) {
      assert.equal(isValidPath(bad), false, String(bad));
      assert.throws(() => checkPath(bad), invalidPath);
    }
  });

  it('refuses the reserved namespaces sys and transit in any letter case, and only as the first segment', () => {
    for (const reserved of ['sys', 'sys/x', 'SYS/x', 'Sys', 'transit/k', 'TRANSIT', 'tRaNsIt/k/v']) {
      assert.equal(isValidPath(reserved), false, reserved);
      assert.throws(
        () => checkPath(reserved, 'the path'),
        (e: unknown) =>
          invalidPath(e) &&
          (e as Error).message ===
            'the path is invalid: the namespaces sys and transit are reserved for system and transit capabilities',
        reserved,
      );
    }
    for (const free of ['system/x', 'sysx', 'sy', 'transits/x', 'app/sys', 'app/transit/x', 'x/SYS']) {
      assert.equal(isValidPath(free), true, free);
      assert.equal(checkPath(free), free);
    }
  });

  it('says what a valid path is when it refuses one (and names the field)', () => {
    assert.throws(
      () => checkPath('a//b', 'prefix'),
      (e: unknown) =>
        invalidPath(e) &&
        (e as Error).message ===
          "prefix is invalid: use 1 to 16 segments of [A-Za-z0-9._-] separated by '/', each starting with a letter or digit, 512 characters at most",
    );
    assert.throws(
      () => checkPath(42),
      (e: unknown) => invalidPath(e) && (e as Error).message.startsWith('path is invalid: use 1 to 16 segments'),
    );
  });
});

describe('paths: parseUrlPath (the raw, still encoded URL path)', () => {
  it('decodes each segment exactly once and returns the canonical path', () => {
    assert.equal(parseUrlPath('app/x'), 'app/x');
    assert.equal(parseUrlPath('%61pp/%78'), 'app/x');
    assert.equal(parseUrlPath('A.b_c-9/x..y'), 'A.b_c-9/x..y');
  });

  it('refuses encoded separators, dot segments, double encodings and bad escapes', () => {
    assert.throws(
      () => parseUrlPath('app%2Fx'),
      (e: unknown) => invalidPath(e) && (e as Error).message.startsWith('path is invalid: use 1 to 16 segments'),
    );
    assert.throws(
      () => parseUrlPath(''),
      (e: unknown) => invalidPath(e) && (e as Error).message.startsWith('path is invalid: use 1 to 16 segments'),
    );
    assert.throws(
      () => parseUrlPath('%73ys/x'),
      (e: unknown) =>
        invalidPath(e) &&
        (e as Error).message ===
          'path is invalid: the namespaces sys and transit are reserved for system and transit capabilities',
    );
    for (const raw of [
      'app%2Fx',
      'app/%2e%2e/x',
      'app/%252e',
      'app/%zz',
      'app/%',
      'app/%C0%AE',
      '',
      'app//x',
      'sys/x',
      'SYS/x',
      '%73ys/x',
    ]) {
      assert.throws(() => parseUrlPath(raw), invalidPath, raw);
    }
  });

  it('accepts an encoded path of 16 segments and refuses 17, even when every segment is encoded', () => {
    const encoded = (n: number) => Array.from({ length: n }, () => '%61').join('/');
    assert.equal(parseUrlPath(encoded(16)), Array(16).fill('a').join('/'));
    assert.throws(() => parseUrlPath(encoded(17)), invalidPath);
  });

  it('accepts the longest encoding of a valid path and refuses a raw path of more than 1,536 characters quickly', () => {
    // 512 decoded characters, every non-separator character encoded: 3 x 509 + 3 = 1,530 raw.
    const path = pathOfLength(512);
    const raw = path
      .split('/')
      .map((s) => [...s].map((c) => `%${c.charCodeAt(0).toString(16)}`).join(''))
      .join('/');
    assert.equal(raw.length, 1530);
    assert.equal(parseUrlPath(raw), path);
    const started = process.hrtime.bigint();
    for (const huge of ['a'.repeat(1537), `${'%61'.repeat(200_000)}`, Array(100_000).fill('a').join('/')]) {
      assert.throws(() => parseUrlPath(huge), invalidPath);
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(ms < 500, `refusing three huge raw paths took ${ms.toFixed(1)} ms`);
  });
});

describe('paths: namespaceOf', () => {
  it('is the first segment of the path, or the whole path when it has one segment', () => {
    assert.equal(namespaceOf('app/db'), 'app');
    assert.equal(namespaceOf('app/db/x/y'), 'app');
    assert.equal(namespaceOf('app'), 'app');
    assert.equal(namespaceOf('a/b'), 'a');
    assert.equal(namespaceOf(`${'n'.repeat(128)}/x`), 'n'.repeat(128));
    assert.equal(namespaceOf('Team.A-1_x/y'), 'Team.A-1_x');
  });
});

describe('paths: raw-URL limits over HTTP', () => {
  let vault: TestVault;
  let server: http.Server;
  let port: number;
  before(async () => {
    vault = await openVault();
    server = http.createServer(vault.app).listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await vault.cleanup();
  });

  const get = (path: string) =>
    new Promise<{ status: number; body: any; ms: number }>((resolve, reject) => {
      const started = Date.now();
      const req = http.request(
        { host: '127.0.0.1', port, path, headers: { ...vault.auth, Connection: 'close' } },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: JSON.parse(Buffer.concat(parts).toString() || 'null'),
              ms: Date.now() - started,
            }),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });

  it('answers a very long raw path and 17 encoded segments with 400 invalid_path, quickly', async () => {
    for (const path of [
      `/v1/secrets/${'%61'.repeat(3000)}`,
      `/v1/secrets/${'a'.repeat(1537)}`,
      `/v1/secrets/${Array(17).fill('%61').join('/')}`,
      `/v1/metadata/${Array(17).fill('%61').join('/')}`,
    ]) {
      const res = await get(path);
      assert.equal(res.status, 400, `${path.slice(0, 40)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'invalid_path');
      assert.ok(res.ms < 2000, `${res.ms} ms`);
    }
    const sixteen = await get(`/v1/secrets/${Array(16).fill('%61').join('/')}`);
    assert.equal(sixteen.status, 404, 'a valid encoded path of 16 segments reaches the engine');
  });
});

import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { Coffer, CofferError } from '../../sdk/index.js';
import { MAX_PATH_LENGTH } from '../../sdk/wire/paths.js';
import { openVault, type TestVault } from '../helpers.js';

/**
 * The SDK and the server apply one path rule (sdk/wire/paths.ts): a path the server would
 * refuse with 400 invalid_path is refused by the SDK before anything is sent, and a path the
 * server takes is sent.
 */
describe('sdk secret paths: the server rule, before sending', function () {
  this.timeout(20_000);
  let vault: TestVault;
  let server: Server;
  let addr: string;
  let requests: string[];

  before(async () => {
    vault = await openVault();
    requests = [];
    server = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      vault.app(req, res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    addr = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    await vault.cleanup();
  });
  beforeEach(() => (requests = []));

  const segment = (n: number, c = 'a') => c.repeat(n);
  /** `n` characters in segments of at most 128. */
  const pathOf = (n: number) => {
    const parts: string[] = [];
    let left = n;
    while (left > 0) {
      const take = Math.min(128, left - (parts.length ? 1 : 0));
      parts.push(segment(take, String.fromCharCode(97 + (parts.length % 26))));
      left -= take + (parts.length > 1 ? 1 : 0);
    }
    return parts.join('/');
  };

  const refused = [
    ['513 characters', pathOf(MAX_PATH_LENGTH + 1)],
    ['17 segments', Array.from({ length: 17 }, (_, i) => `s${i}`).join('/')],
    ['a segment of 129 characters', segment(129)],
    ['an empty segment', 'app//db'],
    ['a trailing slash', 'app/db/'],
    ['a dot segment', 'app/../db'],
    ['a segment starting with a dot', 'app/.db'],
    ['a space', 'app/d b'],
    ['the reserved namespace sys', 'sys/x'],
    ['the reserved namespace transit in another case', 'Transit/x'],
    ['an empty path', ''],
  ] as const;

  it('builds the boundary paths it claims to', () => {
    assert.equal(pathOf(512).length, 512);
    assert.equal(pathOf(513).length, 513);
    assert.ok(
      pathOf(513)
        .split('/')
        .every((s) => s.length >= 1 && s.length <= 128),
    );
  });

  for (const [what, path] of refused) {
    it(`refuses a path with ${what} before sending, as the server does (400 invalid_path)`, async () => {
      const client = new Coffer({ addr, token: vault.rootToken });
      for (const call of [
        () => client.putSecret(path, { data: { k: 'v' } }),
        () => client.getSecret(path),
        () => client.metadata(path),
        () => client.deleteSecret(path),
        () => client.undelete(path, [1]),
        () => client.destroy(path, [1]),
        () => client.batchGet([path]),
      ]) {
        await assert.rejects(
          async () => call(),
          (e: unknown) =>
            e instanceof CofferError &&
            e.code === 'invalid_path' &&
            e.status === 0 &&
            /not a valid secret path/.test(e.message),
        );
      }
      assert.deepEqual(requests, [], 'nothing was sent');
      // The server, asked directly, refuses the same path (in a body: 400 invalid_request naming the field).
      const direct = await request(vault.app)
        .post('/v1/secrets:batch')
        .set(vault.auth)
        .send({ paths: [path] });
      assert.equal(direct.status, 400, `server batch ${what}`);
      if (path !== '') {
        const put = await request(vault.app)
          .put(`/v1/secrets/${path.split('/').map(encodeURIComponent).join('/')}`)
          .set(vault.auth)
          .send({ data: { k: 'v' } });
        assert.deepEqual([put.status, put.body.error?.code], [400, 'invalid_path'], `server PUT ${what}`);
      }
    });
  }

  it('sends a path of exactly 512 characters and 16 segments, which the server takes', async () => {
    const client = new Coffer({ addr, token: vault.rootToken });
    const long = pathOf(MAX_PATH_LENGTH);
    assert.equal((await client.putSecret(long, { data: { k: 'v' } })).version, 1);
    assert.equal((await client.getSecret(long)).data.k, 'v');
    const deep = Array.from({ length: 16 }, (_, i) => `s${i}`).join('/');
    assert.equal((await client.putSecret(deep, { data: { k: 'v' } })).path, deep);
    assert.equal(requests.length, 3);
  });

  it('checks the path with the namespace joined in front: 512 characters in all', async () => {
    const scoped = new Coffer({ addr, token: vault.rootToken, namespace: 'team' });
    const fits = pathOf(MAX_PATH_LENGTH - 'team/'.length);
    assert.equal((await scoped.putSecret(fits, { data: { k: 'v' } })).path, `team/${fits}`);
    await assert.rejects(
      async () => scoped.getSecret(`${fits}x`),
      (e: unknown) => e instanceof CofferError && e.code === 'invalid_path',
    );
    assert.equal(requests.length, 1, 'only the path that fits was sent');
  });
});

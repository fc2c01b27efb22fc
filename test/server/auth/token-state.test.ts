import assert from 'node:assert/strict';
import request from 'supertest';
import type { Identity } from '../../../server/auth/access.js';
import { AuthService } from '../../../server/auth/service.js';
import { SWEEP_GRACE_SECONDS, TokenService } from '../../../server/auth/tokens.js';
import { loadConfig } from '../../../server/config.js';
import { isCofferError } from '../../../server/errors.js';
import type { Store } from '../../../server/store/db.js';
import { openVault, type TestVault } from '../../helpers.js';

/**
 * Token state in the store is bounded (SECURITY-CASES J13): records of tokens past their hard
 * expiry are deleted by the primary's sweep (revocations never before the token's `exp`), a
 * replica applies shipped token changes from the changed keys alone (no scan of the whole
 * history), and one token holds at most `token_max_children` live children.
 */

type Headers = Record<string, string>;
const bearer = (token: string): Headers => ({ Authorization: `Bearer ${token}` });
const jtiOf = (token: string) =>
  (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { jti: string }).jti;
const kek = {
  source: { kind: 'env' as const, variable: 'COFFER_TEST_KEK' },
  env: { COFFER_TEST_KEK: Buffer.alloc(32, 0x29).toString('base64') },
};

const self = (vault: TestVault, token: string) => request(vault.app).get('/v1/auth/token/self').set(bearer(token));
const renew = (vault: TestVault, token: string) =>
  request(vault.app).post('/v1/auth/token/renew').set(bearer(token)).send({});
const revoke = (vault: TestVault, auth: Headers, body: object = {}) =>
  request(vault.app).post('/v1/auth/token/revoke').set(auth).send(body);

async function mint(vault: TestVault, auth: Headers, body: object): Promise<string> {
  const res = await request(vault.app).post('/v1/auth/token/create').set(auth).send(body);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.token as string;
}

async function keysUnder(store: Store, prefix: string): Promise<string[]> {
  return (await store.scanPrefix(prefix)).map(([k]) => k);
}

/** The store keys changed since `seq`: what a replica's `onApplied` gets for the shipped records. */
async function changedSince(store: Store, seq: number): Promise<string[]> {
  return (await store.changes(seq, 100_000)).flatMap((r) => r.ops.map((op) => op.key));
}

async function restart(vault: TestVault, now: () => number): Promise<TestVault> {
  const { dir, rootToken } = vault;
  await vault.cleanup(true);
  const next = await openVault({ ...kek, dir, init: false, now });
  await next.seal.autoUnsealNow();
  next.rootToken = rootToken;
  next.auth = { Authorization: `Bearer ${rootToken}` };
  return next;
}

describe("token state: the sweep deletes records past their token's hard expiry from the store", () => {
  let vault: TestVault;
  const start = Math.floor(Date.now() / 1000) * 1000;
  let clock = start;
  before(async () => {
    vault = await openVault({ ...kek, now: () => clock });
    const put = async (path: string, body: object) =>
      assert.equal((await request(vault.app).put(path).set(vault.auth).send(body)).status, 200, path);
    await put('/v1/policies/token-maker', { rules: [{ path: 'sys/auth/token/create', capabilities: ['admin'] }] });
  });
  after(() => vault.cleanup());

  it("expired children, renewals and revocations go; a revocation lives until its token's exp and the token stays refused across a restart", async () => {
    const root = jtiOf(vault.rootToken);
    clock = start;
    const short = await mint(vault, vault.auth, { identity: 'svc:short', ttl: 60 });
    const renewed = await mint(vault, vault.auth, { identity: 'svc:renewed', ttl: 60, max_ttl: 120 });
    const revokedShort = await mint(vault, vault.auth, { identity: 'svc:revoked-short', ttl: 60 });
    const long = await mint(vault, vault.auth, {
      identity: 'svc:long',
      policies: ['token-maker'],
      ttl: '1h',
      max_ttl: '4h',
    });
    const revokedLong = await mint(vault, vault.auth, { identity: 'svc:revoked-long', ttl: '1h', max_ttl: '4h' });
    const grandchild = await mint(vault, bearer(long), { identity: 'svc:grandchild', ttl: 60 });
    clock = start + 30_000;
    assert.equal((await renew(vault, renewed)).status, 200);
    assert.equal((await revoke(vault, bearer(revokedShort))).status, 204);
    assert.equal((await revoke(vault, bearer(revokedLong))).status, 204);
    const edge = (parent: string, child: string) => `auth/children/${jtiOf(parent)}/${jtiOf(child)}`;
    assert.deepEqual(
      new Set(await keysUnder(vault.store, 'auth/children/')),
      new Set([
        ...[short, renewed, revokedShort, long, revokedLong].map((t) => `auth/children/${root}/${jtiOf(t)}`),
        edge(long, grandchild),
      ]),
    );
    assert.deepEqual(await keysUnder(vault.store, 'auth/renewed/'), [`auth/renewed/${jtiOf(renewed)}`]);
    assert.deepEqual(
      new Set(await keysUnder(vault.store, 'auth/revoked/')),
      new Set([`auth/revoked/${jtiOf(revokedShort)}`, `auth/revoked/${jtiOf(revokedLong)}`]),
    );

    // Within the grace period nothing is deleted yet.
    clock = start + 120_000;
    await vault.access.tokens.sweepStore();
    assert.equal((await keysUnder(vault.store, 'auth/children/')).length, 6);

    clock = start + (120 + SWEEP_GRACE_SECONDS + 1) * 1000;
    await vault.access.tokens.sweepStore();
    assert.deepEqual(
      new Set(await keysUnder(vault.store, 'auth/children/')),
      new Set([`auth/children/${root}/${jtiOf(long)}`, `auth/children/${root}/${jtiOf(revokedLong)}`]),
    );
    assert.deepEqual(await keysUnder(vault.store, 'auth/renewed/'), []);
    assert.deepEqual(
      await keysUnder(vault.store, 'auth/revoked/'),
      [`auth/revoked/${jtiOf(revokedLong)}`],
      "a revocation stays until its token's hard exp",
    );

    vault = await restart(vault, () => clock);
    assert.equal((await self(vault, revokedLong)).status, 401, 'revoked, not expired: still refused after a restart');
    assert.equal((await self(vault, long)).status, 200, 'its tree edge and its lifetime are intact');
    assert.equal((await self(vault, vault.rootToken)).status, 200);
    await vault.access.tokens.sweepStore();
    assert.deepEqual(await keysUnder(vault.store, 'auth/revoked/'), [`auth/revoked/${jtiOf(revokedLong)}`]);

    clock = start + (4 * 3600 - 1) * 1000;
    await vault.access.tokens.sweepStore();
    assert.equal((await self(vault, revokedLong)).status, 401, 'one second before its exp: still revoked');
    assert.deepEqual(await keysUnder(vault.store, 'auth/revoked/'), [`auth/revoked/${jtiOf(revokedLong)}`]);

    clock = start + (4 * 3600 + SWEEP_GRACE_SECONDS + 1) * 1000;
    await vault.access.tokens.sweepStore();
    assert.deepEqual(await keysUnder(vault.store, 'auth/revoked/'), []);
    assert.deepEqual(await keysUnder(vault.store, 'auth/children/'), []);
    assert.equal((await self(vault, revokedLong)).status, 401, 'past its exp: never valid again');
  });

  it('records already expired when the vault starts are found by the load and deleted by the next sweep', async () => {
    clock = start + 10 * 86_400_000;
    const a = await mint(vault, vault.auth, { identity: 'svc:a', ttl: 60 });
    const b = await mint(vault, vault.auth, { identity: 'svc:b', ttl: 60, max_ttl: 600 });
    clock += 10_000;
    assert.equal((await renew(vault, b)).status, 200);
    assert.equal((await revoke(vault, bearer(a))).status, 204);
    const stateKeys = async () => [
      ...(await keysUnder(vault.store, 'auth/children/')),
      ...(await keysUnder(vault.store, 'auth/renewed/')),
      ...(await keysUnder(vault.store, 'auth/revoked/')),
    ];
    assert.equal((await stateKeys()).length, 4);
    clock += (600 + SWEEP_GRACE_SECONDS) * 1000;
    vault = await restart(vault, () => clock);
    await vault.access.tokens.sweepStore();
    assert.deepEqual(await stateKeys(), []);
  });

  it('a server that may not write (a replica) never deletes; once promoted, its sweep pages through the store for what it never noted', async () => {
    // The vault's own service must not sweep on its timer meanwhile: this test is about `node`.
    clearInterval((vault.access.tokens as unknown as { sweepTimer?: NodeJS.Timeout }).sweepTimer);
    let primary = false;
    const node = new TokenService(vault.barrier, vault.seal, {
      now: () => clock,
      writable: () => primary,
      sweepIntervalMs: 0,
    });
    await vault.seal.seal();
    await vault.seal.autoUnsealNow();
    clearInterval((vault.access.tokens as unknown as { sweepTimer?: NodeJS.Timeout }).sweepTimer);
    const t = await mint(vault, vault.auth, { identity: 'svc:x', ttl: 60 });
    assert.equal((await revoke(vault, bearer(t))).status, 204);
    clock += (60 + SWEEP_GRACE_SECONDS + 1) * 1000;
    assert.equal(await node.sweepStore(), 0);
    assert.equal((await keysUnder(vault.store, 'auth/revoked/')).length, 1, 'a replica deletes nothing');
    primary = true;
    assert.equal(await node.sweepStore(), 2, 'the edge and the revocation, found by paging through the store');
    assert.deepEqual(await keysUnder(vault.store, 'auth/revoked/'), []);
    assert.deepEqual(await keysUnder(vault.store, 'auth/children/'), []);
  });
});

describe('token state: a replica applies shipped token changes incrementally', () => {
  let vault: TestVault;
  const start = Math.floor(Date.now() / 1000) * 1000;
  let clock = start;
  before(async () => {
    vault = await openVault({ ...kek, now: () => clock });
    const put = async (path: string, body: object) =>
      assert.equal((await request(vault.app).put(path).set(vault.auth).send(body)).status, 200, path);
    await put('/v1/policies/token-maker', { rules: [{ path: 'sys/auth/token/create', capabilities: ['admin'] }] });
  });
  after(() => vault.cleanup());

  it("mint, renew, revoke and the sweep's deletes reach the replica without a scan of the token state; `*` and signing keys still reload", async () => {
    // Some history: the apply cost must not depend on it.
    for (let i = 0; i < 40; i++) {
      const t = await mint(vault, vault.auth, { identity: `svc:history-${i}`, ttl: 600 });
      if (i % 2 === 0) assert.equal((await revoke(vault, bearer(t))).status, 204);
    }
    const replica = new TokenService(vault.barrier, vault.seal, { now: () => clock, writable: () => false });
    await vault.seal.seal();
    await vault.seal.autoUnsealNow();

    const scans: string[] = [];
    const store = vault.store as Store & { scanPrefix: Store['scanPrefix'] };
    const scanPrefix = store.scanPrefix.bind(store);
    store.scanPrefix = (prefix, ...rest) => {
      scans.push(prefix);
      return scanPrefix(prefix, ...rest);
    };
    const stateScans = () =>
      scans.filter((p) =>
        ['auth/revoked/', 'auth/renewed/', 'auth/children/'].some((s) => p.startsWith(s) || s.startsWith(p)),
      );
    let seq = vault.store.lastSeq;
    const ship = async () => {
      const keys = await changedSince(vault.store, seq);
      seq = vault.store.lastSeq;
      scans.length = 0;
      await replica.applyChanged(keys);
      return keys;
    };
    try {
      clock = start;
      const maker = await mint(vault, vault.auth, { identity: 'svc:maker', policies: ['token-maker'], ttl: '3h' });
      const parent = await mint(vault, bearer(maker), {
        identity: 'svc:p',
        policies: ['token-maker'],
        ttl: '1h',
        max_ttl: '2h',
      });
      const child = await mint(vault, bearer(parent), { identity: 'svc:q', ttl: '1h' });
      assert.ok((await ship()).some((k) => k.startsWith('auth/children/')));
      assert.deepEqual(stateScans(), [], 'a mint is applied without a scan');
      assert.equal(
        replica.depthOf({ parent: jtiOf(child) }),
        4,
        'the replica knows the tree: child → parent → maker → root',
      );
      assert.ok(await replica.verify(child));

      clock = start + 1_000_000;
      assert.equal((await renew(vault, parent)).status, 200);
      await ship();
      assert.deepEqual(stateScans(), [], 'a renewal is applied without a scan');
      clock = start + 3_700_000;
      assert.ok(await replica.verify(parent), 'the replica honours the renewal');

      clock = start + 2_000_000;
      assert.equal((await revoke(vault, bearer(parent))).status, 204);
      await ship();
      assert.deepEqual(stateScans(), [], 'a revocation is applied without a scan');
      assert.equal(await replica.verify(parent), undefined);
      assert.equal(await replica.verify(child), undefined, 'the child dies on the replica too');
      assert.ok(await replica.verify(maker));

      // The sweep's deletes: the replica drops what the primary deleted.
      clock = start + (2 * 3600 + SWEEP_GRACE_SECONDS + 1) * 1000;
      await vault.access.tokens.sweepStore();
      const deleted = await ship();
      assert.ok(deleted.includes(`auth/revoked/${jtiOf(parent)}`), 'the deletes are shipped');
      assert.deepEqual(stateScans(), []);
      assert.equal(replica.isRevoked(jtiOf(parent)), false);
      assert.equal(replica.depthOf({ parent: jtiOf(child) }), 1, 'the expired edges are gone on the replica');

      // A signing-key change re-reads the signing keys only.
      clock = start + 2 * 3600 * 1000;
      await vault.access.tokens.rotateSigningKey(false);
      const fresh = await mint(vault, vault.auth, { identity: 'svc:fresh', ttl: 600 });
      await ship();
      assert.deepEqual(stateScans(), [], 'a signing-key change does not rescan the token state');
      assert.ok(scans.includes('auth/signing/'));
      assert.ok(await replica.verify(fresh), 'the replica verifies a token signed by the new key');

      // After a snapshot load (`*`) everything is read again.
      await replica.applyChanged(['*']);
      assert.ok(stateScans().length > 0, 'control: a full reload scans');
      assert.ok(await replica.verify(fresh));
    } finally {
      store.scanPrefix = scanPrefix;
    }
  });
});

describe('token state: token_max_children (J13)', () => {
  let vault: TestVault;
  let access: AuthService;
  const start = Math.floor(Date.now() / 1000) * 1000;
  let clock = start;
  const req = (identity: string, ttl: number, more: object = {}) => ({
    identity,
    groups: [],
    policies: [],
    ttl,
    orphan: false,
    ...more,
  });
  const refused = (e: unknown) =>
    isCofferError(e, 'forbidden') && /token_max_children/.test(e.message) && /3 live/.test(e.message);
  before(async () => {
    vault = await openVault({ ...kek, now: () => clock });
    access = new AuthService(
      new TokenService(vault.barrier, vault.seal, { now: () => clock, maxChildren: 3 }),
      vault.access.directory,
    );
    await vault.seal.seal();
    await vault.seal.autoUnsealNow();
  });
  after(() => vault.cleanup());

  it('the config key defaults to 1,000', async () => {
    assert.equal((await loadConfig({ env: {} })).token_max_children, 1000);
    assert.equal((await loadConfig({ env: { COFFER_SERVER_TOKEN_MAX_CHILDREN: '5' } })).token_max_children, 5);
  });

  it('refuses the N+1th live child with 403 naming the limit; a revoked or expired child frees a place; orphans and other minters are not counted', async () => {
    clock = start;
    const root = (await access.authenticate(vault.rootToken))!;
    const { token: minterToken } = await access.mint(root, req('svc:minter', 7200));
    const minter = (await access.authenticate(minterToken))!;
    const first = await access.mint(minter, req('svc:c1', 60));
    const second = await access.mint(minter, req('svc:c2', 600));
    await access.mint(minter, req('svc:c3', 600));
    await assert.rejects(access.mint(minter, req('svc:c4', 600)), refused);

    await access.tokens.revoke(second.claims.jti, second.claims.exp);
    await access.mint(minter, req('svc:c4', 600));
    await assert.rejects(access.mint(minter, req('svc:c5', 600)), refused);

    clock = start + 60_000; // c1 reaches its hard exp
    assert.equal(await access.tokens.verify(first.token), undefined);
    await access.mint(minter, req('svc:c5', 600));
    await assert.rejects(access.mint(minter, req('svc:c6', 600)), refused);

    await access.mint(minter, req('svc:orphan', 600, { orphan: true }));
    const { token: otherToken } = await access.mint(root, req('svc:other', 7200));
    await access.mint((await access.authenticate(otherToken))!, req('svc:o1', 600));
  });

  it('the root token is counted too', async () => {
    const root = (await access.authenticate(vault.rootToken))!;
    // Root minted svc:minter and svc:other above.
    await access.mint(root, req('svc:r3', 600));
    await assert.rejects(access.mint(root, req('svc:r4', 600)), refused);
  });

  it('concurrent mints never pass the limit, and the limit holds after a restart', async () => {
    const minterToken = (
      await access.tokens.issue({
        sub: 'svc:burst',
        groups: [],
        ttlSeconds: 3600,
        maxTtlSeconds: 3600,
        method: 'token',
      })
    ).token;
    const minter: Identity = (await access.authenticate(minterToken))!;
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => access.mint(minter, req(`svc:burst-${i}`, 600))),
    );
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
    assert.ok(results.every((r) => r.status === 'fulfilled' || refused(r.reason)));
    await vault.seal.seal();
    await vault.seal.autoUnsealNow();
    await assert.rejects(access.mint((await access.authenticate(minterToken))!, req('svc:burst-after', 600)), refused);
  });
});

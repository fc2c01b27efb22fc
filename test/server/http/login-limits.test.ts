import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rm } from 'node:fs/promises';
import { SignJWT, exportJWK } from 'jose';
import { configSchema, type ServerConfig } from '../../../server/config.js';
import { canonicalAddress } from '../../../server/http/client-address.js';
import { addressKey } from '../../../server/http/login-limits.js';
import { FailureLimiter } from '../../../server/http/rate-limit.js';
import { startServer, type RunningServer } from '../../../server/main.js';
import { Coffer } from '../../../sdk/client.js';
import type { CofferError } from '../../../sdk/errors.js';
import { openVault, silentLog, tempDir, type TestVault } from '../../helpers.js';
import { keyPair, type TestKeyPair } from '../../key-pairs.js';

/**
 * Login limits (API.md "Login limits"; SECURITY-CASES J1, J2, D12, B18) against real servers on
 * 127.0.0.1: successes are never counted, signed-credential logins are limited only on failures
 * per address, userpass also per user, and the client address behind a proxy comes from
 * X-Forwarded-For only when the peer is a trusted proxy.
 */

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'cli', 'coffer.cjs');

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: any;
}

/** One request over node:http: headers exactly as given (a repeated header is an array). */
function call(
  url: string,
  method: string,
  path: string,
  options: { body?: unknown; raw?: string; headers?: Record<string, string | string[]>; agent?: Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const text = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    const headers: Record<string, string | string[]> = {
      ...(text !== undefined
        ? { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)) }
        : {}),
      ...options.headers,
    };
    const req = httpRequest(new URL(path, url), { method, headers, agent: options.agent ?? keepAlive }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString();
        let body: unknown = raw;
        try {
          body = raw ? JSON.parse(raw) : undefined;
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(text);
  });
}
const keepAlive = new Agent({ keepAlive: true, maxSockets: 32 });
/** For bursts: every request of a burst on its own connection, all in flight at once. */
const burst = new Agent({ keepAlive: false, maxSockets: Infinity });

/** Runs `n` calls of `fn`, `width` at a time; returns the statuses in order. */
async function fanOut(n: number, width: number, fn: (i: number) => Promise<Reply>): Promise<number[]> {
  const statuses: number[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        statuses[i] = (await fn(i)).status;
      }
    }),
  );
  return statuses;
}

const countOf = (statuses: number[]) =>
  statuses.reduce<Record<number, number>>((m, s) => ({ ...m, [s]: (m[s] ?? 0) + 1 }), {});

/** A real server (startServer, dev mode) on 127.0.0.1 port 0, configured like an operator would. */
async function server(
  config: Partial<ServerConfig> = {},
): Promise<{ url: string; auth: Record<string, string>; running: RunningServer; stop(): Promise<void> }> {
  const dir = await tempDir('coffer-limits-');
  const running = await startServer(
    configSchema.parse({
      dev: true,
      listen: '127.0.0.1:0',
      data_dir: dir,
      log_level: 'silent',
      audit_files: [join(dir, 'audit.log')],
      ...config,
    }),
    { log: silentLog, env: {} },
  );
  return {
    url: running.url,
    auth: { Authorization: `Bearer ${running.rootToken}` },
    running,
    async stop() {
      await running.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** An approle role and one secret_id (unlimited uses) on `s`. */
async function appRole(
  s: { url: string; auth: Record<string, string> },
  name: string,
  body: object = {},
): Promise<{ role_id: string; secret_id: string }> {
  const put = await call(s.url, 'PUT', `/v1/auth/approle/roles/${name}`, { body, headers: s.auth });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const sid = await call(s.url, 'POST', `/v1/auth/approle/roles/${name}/secret-id`, { body: {}, headers: s.auth });
  assert.equal(sid.status, 200, JSON.stringify(sid.body));
  return { role_id: put.body.role_id, secret_id: sid.body.secret_id };
}

/** A CI identity provider on loopback: JWKS over HTTP (as test/server/auth/jwt-login.test.ts). */
class Issuer {
  private readonly rsa = keyPair('rsa', { modulusLength: 2048 });
  private forger: TestKeyPair | undefined;
  private server!: Server;
  url = '';

  /** `jwksDelayMs`: how long the JWKS endpoint takes to answer. */
  constructor(private readonly jwksDelayMs = 0) {}

  async start(): Promise<this> {
    const keys = [{ ...(await exportJWK(this.rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }];
    this.server = createServer((req, res) => {
      if (req.url === '/jwks')
        setTimeout(
          () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys })),
          this.jwksDelayMs,
        );
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }

  /** A CI token; `forged`: signed by another key under the same kid (the signature check fails). */
  sign(forged = false): Promise<string> {
    const key = forged ? (this.forger ??= keyPair('rsa', { modulusLength: 2048 })).privateKey : this.rsa.privateKey;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      iss: this.url,
      aud: 'coffer',
      sub: 'repo:acme/api:ref:refs/heads/main',
      repository: 'acme/api',
      iat: now,
      exp: now + 300,
      jti: crypto.randomUUID(),
    })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1', typ: 'JWT' })
      .sign(key);
  }
}

describe('login limits: a CI fan-out logs in (default limits, API.md "Login limits")', function () {
  this.timeout(120_000);
  let s: Awaited<ReturnType<typeof server>>;
  let idp: Issuer;
  let approle: { role_id: string; secret_id: string };
  const password = 'correct horse battery';
  const jwtLogin = async (jwt: string) => call(s.url, 'POST', '/v1/auth/jwt/login', { body: { role: 'ci', jwt } });
  const userLogin = (username: string, pw: string) =>
    call(s.url, 'POST', '/v1/auth/userpass/login', { body: { username, password: pw } });

  before(async () => {
    idp = await new Issuer().start();
    s = await server(); // login_failures_per_minute 60, login_user_failures_per_minute 10
    const role = await call(s.url, 'PUT', '/v1/auth/jwt/roles/ci', {
      body: {
        issuer: idp.url,
        jwks_url: `${idp.url}/jwks`,
        bound_audiences: ['coffer'],
        bound_claims: { repository: 'acme/api' },
        groups: [],
      },
      headers: s.auth,
    });
    assert.equal(role.status, 200, JSON.stringify(role.body));
    approle = await appRole(s, 'builders');
    for (const name of ['alice', 'bob', 'carol']) {
      assert.equal(
        (await call(s.url, 'PUT', `/v1/auth/userpass/users/${name}`, { body: { password }, headers: s.auth })).status,
        200,
      );
    }
  });
  after(async () => {
    await s?.stop();
    await idp?.close();
  });

  it('120 JWT logins for one role from one address within a minute all succeed', async () => {
    const jwts = await Promise.all(Array.from({ length: 120 }, () => idp.sign()));
    const t = Date.now();
    const statuses = await fanOut(120, 20, (i) => jwtLogin(jwts[i]!));
    assert.deepEqual(countOf(statuses), { 200: 120 });
    assert.ok(Date.now() - t < 60_000);
  });

  it('25 garbage logins naming the role before a valid one do not refuse it (no per-role counter)', async () => {
    const garbage = [
      () => jwtLogin('garbage'),
      () => jwtLogin('eyJhbGciOiJub25lIn0.e30.'),
      () => call(s.url, 'POST', '/v1/auth/jwt/login', { raw: '{"role":"ci","jwt":' }),
      () => call(s.url, 'POST', '/v1/auth/jwt/login', { body: { role: 'ci', jwt: 'x', extra: 1 } }),
      () =>
        call(s.url, 'POST', '/v1/auth/approle/login', {
          body: { role_id: approle.role_id, secret_id: 'cof_sid_wrong' },
        }),
    ];
    for (let i = 0; i < 25; i++) {
      const res = await garbage[i % garbage.length]!();
      assert.ok(res.status === 400 || res.status === 401, `garbage ${i}: ${res.status} ${JSON.stringify(res.body)}`);
    }
    assert.equal((await jwtLogin(await idp.sign())).status, 200);
    assert.equal((await call(s.url, 'POST', '/v1/auth/approle/login', { body: approle })).status, 200);
  });

  it('1,000 successful approle logins in a minute from one address all pass', async () => {
    const t = Date.now();
    const statuses = await fanOut(1_000, 32, () => call(s.url, 'POST', '/v1/auth/approle/login', { body: approle }));
    assert.deepEqual(countOf(statuses), { 200: 1_000 });
    assert.ok(Date.now() - t < 60_000, `took ${Date.now() - t} ms`);
  });

  it('15 wrong passwords for one user lock that user (429 + Retry-After) and never another', async () => {
    const statuses: number[] = [];
    let limited: Reply | undefined;
    for (let i = 0; i < 15; i++) {
      const res = await userLogin('alice', `wrong guess ${i}`);
      statuses.push(res.status);
      if (res.status === 429) limited ??= res;
    }
    assert.deepEqual(statuses, [...Array(10).fill(401), ...Array(5).fill(429)]);
    assert.equal(limited!.body.error.code, 'rate_limited');
    assert.match(String(limited!.headers['retry-after']), /^[1-9][0-9]?$/);
    assert.ok(Number(limited!.headers['retry-after']) <= 60);
    assert.equal(
      (await userLogin('alice', password)).status,
      429,
      'a locked user is locked for the right password too',
    );
    const bob = await userLogin('bob', password);
    assert.equal(bob.status, 200, JSON.stringify(bob.body));
  });

  it("J2: case, whitespace and Unicode variants of the name share the locked user's counter", async () => {
    for (const variant of ['ALICE', 'Alice', ' alice', 'alice ', '\uff41\uff4c\uff49\uff43\uff45' /* fullwidth */]) {
      assert.equal((await userLogin(variant, 'another guess')).status, 429, JSON.stringify(variant));
    }
  });

  it("a user's 11th (and 12th) successful login in a minute succeeds", async () => {
    for (let i = 0; i < 12; i++) assert.equal((await userLogin('bob', password)).status, 200, `login ${i + 1}`);
  });

  it('parallel wrong passwords for one user get no more than the budget checked (held before the hash)', async () => {
    const statuses = await Promise.all(Array.from({ length: 30 }, (_, i) => userLogin('carol', `parallel guess ${i}`)));
    const counts = countOf(statuses.map((r) => r.status));
    assert.ok((counts[401] ?? 0) <= 10, `checked ${counts[401]} passwords`);
    assert.equal((counts[401] ?? 0) + (counts[429] ?? 0), 30, JSON.stringify(counts));
    // The locked user is refused without a password hash: far faster than a checked guess.
    const time = async (name: string) => {
      const t = performance.now();
      await userLogin(name, 'timed guess');
      return performance.now() - t;
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const refused: number[] = [];
    for (let i = 0; i < 5; i++) refused.push(await time('carol'));
    const hashed: number[] = [];
    for (let i = 0; i < 3; i++) hashed.push(await time(`nobody${i}`)); // unknown users hash a decoy
    assert.ok(
      median(refused) * 2 < median(hashed),
      `refused ${median(refused).toFixed(1)} ms, hashed ${median(hashed).toFixed(1)} ms`,
    );
  });
});

describe('login limits: the per-address failure budget (config login_failures_per_minute)', function () {
  this.timeout(60_000);
  let s: Awaited<ReturnType<typeof server>>;
  let approle: { role_id: string; secret_id: string };
  before(async () => {
    s = await server({ login_failures_per_minute: 5 });
    approle = await appRole(s, 'builders');
  });
  after(() => s?.stop());

  it('counts failures only, then answers 429 rate_limited with Retry-After, before the body is read or parsed', async () => {
    // Successes are not counted: 30 logins, then still the whole failure budget.
    assert.deepEqual(
      countOf(await fanOut(30, 10, () => call(s.url, 'POST', '/v1/auth/approle/login', { body: approle }))),
      { 200: 30 },
    );
    for (let i = 0; i < 5; i++) {
      assert.equal(
        (await call(s.url, 'POST', '/v1/auth/approle/login', { body: { ...approle, secret_id: 'cof_sid_wrong' } }))
          .status,
        401,
      );
    }
    const limited = await call(s.url, 'POST', '/v1/auth/jwt/login', { body: { role: 'ci', jwt: 'x' } });
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, 'rate_limited');
    assert.match(String(limited.headers['retry-after']), /^[1-9][0-9]?$/);
    assert.ok(Number(limited.headers['retry-after']) <= 60);
    // Refused before parsing: invalid JSON gets 429, not 400.
    assert.equal((await call(s.url, 'POST', '/v1/auth/userpass/login', { raw: '{not json' })).status, 429);
    // Refused before reading: a body that never arrives still gets its answer.
    const early = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        new URL('/v1/auth/approle/login', s.url),
        { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Length': '100000' } },
        (res) => {
          resolve(res.statusCode ?? 0);
          req.destroy();
        },
      );
      req.on('error', () => undefined);
      req.write('{"role_id":');
      setTimeout(() => reject(new Error('no answer before the body was complete')), 5_000).unref();
    });
    assert.equal(early, 429);
    assert.equal(
      (await call(s.url, 'GET', '/v1/auth/token/self', { headers: s.auth })).status,
      200,
      'token-authenticated routes are not limited',
    );
  });
});

describe('client address behind a proxy (config trusted_proxies; D12, B18)', function () {
  this.timeout(60_000);
  let proxied: Awaited<ReturnType<typeof server>>;
  let direct: Awaited<ReturnType<typeof server>>;
  let bound: { proxied: { role_id: string; secret_id: string }; direct: { role_id: string; secret_id: string } };
  const login = (s: { url: string }, body: object, xff?: string | string[]) =>
    call(s.url, 'POST', '/v1/auth/approle/login', {
      body,
      ...(xff !== undefined ? { headers: { 'X-Forwarded-For': xff } } : {}),
    });

  before(async () => {
    // This test's requests come from 127.0.0.1: a proxy for one server, a plain client for the other.
    proxied = await server({ trusted_proxies: ['127.0.0.0/8', '10.9.0.0/16'], login_failures_per_minute: 3 });
    direct = await server({ login_failures_per_minute: 3 });
    const cidr = { bound_cidrs: ['203.0.113.0/24'] };
    bound = { proxied: await appRole(proxied, 'office', cidr), direct: await appRole(direct, 'office', cidr) };
  });
  after(async () => {
    await proxied?.stop();
    await direct?.stop();
  });

  it('from a trusted proxy, the client is the rightmost untrusted X-Forwarded-For hop (CIDR binding and budget follow it)', async () => {
    assert.equal((await login(proxied, bound.proxied, '203.0.113.7')).status, 200);
    assert.equal(
      (await login(proxied, bound.proxied, '198.51.100.1, 203.0.113.7')).status,
      200,
      'hops left of the client prove nothing',
    );
    assert.equal(
      (await login(proxied, bound.proxied, '203.0.113.7, 10.9.1.1')).status,
      200,
      'trusted hops are skipped',
    );
    assert.equal(
      (await login(proxied, bound.proxied, '203.0.113.7,198.51.100.1')).status,
      401,
      'the rightmost untrusted hop decides',
    );
    assert.equal(
      (await login(proxied, bound.proxied)).status,
      401,
      'without the header the client is the proxy itself',
    );
    // The failure budget is per forwarded client: one client used it up, another is not refused.
    for (let i = 0; i < 3; i++)
      assert.equal(
        (await login(proxied, { ...bound.proxied, secret_id: 'cof_sid_wrong' }, '198.51.100.9')).status,
        401,
      );
    assert.equal((await login(proxied, bound.proxied, '198.51.100.9')).status, 429);
    assert.equal(
      (await login(proxied, bound.proxied, '::ffff:198.51.100.9')).status,
      429,
      'an IPv4-mapped spelling is the same client',
    );
    assert.equal((await login(proxied, bound.proxied, '203.0.113.8')).status, 200);
    // An IPv6 client holds a whole /64: its addresses share one budget.
    for (let i = 0; i < 3; i++)
      assert.equal((await login(proxied, bound.proxied, `2001:db8:1:2::${i + 1}`)).status, 401);
    assert.equal((await login(proxied, bound.proxied, '2001:DB8:1:2:ffff:0:0:9')).status, 429);
    assert.equal(
      (await login(proxied, { ...bound.proxied, secret_id: 'cof_sid_wrong' }, '2001:db8:1:3::1')).status,
      401,
      'the next /64 is another client',
    );
  });

  it('refuses an unparsable or repeated X-Forwarded-For from a trusted proxy with 400 (never fails open)', async () => {
    for (const xff of [
      'a',
      '',
      ' , ',
      '203.0.113.7:443',
      '[2001:db8::1]',
      '203.0.113.7,,198.51.100.1',
      'fe80::1%eth0',
      'unknown',
      '203.0.113.7 198.51.100.1',
      ['203.0.113.7', '203.0.113.8'],
    ]) {
      const res = await login(proxied, bound.proxied, xff);
      assert.equal(res.status, 400, `${JSON.stringify(xff)}: ${res.status}`);
      assert.equal(res.body.error.code, 'invalid_request');
    }
  });

  it('ignores X-Forwarded-For (and Forwarded) from a peer that is not a trusted proxy (B18)', async () => {
    assert.equal(
      (await login(direct, bound.direct, '203.0.113.7')).status,
      401,
      'the CIDR is checked against the real peer',
    );
    assert.equal(
      (
        await call(direct.url, 'POST', '/v1/auth/approle/login', {
          body: bound.direct,
          headers: { Forwarded: 'for=203.0.113.7' },
        })
      ).status,
      401,
    );
    assert.equal(
      (await login(direct, bound.direct, 'a')).status,
      401,
      'an unparsable header from a client is not even read',
    );
    // Those were the peer's three failures: a new X-Forwarded-For does not buy a new budget.
    assert.equal((await login(direct, bound.direct, '198.51.100.200')).status, 429);
  });

  it('refuses to start with a trusted_proxies entry that is not an address or CIDR', async () => {
    for (const entry of ['10.0.0.0/33', 'proxy.internal', '10.0.0.0/08', '10.0.0.1/8/8']) {
      await assert.rejects(
        server({ trusted_proxies: [entry] }),
        (e: Error) => e.message.includes('trusted_proxies') && e.message.includes(entry),
        entry,
      );
    }
  });
});

describe('login limits: parallel attempts (security review: a burst gets no more than the budget, successes are never refused)', function () {
  this.timeout(120_000);
  const password = 'correct horse battery';

  it('150 parallel wrong passwords for 150 user names from one address (budget 5): at most 5 passwords checked, the rest 429', async () => {
    const s = await server({ login_failures_per_minute: 5 });
    try {
      const replies = await Promise.all(
        Array.from({ length: 150 }, (_, i) =>
          call(s.url, 'POST', '/v1/auth/userpass/login', {
            body: { username: `guess${i}`, password: 'wrong password' },
            agent: burst,
          }),
        ),
      );
      const counts = countOf(replies.map((r) => r.status));
      assert.ok(
        (counts[401] ?? 0) <= 5,
        `${counts[401]} passwords checked with a budget of 5: ${JSON.stringify(counts)}`,
      );
      assert.equal((counts[401] ?? 0) + (counts[429] ?? 0), 150, JSON.stringify(counts));
      for (const r of replies.filter((r) => r.status === 429)) {
        assert.equal(r.body.error.code, 'rate_limited');
        assert.match(String(r.headers['retry-after']), /^[1-9][0-9]?$/);
      }
    } finally {
      await s.stop();
    }
  });

  it('100 parallel forged JWTs from one address (budget 5): at most 5 signatures checked, the rest 429', async () => {
    const idp = await new Issuer(300).start(); // a slow JWKS endpoint: the burst is all in flight when it answers
    const s = await server({ login_failures_per_minute: 5 });
    try {
      const role = await call(s.url, 'PUT', '/v1/auth/jwt/roles/ci', {
        body: {
          issuer: idp.url,
          jwks_url: `${idp.url}/jwks`,
          bound_audiences: ['coffer'],
          bound_claims: { repository: 'acme/api' },
          groups: [],
        },
        headers: s.auth,
      });
      assert.equal(role.status, 200, JSON.stringify(role.body));
      const forged = await Promise.all(Array.from({ length: 100 }, () => idp.sign(true)));
      const replies = await Promise.all(
        forged.map((jwt) => call(s.url, 'POST', '/v1/auth/jwt/login', { body: { role: 'ci', jwt }, agent: burst })),
      );
      const counts = countOf(replies.map((r) => r.status));
      assert.ok(
        (counts[401] ?? 0) <= 5,
        `${counts[401]} forged JWTs checked with a budget of 5: ${JSON.stringify(counts)}`,
      );
      assert.equal((counts[401] ?? 0) + (counts[429] ?? 0), 100, JSON.stringify(counts));
    } finally {
      await s.stop();
      await idp.close();
    }
  });

  it('200 parallel JWT logins from one address all pass with a failure budget of 5, even while the JWKS is slow', async () => {
    const idp = await new Issuer(300).start();
    const s = await server({ login_failures_per_minute: 5 });
    try {
      const role = await call(s.url, 'PUT', '/v1/auth/jwt/roles/ci', {
        body: {
          issuer: idp.url,
          jwks_url: `${idp.url}/jwks`,
          bound_audiences: ['coffer'],
          bound_claims: { repository: 'acme/api' },
          groups: [],
        },
        headers: s.auth,
      });
      assert.equal(role.status, 200, JSON.stringify(role.body));
      const jwts = await Promise.all(Array.from({ length: 200 }, () => idp.sign()));
      const replies = await Promise.all(
        jwts.map((jwt) => call(s.url, 'POST', '/v1/auth/jwt/login', { body: { role: 'ci', jwt }, agent: burst })),
      );
      assert.deepEqual(countOf(replies.map((r) => r.status)), { 200: 200 });
    } finally {
      await s.stop();
      await idp.close();
    }
  });

  it('40 parallel correct-password logins for one user all succeed (successes are never counted)', async () => {
    const s = await server(); // defaults: 10 failures per user, 60 per address
    try {
      assert.equal(
        (await call(s.url, 'PUT', '/v1/auth/userpass/users/ci-bot', { body: { password }, headers: s.auth })).status,
        200,
      );
      const replies = await Promise.all(
        Array.from({ length: 40 }, () =>
          call(s.url, 'POST', '/v1/auth/userpass/login', { body: { username: 'ci-bot', password }, agent: burst }),
        ),
      );
      assert.deepEqual(countOf(replies.map((r) => r.status)), { 200: 40 });
      // And the user's whole failure budget is still there.
      for (let i = 0; i < 10; i++)
        assert.equal(
          (
            await call(s.url, 'POST', '/v1/auth/userpass/login', {
              body: { username: 'ci-bot', password: `wrong ${i}` },
            })
          ).status,
          401,
          `failure ${i + 1}`,
        );
      assert.equal(
        (await call(s.url, 'POST', '/v1/auth/userpass/login', { body: { username: 'ci-bot', password } })).status,
        429,
      );
    } finally {
      await s.stop();
    }
  });

  it('200 parallel successful approle logins from one address pass, even with a failure budget of 5 (no cap on concurrent successes)', async () => {
    const s = await server({ login_failures_per_minute: 5 });
    try {
      const role = await appRole(s, 'matrix');
      const replies = await Promise.all(
        Array.from({ length: 200 }, () => call(s.url, 'POST', '/v1/auth/approle/login', { body: role, agent: burst })),
      );
      assert.deepEqual(countOf(replies.map((r) => r.status)), { 200: 200 });
    } finally {
      await s.stop();
    }
  });

  it('a locked user is not unlocked by filling the per-user map with other names (no live window is evicted)', () => {
    const users = new FailureLimiter({ max: 3, windowMs: 60_000, maxKeys: 10 });
    for (let i = 0; i < 3; i++) users.fail('alice');
    assert.throws(() => users.check('alice'), /too many attempts/);
    for (let i = 0; i < 50; i++) users.fail(`filler${i}`);
    assert.throws(() => users.check('alice'), /too many attempts/, 'alice is still locked');
  });
});

describe('login limits: address keys', () => {
  it('one spelling per address, one key per IPv6 /64', () => {
    assert.equal(canonicalAddress('::ffff:10.0.0.1'), '10.0.0.1');
    assert.equal(canonicalAddress('2001:0DB8:0:0::1'), '2001:db8::1');
    for (const bad of ['', 'a', '10.0.0.1:80', '[::1]', 'fe80::1%eth0', '010.0.0.1', ' 10.0.0.1'])
      assert.equal(canonicalAddress(bad), undefined, bad);
    assert.equal(addressKey('10.0.0.1'), '10.0.0.1');
    assert.equal(addressKey('2001:db8:1:2::1'), '2001:0db8:0001:0002::/64');
    assert.equal(addressKey('2001:db8:1:2:ffff::9'), '2001:0db8:0001:0002::/64');
    assert.equal(addressKey('::1'), '0000:0000:0000:0000::/64');
    assert.equal(addressKey('fe80::'), 'fe80:0000:0000:0000::/64');
  });
});

describe('SDK and CLI: a login refused by a limit is retried once after a short Retry-After', function () {
  this.timeout(60_000);
  let vault: TestVault;
  let http: Server;
  let url = '';
  let logins = 0;
  let approle: { role_id: string; secret_id: string };
  const password = 'correct horse battery';

  /** A failure budget of 1 in a 1.5 s window: one failure makes the next login wait 1-2 s. */
  before(async () => {
    vault = await openVault({ loginLimits: { failuresPerMinute: 1, userFailuresPerMinute: 10, windowMs: 1_500 } });
    http = createServer((req, res) => {
      if (req.url?.endsWith('/login')) logins++;
      vault.app(req, res);
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    assert.equal(
      (await call(url, 'PUT', '/v1/auth/userpass/users/alice', { body: { password }, headers: vault.auth })).status,
      200,
    );
    approle = await appRole({ url, auth: vault.auth }, 'builders');
  });
  after(async () => {
    await new Promise<void>((r) => http.close(() => r()));
    await vault?.cleanup();
  });

  const useUpBudget = async () => {
    await new Promise((r) => setTimeout(r, 1_600)); // a fresh window
    assert.equal(
      (await call(url, 'POST', '/v1/auth/userpass/login', { body: { username: 'alice', password: 'wrong password' } }))
        .status,
      401,
    );
    const limited = await call(url, 'POST', '/v1/auth/userpass/login', { body: { username: 'alice', password } });
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers['retry-after']) <= 2);
    logins = 0;
  };

  it('the SDK waits out Retry-After and logs in on its second attempt', async () => {
    await useUpBudget();
    const waits: number[] = [];
    const client = new Coffer({ addr: url, sleep: (ms) => (waits.push(ms), new Promise((r) => setTimeout(r, ms))) });
    const result = await client.loginUserpass('alice', password);
    assert.equal(result.identity, 'user:alice');
    assert.equal(logins, 2, 'one refused attempt, one retry');
    assert.equal(waits.length, 1);
    assert.ok(waits[0]! >= 1_000 && waits[0]! <= 2_250, `waited ${waits[0]} ms`);
    assert.equal((await client.tokenSelf()).identity, 'user:alice');
  });

  it('the CLI (through the SDK) does the same for `coffer login approle`', async () => {
    await useUpBudget();
    const dir = await tempDir('coffer-limits-cli-');
    try {
      const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(
          process.execPath,
          [CLI, 'login', 'approle', '--role', approle.role_id, '--no-store', '--json'],
          {
            env: { PATH: process.env.PATH, HOME: dir, COFFER_ADDR: url, COFFER_SECRET_ID: approle.secret_id },
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c));
        child.stderr.on('data', (c: Buffer) => (stderr += c));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
      assert.equal(out.code, 0, out.stderr);
      assert.equal(JSON.parse(out.stdout).identity, 'approle:builders');
      assert.equal(logins, 2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('retries only once, and not at all when Retry-After is long', async () => {
    let seen = 0;
    let retryAfter = '0';
    const stub = createServer((_req, res) => {
      seen++;
      res
        .writeHead(429, { 'content-type': 'application/json', 'retry-after': retryAfter })
        .end('{"error":{"code":"rate_limited","message":"too many attempts: wait and retry","request_id":"r"}}');
    });
    await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
    try {
      const client = new Coffer({
        addr: `http://127.0.0.1:${(stub.address() as AddressInfo).port}`,
        sleep: async () => undefined,
      });
      for (const attempt of [
        () => client.loginJwt('ci', 'x.y.z'),
        () => client.loginAppRole('r', 's'),
        () => client.loginUserpass('u', 'p'),
      ]) {
        seen = 0;
        await assert.rejects(attempt(), (e: CofferError) => e.code === 'rate_limited');
        assert.equal(seen, 2, 'one retry after Retry-After: 0');
      }
      for (const long of ['11', '60', 'Wed, 21 Oct 2099 07:28:00 GMT']) {
        retryAfter = long;
        seen = 0;
        await assert.rejects(client.loginJwt('ci', 'x.y.z'), (e: CofferError) => e.code === 'rate_limited');
        assert.equal(seen, 1, `no retry after Retry-After: ${long}`);
      }
    } finally {
      await new Promise<void>((r) => stub.close(() => r()));
    }
  });
});

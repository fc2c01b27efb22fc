import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import type { Response } from 'express';
import { CofferError, type ErrorCode } from '../../../server/errors.js';
import { DEFAULT_LOGIN_LIMITS, LoginLimits, countsAsFailure, userKey } from '../../../server/http/login-limits.js';

/**
 * The login limits module (server/http/login-limits.ts, docs/api.md "Login limits",
 * SECURITY-CASES J1, J2): the user counter key, which failures count, the defaults, and the
 * window, clock and map bounds handed to the two limiters. The limiter itself is in
 * failure-limiter.test.ts, the HTTP behaviour in login-limits.test.ts.
 */

/** A real node:http response (not sent anywhere): LoginLimits only sets Retry-After on it. */
const response = () => new ServerResponse(new IncomingMessage(new Socket())) as unknown as Response;
const limited = (e: unknown) => e instanceof CofferError && e.code === 'rate_limited' && e.status === 429;
const fail =
  (code: ErrorCode = 'unauthenticated') =>
  () =>
    Promise.reject(new CofferError(code, 'login failed'));
const ok = () => Promise.resolve('token');

describe('login limits: the user counter key (J2)', () => {
  it('folds case, surrounding whitespace and compatibility forms onto the name', () => {
    for (const variant of [
      'alice',
      'ALICE',
      'Alice',
      ' alice',
      'alice ',
      '\talice\n',
      ' ALICE ',
      '\uff41\uff4c\uff49\uff43\uff45',
      '\uff21\uff2c\uff29\uff23\uff25',
    ]) {
      assert.equal(userKey(variant), 'alice', JSON.stringify(variant));
    }
    assert.equal(userKey('\ufb01le'), 'file', 'the fi ligature');
    assert.equal(userKey('bob.smith-2_x'), 'bob.smith-2_x');
    assert.notEqual(userKey('alice'), userKey('alic'));
    assert.notEqual(userKey('al ice'), userKey('alice'), 'inner whitespace is part of the name');
  });
});

describe('login limits: which failures count', () => {
  it("counts the client's own failures (4xx) and never a 429, a 5xx or a non-Coffer error", () => {
    for (const code of ['invalid_request', 'unauthenticated', 'forbidden', 'not_found', 'too_large'] as ErrorCode[]) {
      assert.equal(countsAsFailure(new CofferError(code, 'x')), true, code);
    }
    for (const code of ['rate_limited', 'internal', 'sealed', 'unavailable'] as ErrorCode[]) {
      assert.equal(countsAsFailure(new CofferError(code, 'x')), false, code);
    }
    for (const other of [new Error('boom'), undefined, 'unauthenticated', { code: 'unauthenticated', status: 401 }])
      assert.equal(countsAsFailure(other), false);
  });
});

describe('login limits: budgets, window and bounds', () => {
  it('defaults to 60 failures per address and 10 per user per minute', async () => {
    assert.deepEqual(DEFAULT_LOGIN_LIMITS, { failuresPerMinute: 60, userFailuresPerMinute: 10 });
    const limits = new LoginLimits();
    for (let i = 0; i < 10; i++)
      await assert.rejects(limits.attempt('198.51.100.1', response(), fail(), { username: 'dora' }));
    await assert.rejects(
      limits.attempt('198.51.100.1', response(), ok, { username: 'dora' }),
      limited,
      'the 11th attempt for the user',
    );
    for (let i = 0; i < 50; i++)
      await assert.rejects(limits.attempt('198.51.100.1', response(), fail()), (e: unknown) => !limited(e));
    assert.equal(limits.inspect('198.51.100.1').address.failures, 60);
    assert.throws(() => limits.checkAddress('198.51.100.1', response()), limited, 'the address budget is spent');
  });

  it('keeps counting for one window (a minute by default), then the budget is back, on the injected clock', async () => {
    let clock = 1_000_000;
    const limits = new LoginLimits({ failuresPerMinute: 2, userFailuresPerMinute: 5, now: () => clock });
    await assert.rejects(limits.attempt('198.51.100.2', response(), fail()));
    await assert.rejects(limits.attempt('198.51.100.2', response(), fail()));
    const res = response();
    assert.throws(() => limits.checkAddress('198.51.100.2', res), limited);
    assert.equal((res as unknown as ServerResponse).getHeader('retry-after'), '60');
    clock += 59_999;
    assert.throws(
      () => limits.checkAddress('198.51.100.2', response()),
      limited,
      'one millisecond before the window ends',
    );
    clock += 1;
    limits.checkAddress('198.51.100.2', response());
    assert.equal(await limits.attempt('198.51.100.2', response(), ok), 'token');
  });

  it('takes a shorter window from the settings', async () => {
    let clock = 0;
    const limits = new LoginLimits({
      failuresPerMinute: 1,
      userFailuresPerMinute: 1,
      windowMs: 1_000,
      now: () => clock,
    });
    await assert.rejects(limits.attempt('198.51.100.3', response(), fail(), { username: 'erin' }));
    assert.throws(() => limits.checkAddress('198.51.100.3', response()), limited);
    clock = 1_000;
    limits.checkAddress('198.51.100.3', response());
    assert.equal(await limits.attempt('198.51.100.3', response(), ok, { username: 'erin' }), 'token');
  });

  it('bounds both maps by maxKeys: a full user map refuses a new user, a full address map takes a new address', async () => {
    const limits = new LoginLimits({ failuresPerMinute: 10, userFailuresPerMinute: 10, maxKeys: 2 });
    await assert.rejects(limits.attempt('198.51.100.4', response(), fail(), { username: 'u1' }));
    await assert.rejects(limits.attempt('198.51.100.5', response(), fail(), { username: 'u2' }));
    await assert.rejects(
      limits.attempt('198.51.100.6', response(), ok, { username: 'u3' }),
      limited,
      'no live user window is dropped',
    );
    assert.equal(
      limits.inspect('198.51.100.6').address.failures,
      0,
      'the refusal by the user map did not count for the address',
    );
    assert.equal(await limits.attempt('198.51.100.7', response(), ok), 'token', 'a new address evicts an idle one');
    assert.ok(limits.inspect('198.51.100.7').address.keys <= 2);
  });

  it('counts one budget per IPv6 /64 and per IPv4 address', async () => {
    const limits = new LoginLimits({ failuresPerMinute: 2, userFailuresPerMinute: 10 });
    await assert.rejects(limits.attempt('2001:db8:1:2::1', response(), fail()));
    await assert.rejects(limits.attempt('2001:db8:1:2:ffff::9', response(), fail()));
    assert.throws(() => limits.checkAddress('2001:db8:1:2::abcd', response()), limited, 'the same /64');
    limits.checkAddress('2001:db8:1:3::1', response());
    limits.failed('198.51.100.8', new CofferError('invalid_request', 'bad body'));
    limits.checkAddress('198.51.100.80', response());
    limits.failed('198.51.100.8', new CofferError('invalid_request', 'bad body'));
    assert.throws(() => limits.checkAddress('198.51.100.8', response()), limited);
    limits.checkAddress('198.51.100.80', response());
  });

  it("failed() counts a failure that held no slot only if it is the client's", () => {
    const limits = new LoginLimits({ failuresPerMinute: 1, userFailuresPerMinute: 1 });
    limits.failed('198.51.100.9', new CofferError('internal', 'boom'));
    limits.failed('198.51.100.9', new CofferError('rate_limited', 'slow down'));
    limits.failed('198.51.100.9', new Error('not ours'));
    limits.checkAddress('198.51.100.9', response());
    assert.equal(limits.inspect('198.51.100.9').address.failures, 0);
    limits.failed('198.51.100.9', new CofferError('invalid_request', 'bad body'));
    assert.throws(() => limits.checkAddress('198.51.100.9', response()), limited);
  });

  it('a success spends nothing on either budget; a counted failure spends both; inspect shows the user only when asked', async () => {
    const limits = new LoginLimits({ failuresPerMinute: 5, userFailuresPerMinute: 5 });
    for (let i = 0; i < 20; i++)
      assert.equal(await limits.attempt('198.51.100.10', response(), ok, { username: 'fay' }), 'token');
    assert.deepEqual(
      limits.inspect('198.51.100.10', 'fay'),
      { address: { failures: 0, held: 0, waiting: 0, keys: 0 }, user: { failures: 0, held: 0, waiting: 0, keys: 0 } },
      'successes leave no window',
    );
    await assert.rejects(limits.attempt('198.51.100.10', response(), fail('forbidden'), { username: 'FAY ' }));
    assert.equal(limits.inspect('198.51.100.10', 'fay').address.failures, 1);
    assert.equal(limits.inspect('198.51.100.10', 'fay').user!.failures, 1, 'the spelling FAY counted for fay');
    assert.equal('user' in limits.inspect('198.51.100.10'), false);
    await assert.rejects(limits.attempt('198.51.100.10', response(), fail('internal'), { username: 'fay' }));
    assert.equal(limits.inspect('198.51.100.10', 'fay').user!.failures, 1, 'an outage counts for neither');
    assert.equal(limits.inspect('198.51.100.10', 'fay').address.held, 0, 'every slot given back');
  });
});

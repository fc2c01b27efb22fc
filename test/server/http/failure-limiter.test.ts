import assert from 'node:assert/strict';
import type { Response } from 'express';
import { CofferError } from '../../../server/errors.js';
import { LoginLimits } from '../../../server/http/login-limits.js';
import { FailureLimiter, type Admission } from '../../../server/http/rate-limit.js';

/**
 * FailureLimiter as a semaphore (API.md "Login limits"): the slots of a key are its remaining
 * failure budget; successes give theirs back uncounted, failures spend theirs; attempts past
 * the free slots wait, bounded in number and time; the maps stay bounded without dropping a
 * live user window.
 */

/** A stand-in for the express Response: only Retry-After is set on it. */
function fakeRes(): Response & { retryAfter?: string } {
  const res = {
    setHeader: (name: string, value: string) => void (name === 'Retry-After' && (res.retryAfter = value)),
  } as unknown as Response & { retryAfter?: string };
  return res;
}

/** Settles a promise's state without awaiting it forever. */
async function state<T>(p: Promise<T>): Promise<'pending' | 'fulfilled' | 'rejected'> {
  let s: 'pending' | 'fulfilled' | 'rejected' = 'pending';
  p.then(
    () => (s = 'fulfilled'),
    () => (s = 'rejected'),
  );
  await new Promise((r) => setImmediate(r));
  return s;
}

const isLimited = (e: unknown) => e instanceof CofferError && e.code === 'rate_limited';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('FailureLimiter: a semaphore over the remaining failure budget', () => {
  it('a success gives its slot to the next waiter uncounted; a failure spends it; a spent budget refuses every waiter at once', async () => {
    const limiter = new FailureLimiter({ max: 2, windowMs: 60_000 });
    const a = await limiter.acquire('k');
    const b = await limiter.acquire('k');
    const res = [fakeRes(), fakeRes(), fakeRes()];
    const waits = res.map((r) => limiter.acquire('k', r));
    for (const w of waits) assert.equal(await state(w), 'pending');
    assert.deepEqual(limiter.inspect('k'), { failures: 0, held: 2, waiting: 3, keys: 1 });

    a.release(); // a success: the first waiter takes the slot
    const w1 = await waits[0]!;
    assert.deepEqual(limiter.inspect('k'), { failures: 0, held: 2, waiting: 2, keys: 1 });
    b.fail(); // one failure: one slot left, held by w1
    assert.equal(await state(waits[1]!), 'pending');
    assert.deepEqual(limiter.inspect('k'), { failures: 1, held: 1, waiting: 2, keys: 1 });
    w1.fail(); // budget spent: both remaining waiters refused now, with the window's Retry-After
    for (const [i, w] of waits.slice(1).entries()) {
      await assert.rejects(w, isLimited);
      assert.ok(Number(res[i + 1]!.retryAfter) > 50 && Number(res[i + 1]!.retryAfter) <= 60, res[i + 1]!.retryAfter);
    }
    await assert.rejects(limiter.acquire('k'), isLimited);
    assert.throws(() => limiter.check('k'), isLimited);
  });

  it('settling twice counts once', async () => {
    const limiter = new FailureLimiter({ max: 3, windowMs: 60_000 });
    const a = await limiter.acquire('k');
    a.fail();
    a.fail();
    a.release();
    assert.deepEqual(limiter.inspect('k'), { failures: 1, held: 0, waiting: 0, keys: 1 });
  });

  it('any number of sequential or parallel successes pass and leave nothing behind', async () => {
    const limiter = new FailureLimiter({ max: 2, windowMs: 60_000 });
    const run = async () => {
      const slot = await limiter.acquire('ci');
      await sleep(1);
      slot.release();
    };
    await Promise.all(Array.from({ length: 200 }, run));
    assert.deepEqual(limiter.inspect('ci'), { failures: 0, held: 0, waiting: 0, keys: 0 });
  });

  it('a flood of waiters is bounded: past maxWaiters 429 at once (Retry-After 1), stalled waiters 429 after maxStallMs', async () => {
    const limiter = new FailureLimiter({ max: 2, windowMs: 60_000, maxWaiters: 4, maxStallMs: 100, maxWaitMs: 10_000 });
    const held = [await limiter.acquire('k'), await limiter.acquire('k')]; // attempts that hang
    const res = Array.from({ length: 10 }, fakeRes);
    const waits = res.map((r) => limiter.acquire('k', r));
    const states = await Promise.all(waits.map(state));
    assert.deepEqual(states, [...Array(4).fill('pending'), ...Array(6).fill('rejected')]);
    for (const r of res.slice(4)) assert.equal(r.retryAfter, '1');
    assert.equal(limiter.inspect('k').waiting, 4);
    const t = performance.now();
    for (const w of waits) await assert.rejects(w, isLimited);
    assert.ok(performance.now() - t < 2_000);
    for (const r of res) assert.equal(r.retryAfter, '1');
    assert.deepEqual(limiter.inspect('k'), { failures: 0, held: 2, waiting: 0, keys: 1 });
    for (const h of held) h.release();
    assert.deepEqual(limiter.inspect('k'), { failures: 0, held: 0, waiting: 0, keys: 0 });
  });

  it('a wait that keeps moving is not refused for stalling, but is for lasting past maxWaitMs', async () => {
    const limiter = new FailureLimiter({ max: 1, windowMs: 60_000, maxStallMs: 300, maxWaitMs: 1_500 });
    let slot: Admission = await limiter.acquire('k');
    const waits = Array.from({ length: 40 }, () => limiter.acquire('k'));
    for (const w of waits) w.catch(() => undefined); // awaited one by one below
    const outcomes: string[] = [];
    const t = performance.now();
    // Each holder settles after 50 ms (progress every 50 ms, well within the 300 ms stall bound).
    for (const w of waits) {
      await sleep(50);
      slot.release();
      try {
        slot = await w;
        outcomes.push('admitted');
      } catch (e) {
        assert.ok(isLimited(e));
        outcomes.push('refused');
        slot = { release: () => undefined, fail: () => undefined };
      }
    }
    slot.release();
    assert.ok(
      outcomes.slice(0, 5).every((o) => o === 'admitted'),
      outcomes.join(),
    );
    assert.ok(outcomes.includes('refused'), `nothing refused after ${performance.now() - t} ms: ${outcomes.join()}`);
  });

  it('a waiter whose client hung up leaves the queue', async () => {
    const limiter = new FailureLimiter({ max: 1, windowMs: 60_000 });
    const slot = await limiter.acquire('k');
    const gone = new AbortController();
    const w = limiter.acquire('k', undefined, gone.signal);
    assert.equal(limiter.inspect('k').waiting, 1);
    gone.abort();
    await assert.rejects(w, isLimited);
    assert.equal(limiter.inspect('k').waiting, 0);
    slot.release();
    assert.equal(limiter.inspect('k').keys, 0);
  });

  it('a window that ends restores the whole budget', async () => {
    let clock = 1_000_000;
    const limiter = new FailureLimiter({ max: 2, windowMs: 60_000, now: () => clock });
    (await limiter.acquire('k')).fail();
    (await limiter.acquire('k')).fail();
    await assert.rejects(limiter.acquire('k'), isLimited);
    clock += 60_000;
    limiter.check('k');
    const [a, b] = [await limiter.acquire('k'), await limiter.acquire('k')];
    assert.equal(await state(limiter.acquire('k')), 'pending');
    a.release();
    b.release();
  });
});

describe('FailureLimiter: bounded maps', () => {
  it('refuse mode (users): full of live windows, a new key is refused (429 until the oldest window ends); no live window is dropped', async () => {
    let clock = 1_000_000;
    const limiter = new FailureLimiter({ max: 3, windowMs: 60_000, maxKeys: 10, now: () => clock });
    for (let i = 0; i < 3; i++) (await limiter.acquire('alice')).fail();
    for (let i = 0; i < 9; i++) (await limiter.acquire(`u${i}`)).fail();
    const res = fakeRes();
    await assert.rejects(limiter.acquire('newcomer', res), isLimited);
    assert.equal(res.retryAfter, '60');
    for (let i = 0; i < 50; i++) limiter.fail(`filler${i}`);
    assert.equal(limiter.inspect('alice').keys, 10);
    assert.throws(() => limiter.check('alice'), isLimited, 'alice is still locked');
    clock += 30_000;
    await assert.rejects(limiter.acquire('newcomer', res), isLimited);
    assert.equal(res.retryAfter, '30');
    clock += 30_000; // every window has ended: room again, and alice's lockout is over
    (await limiter.acquire('newcomer')).release();
    (await limiter.acquire('alice')).release();
  });

  it('evict-idle mode (addresses): drops the oldest window without attempts in flight, never one with', async () => {
    const limiter = new FailureLimiter({ max: 5, windowMs: 60_000, maxKeys: 3, whenFull: 'evict-idle' });
    const busy = await limiter.acquire('a'); // in flight
    limiter.fail('a');
    limiter.fail('b');
    limiter.fail('c');
    limiter.fail('d'); // full: b is the oldest idle window
    assert.equal(limiter.inspect('a').failures, 1);
    assert.equal(limiter.inspect('b').failures, 0);
    assert.equal(limiter.inspect('d').failures, 1);
    assert.equal(limiter.inspect('d').keys, 3);
    busy.release();
  });
});

describe('LoginLimits: slots of the address, then of the user', () => {
  const res = fakeRes;
  const wrong = () => Promise.reject(new CofferError('unauthenticated', 'login failed'));

  it('50 parallel attempts for 50 users from one address with a budget of 5 run at most 5 checks', async () => {
    const limits = new LoginLimits({ failuresPerMinute: 5, userFailuresPerMinute: 10 });
    let checks = 0;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        limits.attempt(
          '203.0.113.7',
          res(),
          async () => {
            checks++;
            await sleep(20);
            throw new CofferError('unauthenticated', 'login failed');
          },
          { username: `user${i}` },
        ),
      ),
    );
    assert.equal(checks, 5);
    assert.equal(outcomes.filter((o) => o.status === 'rejected' && isLimited(o.reason)).length, 45);
    assert.equal(limits.inspect('203.0.113.7').address.failures, 5);
  });

  it('a refusal by the user limit does not spend the address budget; an outage (5xx) spends neither', async () => {
    const limits = new LoginLimits({ failuresPerMinute: 5, userFailuresPerMinute: 1 });
    await assert.rejects(
      limits.attempt('203.0.113.7', res(), wrong, { username: 'alice' }),
      (e: CofferError) => e.code === 'unauthenticated',
    );
    await assert.rejects(limits.attempt('203.0.113.7', res(), wrong, { username: 'alice' }), isLimited);
    await assert.rejects(
      limits.attempt('203.0.113.7', res(), () => Promise.reject(new CofferError('idp_unavailable', 'down')), {
        username: 'bob',
      }),
    );
    assert.deepEqual(limits.inspect('203.0.113.7', 'alice'), {
      address: { failures: 1, held: 0, waiting: 0, keys: 1 },
      user: { failures: 1, held: 0, waiting: 0, keys: 1 },
    });
    assert.equal(limits.inspect('203.0.113.7', 'bob').user!.failures, 0);
  });

  it('a locked user stays locked while one address fills the per-user map; the address can only open as many windows as it has failures', async () => {
    const limits = new LoginLimits({ failuresPerMinute: 1_000, userFailuresPerMinute: 3, maxKeys: 20 });
    for (let i = 0; i < 3; i++)
      await assert.rejects(limits.attempt('203.0.113.7', res(), wrong, { username: 'alice' }));
    let refused = 0;
    for (let i = 0; i < 100; i++) {
      await limits
        .attempt('203.0.113.7', res(), wrong, { username: `filler${i}` })
        .catch((e) => isLimited(e) && refused++);
    }
    assert.equal(refused, 100 - 19, 'the 19 free keys were used, then new names refused');
    await assert.rejects(
      limits.attempt('203.0.113.7', res(), () => Promise.resolve('granted'), { username: 'alice' }),
      isLimited,
    );
    assert.equal(limits.inspect('203.0.113.7', 'alice').user!.keys, 20);

    // With the default-sized address budget, one address opens at most that many user windows.
    const small = new LoginLimits({ failuresPerMinute: 5, userFailuresPerMinute: 3, maxKeys: 20 });
    for (let i = 0; i < 30; i++)
      await small.attempt('198.51.100.1', res(), wrong, { username: `n${i}` }).catch(() => undefined);
    assert.equal(small.inspect('198.51.100.1', 'n0').user!.keys, 5);
  });

  it('40 parallel successful logins for one user all pass (budget 10: ten at a time, the rest wait)', async () => {
    const limits = new LoginLimits();
    let running = 0;
    let peak = 0;
    const results = await Promise.all(
      Array.from({ length: 40 }, () =>
        limits.attempt(
          '203.0.113.7',
          res(),
          async () => {
            peak = Math.max(peak, ++running);
            await sleep(10);
            running--;
            return 'granted';
          },
          { username: 'ci-bot' },
        ),
      ),
    );
    assert.equal(results.length, 40);
    assert.equal(peak, 10);
    assert.deepEqual(limits.inspect('203.0.113.7', 'ci-bot').user, { failures: 0, held: 0, waiting: 0, keys: 0 });
  });
});

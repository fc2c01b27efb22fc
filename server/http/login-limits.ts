import type { Response } from 'express';
import { isCofferError } from '../errors.js';
import { addressKey } from './client-address.js';
import { FailureLimiter, type Admission } from './rate-limit.js';

/** Login limits (docs/api.md "Auth"; config `login_failures_per_minute`, `login_user_failures_per_minute`). */
export interface LoginLimitSettings {
  /** Failed logins per window per client address (default 60). */
  failuresPerMinute: number;
  /** Failed userpass logins per window per user (default 10). */
  userFailuresPerMinute: number;
  /** Window length; one minute unless a test shortens it. */
  windowMs?: number;
  now?: () => number;
  /** Bound on the keys each map tracks (default 100,000); tests make it small. */
  maxKeys?: number;
}

/** Moved to client-address.ts (the connection cap keys by it too); re-exported for importers. */
export { addressKey };

export const DEFAULT_LOGIN_LIMITS: LoginLimitSettings = { failuresPerMinute: 60, userFailuresPerMinute: 10 };

/**
 * The counter key of a userpass user name (J2). Authentication compares names exactly and only
 * `[a-z0-9._-]` names exist, so for every name that can log in this is the name itself; case,
 * surrounding whitespace and Unicode compatibility variants (`ALICE`, ` alice`, fullwidth
 * `ａｌｉｃｅ`) fold onto the same key, so no spelling of a name gets its own budget.
 */
export function userKey(username: string): string {
  return username.normalize('NFKC').toLowerCase().normalize('NFKC').trim();
}

/**
 * Which failures count: the client's own (a malformed body, a wrong credential), never the
 * server's (an identity provider that cannot be reached, an internal error) and never a
 * refusal by a limit, so an outage cannot lock CI out.
 */
export function countsAsFailure(error: unknown): boolean {
  return isCofferError(error) && error.status >= 400 && error.status < 500 && error.code !== 'rate_limited';
}

/**
 * The failure budgets of the login routes (API.md "Login limits"). Each budget is also a
 * semaphore (FailureLimiter): an attempt holds a slot of its address (and, for userpass, of its
 * user) while it runs, the slots are the budget not yet spent, a success gives its slot back
 * uncounted and a failure spends it. So a burst from one address runs at most the address's
 * remaining budget of credential checks however many requests it sends at once, and a burst of
 * successes (a CI matrix, a service account) all pass: past the free slots they wait their turn
 * (at most 1,024 per address and 256 per user, refused when no attempt of the key settles for
 * 5 s, or after 30 s) instead of being refused. A client that hangs up leaves the queue.
 *
 * Signed credentials (jwt, approle) are limited per address only: their secrets cannot be
 * guessed, so the budget just bounds junk, and there is no per-role counter anyone could
 * exhaust for a role they do not hold. Passwords can be guessed: userpass also has a per-user
 * budget, taken after the address slot and before the password hash runs.
 *
 * The two maps are bounded (100,000 keys) differently. The per-user map never drops a live
 * window (failures in the window, or attempts in flight): when it is full, an attempt for a
 * user not in it is refused (429) until the oldest window ends, so nobody can unlock a user by
 * filling the map. Every user window is opened by a failure that also spends its address's
 * budget, so one address opens at most `failuresPerMinute` of them a minute (and the password
 * hash queue bounds all addresses together to a few thousand a minute). The address map drops
 * its oldest window without attempts in flight instead: filling it takes 100,000 other
 * addresses with failures, each with a budget of its own, so dropping one gives an attacker
 * nothing those addresses did not already have, while refusing new addresses would let anyone
 * with an IPv6 /48 lock every new client out.
 */
export class LoginLimits {
  private readonly addresses: FailureLimiter;
  private readonly users: FailureLimiter;

  constructor(given: Partial<LoginLimitSettings> = {}) {
    const settings = { ...DEFAULT_LOGIN_LIMITS, ...given };
    const common = {
      windowMs: settings.windowMs ?? 60_000,
      ...(settings.now ? { now: settings.now } : {}),
      ...(settings.maxKeys ? { maxKeys: settings.maxKeys } : {}),
    };
    this.addresses = new FailureLimiter({
      max: settings.failuresPerMinute,
      whenFull: 'evict-idle',
      maxWaiters: 1_024,
      ...common,
    });
    this.users = new FailureLimiter({
      max: settings.userFailuresPerMinute,
      whenFull: 'refuse',
      maxWaiters: 256,
      ...common,
    });
  }

  /** Before the body is read: refuses an address whose recorded failures used up its budget. */
  checkAddress(address: string, res: Response): void {
    this.addresses.check(addressKey(address), res);
  }

  /**
   * Runs one credential check within the budgets: a slot of the address, then (userpass) of
   * the user, both taken (or refused with 429) before `attempt` starts; counted only if it
   * fails through the client's fault. `signal`: the client went away (a waiting attempt leaves).
   */
  async attempt<T>(
    address: string,
    res: Response,
    attempt: () => Promise<T>,
    options: { username?: string; signal?: AbortSignal } = {},
  ): Promise<T> {
    const held: Admission[] = [await this.addresses.acquire(addressKey(address), res, options.signal)];
    try {
      if (options.username !== undefined)
        held.push(await this.users.acquire(userKey(options.username), res, options.signal));
    } catch (e) {
      held[0]!.release(); // refused by the user's limit: not the address's failure
      throw e;
    }
    try {
      const result = await attempt();
      for (const a of held) a.release();
      return result;
    } catch (e) {
      const counts = countsAsFailure(e);
      for (const a of held) {
        if (counts) a.fail();
        else a.release();
      }
      throw e;
    }
  }

  /** Records a failed attempt that held no slot (a malformed body), if it is one that counts. */
  failed(address: string, error: unknown): void {
    if (countsAsFailure(error)) this.addresses.fail(addressKey(address));
  }

  /** For tests: the state of one address's and one user's budget. */
  inspect(
    address: string,
    username?: string,
  ): { address: ReturnType<FailureLimiter['inspect']>; user?: ReturnType<FailureLimiter['inspect']> } {
    return {
      address: this.addresses.inspect(addressKey(address)),
      ...(username !== undefined ? { user: this.users.inspect(userKey(username)) } : {}),
    };
  }
}

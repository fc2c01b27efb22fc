import { isIP } from 'node:net';
import type { Response } from 'express';
import { isCofferError } from '../errors.js';
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
}

export const DEFAULT_LOGIN_LIMITS: LoginLimitSettings = { failuresPerMinute: 60, userFailuresPerMinute: 10 };

/**
 * The counter key of a client address. An IPv6 client usually holds a whole /64, so it is one
 * key: otherwise each of its 2^64 addresses would get a fresh failure budget.
 */
export function addressKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head = '', tail] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.padStart(4, '0')).join(':')}::/64`;
}

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
 * The failure budgets of the login routes. Signed credentials (jwt, approle) are limited per
 * address only: their secrets cannot be guessed, so the budget just bounds junk, and there is
 * no per-role counter anyone could exhaust for a role they do not hold. Passwords can be
 * guessed: userpass also has a per-user budget, admitted before the password hash runs.
 */
export class LoginLimits {
  private readonly addresses: FailureLimiter;
  private readonly users: FailureLimiter;

  constructor(given: Partial<LoginLimitSettings> = {}) {
    const settings = { ...DEFAULT_LOGIN_LIMITS, ...given };
    const common = { windowMs: settings.windowMs ?? 60_000, ...(settings.now ? { now: settings.now } : {}) };
    this.addresses = new FailureLimiter({ max: settings.failuresPerMinute, ...common });
    this.users = new FailureLimiter({ max: settings.userFailuresPerMinute, ...common });
  }

  /** Before the body is read: refuses an address with no failure budget left. */
  checkAddress(address: string, res: Response): void {
    this.addresses.check(addressKey(address), res);
  }

  /**
   * Runs one password check within the user's budget: admitted (or refused with 429) before
   * `attempt` starts the expensive hash, counted only if it fails.
   */
  async userAttempt<T>(username: string, res: Response, attempt: () => Promise<T>): Promise<T> {
    const admission: Admission = this.users.admit(userKey(username), res);
    try {
      const result = await attempt();
      admission.release();
      return result;
    } catch (e) {
      if (countsAsFailure(e)) admission.fail();
      else admission.release();
      throw e;
    }
  }

  /** Records a failed attempt against the address, if it is one that counts. */
  failed(address: string, error: unknown): void {
    if (countsAsFailure(error)) this.addresses.fail(addressKey(address));
  }
}

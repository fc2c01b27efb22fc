import type { NextFunction, Request, Response } from 'express';
import { CofferError } from '../errors.js';

export interface RateLimitOptions {
  /** Attempts (or failures, for FailureLimiter) allowed per window and key. */
  max: number;
  windowMs: number;
  now?: () => number;
  /** Bound on tracked keys; the oldest window is dropped first. */
  maxKeys?: number;
}

/** Sets `Retry-After` (whole seconds, at least 1) and returns the 429 to throw. */
function refuse(res: Response | undefined, waitMs: number): CofferError {
  res?.setHeader('Retry-After', String(Math.max(1, Math.ceil(waitMs / 1000))));
  return new CofferError('rate_limited', 'too many attempts: wait and retry');
}

/**
 * Fixed-window counters per key. Map order is insertion order and a new window re-inserts its
 * key, so the first entry is always the oldest window: the one to drop when the map is full.
 */
class Windows {
  private readonly windows = new Map<string, { start: number; count: number }>();
  readonly now: () => number;

  constructor(private readonly options: RateLimitOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The key's current window, or undefined when it has none (or it expired). */
  current(key: string): { start: number; count: number } | undefined {
    const w = this.windows.get(key);
    if (w && this.now() - w.start < this.options.windowMs) return w;
    if (w) this.windows.delete(key);
    return undefined;
  }

  /** The key's current window, opened if needed. */
  open(key: string): { start: number; count: number } {
    const existing = this.current(key);
    if (existing) return existing;
    if (this.windows.size >= (this.options.maxKeys ?? 100_000)) this.windows.delete(this.windows.keys().next().value!);
    const w = { start: this.now(), count: 0 };
    this.windows.set(key, w);
    return w;
  }

  /** Milliseconds until `w` ends. */
  remaining(w: { start: number }): number {
    return w.start + this.options.windowMs - this.now();
  }
}

/** Counts every attempt per key (unseal and init ceremonies); throws 429 past the budget. */
export class RateLimiter {
  private readonly windows: Windows;

  constructor(private readonly options: RateLimitOptions) {
    this.windows = new Windows(options);
  }

  hit(key: string, res?: Response): void {
    const w = this.windows.open(key);
    if (++w.count > this.options.max) throw refuse(res, this.windows.remaining(w));
  }
}

/** An attempt admitted by `FailureLimiter.admit`: settle it exactly once. */
export interface Admission {
  /** The attempt succeeded (or failed through no fault of the client): it is not counted. */
  release(): void;
  /** The attempt failed: it counts against the key's budget. */
  fail(): void;
}

/**
 * Counts only failures per key, so successful logins are never limited. `check` refuses a
 * key whose failures in the window reached the budget; `admit` also holds a place for the
 * attempt while it runs, so N parallel guesses cannot all pass the check before the first of
 * them is recorded as a failure (the budget bounds concurrent attempts too).
 */
export class FailureLimiter {
  private readonly windows: Windows;
  private readonly inFlight = new Map<string, number>();

  constructor(private readonly options: RateLimitOptions) {
    this.windows = new Windows(options);
  }

  /** Throws 429 (with Retry-After) when `key` has no failure budget left. */
  check(key: string, res?: Response): void {
    const w = this.windows.current(key);
    const failures = w?.count ?? 0;
    const pending = this.inFlight.get(key) ?? 0;
    if (failures + pending < this.options.max) return;
    // Refused only because attempts are still running: they settle within a second or so.
    throw refuse(res, w && failures >= this.options.max ? this.windows.remaining(w) : 1_000);
  }

  /** Records one failure for `key`. */
  fail(key: string): void {
    this.windows.open(key).count++;
  }

  /** `check`, then holds a place until the attempt settles. */
  admit(key: string, res?: Response): Admission {
    this.check(key, res);
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    let settled = false;
    const release = () => {
      if (settled) return false;
      settled = true;
      const n = this.inFlight.get(key)! - 1;
      if (n === 0) this.inFlight.delete(key);
      else this.inFlight.set(key, n);
      return true;
    };
    return {
      release: () => void release(),
      fail: () => {
        if (release()) this.fail(key);
      },
    };
  }
}

/**
 * Middleware counting every attempt per client address (`res.locals.clientAddress`, set by
 * app.ts from the socket or a trusted proxy), applied before the body is read or parsed, so
 * floods are refused cheaply.
 */
export function rateLimit(options: RateLimitOptions) {
  const limiter = new RateLimiter(options);
  return (req: Request, res: Response, next: NextFunction): void => {
    try {
      limiter.hit((res.locals.clientAddress as string | undefined) ?? req.socket.remoteAddress ?? 'unknown', res);
    } catch (e) {
      req.resume();
      throw e;
    }
    next();
  };
}

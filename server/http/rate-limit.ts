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

/** An attempt admitted by `FailureLimiter.acquire`: settle it exactly once. */
export interface Admission {
  /** The attempt succeeded (or failed through no fault of the client): it is not counted. */
  release(): void;
  /** The attempt failed: it counts against the key's budget. */
  fail(): void;
}

export interface FailureLimiterOptions extends RateLimitOptions {
  /**
   * When the map holds `maxKeys` keys with live windows (failures within the window, or
   * attempts in flight or waiting): `refuse` answers 429 to an attempt that needs a new key and
   * never drops a live window, so nobody can reset a lockout by filling the map; `evict-idle`
   * drops the oldest window that has no attempt in flight (right for client addresses, see
   * LoginLimits). Default `refuse`.
   */
  whenFull?: 'refuse' | 'evict-idle';
  /** Attempts that may wait for a slot, per key (default 256); past it: 429 at once. */
  maxWaiters?: number;
  /** A waiter is refused when no attempt of its key settled for this long (default 5 s). */
  maxStallMs?: number;
  /** ... and in any case after waiting this long (default 30 s). */
  maxWaitMs?: number;
}

/** A cancelled or refused wait: always 429 with Retry-After. */
interface Waiter {
  since: number;
  admit(): void;
  refuse(waitMs: number): void;
}

interface Entry {
  /** Window start; meaningful once `failures` > 0. Map order is `start` order. */
  start: number;
  /** Failures recorded in the window. */
  failures: number;
  /** Attempts holding a slot. */
  held: number;
  /** Attempts waiting for a slot, oldest first. */
  waiters: Waiter[];
  /** When an attempt of this key last settled (or the first waiter queued), on the wait clock. */
  progress: number;
  timer?: NodeJS.Timeout | undefined;
}

/**
 * Failure budgets per key, so successful logins are never limited. Admission (`acquire`) is a
 * per-key semaphore whose size is the key's remaining failure budget (budget minus failures in
 * the window): an attempt holds a slot while it runs, a success gives it back uncounted, a
 * failure gives it back and is counted, so N parallel guesses can never run more checks than
 * the budget allows. An attempt that finds every remaining slot held by attempts still running
 * waits for one (FIFO, bounded in number and time) instead of being refused: a burst of
 * successes all pass, a burst of failures stops at the budget. An attempt that finds the budget
 * spent by recorded failures is refused at once.
 */
export class FailureLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private readonly max: number;
  private readonly maxKeys: number;
  private readonly maxWaiters: number;
  private readonly maxStallMs: number;
  private readonly maxWaitMs: number;
  /** Waits are real time, whatever clock the windows run on. */
  private readonly clock = () => performance.now();

  constructor(private readonly options: FailureLimiterOptions) {
    this.now = options.now ?? Date.now;
    this.max = options.max;
    this.maxKeys = options.maxKeys ?? 100_000;
    this.maxWaiters = options.maxWaiters ?? 256;
    this.maxStallMs = options.maxStallMs ?? 5_000;
    this.maxWaitMs = options.maxWaitMs ?? 30_000;
  }

  /** Throws 429 (with Retry-After) when `key` has no failure budget left (recorded failures only). */
  check(key: string, res?: Response): void {
    const e = this.entries.get(key);
    if (e && this.refresh(key, e) >= this.max) throw refuse(res, this.remaining(e));
  }

  /** Records one failure of an attempt that held no slot (e.g. a malformed body). */
  fail(key: string): void {
    const e = this.entry(key);
    if (!e) return; // `refuse` mode and full of live windows: every attempt on a new key is refused anyway
    this.record(key, e);
    this.pump(key, e);
  }

  /**
   * Takes a slot of `key` for one attempt, waiting for one while the remaining budget is held
   * by attempts in flight. Rejects with 429 (Retry-After set on `res`) when the budget is spent,
   * too many attempts already wait, the wait is too long, or `signal` aborts (client gone).
   */
  acquire(key: string, res?: Response, signal?: AbortSignal): Promise<Admission> {
    const e = this.entry(key);
    if (!e) return Promise.reject(refuse(res, this.fullFor()));
    const failures = this.refresh(key, e);
    if (failures >= this.max) return Promise.reject(refuse(res, this.remaining(e)));
    this.drain(e, failures); // a window that just ended frees slots for whoever waits first
    if (e.waiters.length === 0 && e.held < this.max - failures) {
      e.held++;
      return Promise.resolve(this.admission(key, e));
    }
    if (e.waiters.length >= this.maxWaiters) return Promise.reject(refuse(res, 1_000));
    if (signal?.aborted) return Promise.reject(refuse(res, 1_000));
    return new Promise<Admission>((resolve, reject) => {
      const onAbort = () => {
        const i = e.waiters.indexOf(waiter);
        if (i >= 0) e.waiters.splice(i, 1);
        waiter.refuse(1_000);
        this.tidy(key, e);
      };
      const done = () => signal?.removeEventListener('abort', onAbort);
      const waiter: Waiter = {
        since: this.clock(),
        admit: () => {
          done();
          e.held++;
          resolve(this.admission(key, e));
        },
        refuse: (waitMs) => {
          done();
          reject(refuse(res, waitMs));
        },
      };
      if (e.waiters.length === 0) e.progress = waiter.since;
      e.waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.arm(key, e);
    });
  }

  /** For tests and metrics: the state of `key` and the number of keys tracked. */
  inspect(key: string): { failures: number; held: number; waiting: number; keys: number } {
    const e = this.entries.get(key);
    return {
      failures: e ? this.refresh(key, e) : 0,
      held: e?.held ?? 0,
      waiting: e?.waiters.length ?? 0,
      keys: this.entries.size,
    };
  }

  private admission(key: string, e: Entry): Admission {
    let settled = false;
    const settle = (failed: boolean) => {
      if (settled) return;
      settled = true;
      e.held--;
      e.progress = this.clock();
      if (failed) this.record(key, e);
      this.pump(key, e);
    };
    return { release: () => settle(false), fail: () => settle(true) };
  }

  /** The key's failures in its current window, resetting an expired window (and re-ordering it). */
  private refresh(key: string, e: Entry): number {
    if (e.failures > 0 && this.now() - e.start >= this.options.windowMs) {
      e.failures = 0;
      e.start = this.now();
      this.moveToEnd(key, e); // dropped by `tidy` unless attempts are in flight
    }
    return e.failures;
  }

  private record(key: string, e: Entry): void {
    if (this.refresh(key, e) === 0) {
      e.start = this.now(); // a window opens at its first failure
      this.moveToEnd(key, e);
    }
    e.failures++;
  }

  /** Keeps map order = window start order (the oldest window first). */
  private moveToEnd(key: string, e: Entry): void {
    if (this.entries.get(key) !== e) return;
    this.entries.delete(key);
    this.entries.set(key, e);
  }

  /** After a change: admit waiters into free slots, or refuse them all once the budget is spent. */
  private pump(key: string, e: Entry): void {
    this.drain(e, this.refresh(key, e));
    this.arm(key, e);
    this.tidy(key, e);
  }

  private drain(e: Entry, failures: number): void {
    if (failures >= this.max) {
      for (const w of e.waiters.splice(0)) w.refuse(this.remaining(e));
    } else {
      while (e.waiters.length > 0 && e.held < this.max - failures) e.waiters.shift()!.admit();
    }
  }

  /** One timer per key with waiters: refuses those whose wait stalled or lasted too long. */
  private arm(key: string, e: Entry): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
    const head = e.waiters[0];
    if (!head) return;
    const due = Math.min(Math.max(head.since, e.progress) + this.maxStallMs, head.since + this.maxWaitMs);
    e.timer = setTimeout(
      () => {
        e.timer = undefined;
        const t = this.clock();
        while (
          e.waiters[0] &&
          (t >= Math.max(e.waiters[0].since, e.progress) + this.maxStallMs || t >= e.waiters[0].since + this.maxWaitMs)
        )
          e.waiters.shift()!.refuse(1_000);
        this.arm(key, e);
        this.tidy(key, e);
      },
      Math.max(0, due - this.clock()),
    );
    e.timer.unref();
  }

  /** Drops an entry that holds nothing: no failures in the window, nothing in flight or waiting. */
  private tidy(key: string, e: Entry): void {
    if (e.held === 0 && e.waiters.length === 0 && this.refresh(key, e) === 0 && this.entries.get(key) === e)
      this.entries.delete(key);
  }

  /** The key's entry, created if needed; undefined when the map is full of live windows (`refuse`). */
  private entry(key: string): Entry | undefined {
    const existing = this.entries.get(key);
    if (existing) return existing;
    if (this.entries.size >= this.maxKeys) this.makeRoom();
    if (this.entries.size >= this.maxKeys) return undefined;
    const e: Entry = { start: this.now(), failures: 0, held: 0, waiters: [], progress: this.clock() };
    this.entries.set(key, e);
    return e;
  }

  /** Drops expired idle windows (oldest first: map order is window order), then in `evict-idle` mode the oldest idle window. */
  private makeRoom(): void {
    for (const [key, e] of this.entries) {
      if (e.failures > 0 && this.now() - e.start < this.options.windowMs) break; // every later window is younger
      this.refresh(key, e);
      this.tidy(key, e);
      if (this.entries.size < this.maxKeys) return;
    }
    if (this.options.whenFull !== 'evict-idle') return;
    for (const [key, e] of this.entries) {
      if (e.held === 0 && e.waiters.length === 0) {
        this.entries.delete(key);
        return;
      }
    }
    // Every key has an attempt in flight: the new key is refused, as in `refuse` mode.
  }

  /** Retry-After when the map is full of live windows: until the oldest one ends. */
  private fullFor(): number {
    for (const e of this.entries.values()) if (e.failures > 0) return this.remaining(e);
    return 1_000;
  }

  /** Milliseconds until `e`'s window ends. */
  private remaining(e: Entry): number {
    return e.start + this.options.windowMs - this.now();
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
      limiter.hit(res.locals.clientAddress ?? req.socket.remoteAddress ?? 'unknown', res);
    } catch (e) {
      req.resume();
      throw e;
    }
    next();
  };
}

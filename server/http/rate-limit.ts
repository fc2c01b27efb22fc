import type { NextFunction, Request, Response } from 'express';
import { CofferError } from '../errors.js';

export interface RateLimitOptions {
  /** Attempts allowed per window and key. */
  max: number;
  windowMs: number;
  now?: () => number;
  /** Bound on tracked keys; the oldest window is dropped first. */
  maxKeys?: number;
}

/** Fixed-window counters per key (client address, user name, role). */
export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();
  private readonly now: () => number;

  constructor(private readonly options: RateLimitOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Counts one attempt for `key`; throws 429 `rate_limited` past the budget. */
  hit(key: string, res?: Response): void {
    const t = this.now();
    let w = this.windows.get(key);
    if (!w || t - w.start >= this.options.windowMs) {
      this.windows.delete(key);
      if (this.windows.size >= (this.options.maxKeys ?? 10_000)) this.windows.delete(this.windows.keys().next().value!);
      w = { start: t, count: 0 };
      this.windows.set(key, w);
    }
    if (++w.count > this.options.max) {
      res?.setHeader('Retry-After', String(Math.ceil((w.start + this.options.windowMs - t) / 1000)));
      throw new CofferError('rate_limited', 'too many attempts: wait and retry');
    }
  }
}

/**
 * Middleware limiting per peer address (the socket's, never a forwarded header), applied before
 * the body is read or parsed, so floods are refused cheaply.
 */
export function rateLimit(options: RateLimitOptions) {
  const limiter = new RateLimiter(options);
  return (req: Request, res: Response, next: NextFunction): void => {
    try {
      limiter.hit(req.socket.remoteAddress ?? 'unknown', res);
    } catch (e) {
      req.resume();
      throw e;
    }
    next();
  };
}

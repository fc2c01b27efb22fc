import type { NextFunction, Request, Response } from 'express';
import { CofferError } from '../errors.js';

export interface RateLimitOptions {
  /** Requests allowed per window and client address. */
  max: number;
  windowMs: number;
  now?: () => number;
  /** Bound on tracked addresses; the oldest window is dropped first. */
  maxClients?: number;
}

/**
 * Fixed-window limit per peer address (the socket's, never a forwarded header), applied before
 * the body is read or parsed, so floods are refused cheaply (429 `rate_limited`).
 */
export function rateLimit(options: RateLimitOptions) {
  const now = options.now ?? Date.now;
  const maxClients = options.maxClients ?? 10_000;
  const windows = new Map<string, { start: number; count: number }>();
  return (req: Request, res: Response, next: NextFunction): void => {
    const client = req.socket.remoteAddress ?? 'unknown';
    const t = now();
    let w = windows.get(client);
    if (!w || t - w.start >= options.windowMs) {
      windows.delete(client);
      if (windows.size >= maxClients) windows.delete(windows.keys().next().value!);
      w = { start: t, count: 0 };
      windows.set(client, w);
    }
    if (++w.count > options.max) {
      req.resume();
      res.setHeader('Retry-After', String(Math.ceil((w.start + options.windowMs - t) / 1000)));
      throw new CofferError('rate_limited', 'too many attempts: wait and retry');
    }
    next();
  };
}

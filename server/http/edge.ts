import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { BlockList } from 'node:net';
import { clientAddressResolver } from './client-address.js';
import type { HttpRequest, HttpResponse } from './respond.js';

/**
 * One stage every request passes before its route (request id, seal gate, audit hold, token
 * check, ...): a plain function of node's request and response that throws to refuse. The
 * express router runs each as middleware (`asMiddleware`); the hot dispatcher (hot.ts) calls the
 * same functions in the same order, so each stage has one implementation.
 */
export type Step = (req: HttpRequest, res: HttpResponse) => void | Promise<void>;

/** A step as express middleware: a throw or a rejection goes to the error handler. */
export function asMiddleware(step: Step): RequestHandler {
  const middleware = (req: Request, res: Response, next: NextFunction): void | Promise<void> => {
    const pending = step(req, res);
    if (pending) return pending.then(() => next());
    next();
  };
  Object.defineProperty(middleware, 'name', { value: step.name });
  return middleware;
}

/** A step that answers (a route's last), as express's final handler: it never calls `next`. */
export function asHandler(step: Step): RequestHandler {
  const handler = (req: Request, res: Response): void | Promise<void> => step(req, res);
  Object.defineProperty(handler, 'name', { value: step.name });
  return handler;
}

/** Every answer gets a request id (also in its audit line) and is never cached or sniffed. */
export function stampRequest(_req: HttpRequest, res: HttpResponse): void {
  const id = randomUUID();
  res.locals.requestId = id;
  res.setHeader('X-Request-Id', id);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
}

/** A draining server keeps no connection open. */
export function closeWhenDraining(lifecycle: { draining: boolean }): Step {
  return function closeWhenDraining(_req, res) {
    if (lifecycle.draining) res.setHeader('Connection', 'close');
  };
}

/**
 * One client address per request, decided once here (the socket peer, or X-Forwarded-For from
 * a trusted proxy; client-address.ts), so the login limits, approle CIDR bindings and the
 * audit log cannot disagree about who is asking.
 */
export function resolveClientAddress(proxies: BlockList): Step {
  const resolve = clientAddressResolver(proxies);
  return function resolveClientAddress(req, res) {
    res.locals.clientAddress = resolve(req);
  };
}

/** Sealed or not initialized: 503 before any token is looked at. */
export function sealGate(seal: { requireUnsealed(): void }): Step {
  return function sealGate() {
    seal.requireUnsealed();
  };
}

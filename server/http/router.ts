import type { RequestHandler, Router } from 'express';
import { CofferError } from '../errors.js';
import { asHandler, asMiddleware } from './edge.js';
import { hotSteps, isHot, registerHot, type HotHandlers } from './hot.js';

/** Case-sensitive, strict routing: `/v1/Secrets` and `/v1/sys/health/` do not match. */
export const routerOptions = { caseSensitive: true, strict: true } as const;

type Verb = 'get' | 'put' | 'post' | 'delete';
export type Handlers = RequestHandler | RequestHandler[] | HotHandlers;

/**
 * The express handlers of one verb; hot ones (hot.ts) are also registered with the hot
 * dispatcher, which runs the very same functions.
 */
export function expressHandlers(router: Router, verb: string, path: string, handlers: Handlers): RequestHandler[] {
  if (!isHot(handlers)) return Array.isArray(handlers) ? handlers : [handlers];
  const steps = hotSteps(handlers);
  registerHot(router, verb, path, steps);
  return steps.map((step, i) => (i === steps.length - 1 ? asHandler(step) : asMiddleware(step)));
}

/**
 * Registers handlers for one path; every other method on it answers 405 (HEAD follows GET,
 * as express does, and is authorised the same way).
 */
export function methods(router: Router, path: string, handlers: Partial<Record<Verb, Handlers>>): void {
  const route = router.route(path);
  for (const [verb, handler] of Object.entries(handlers) as [Verb, Handlers][]) {
    route[verb](...expressHandlers(router, verb, path, handler));
  }
  const allowed = Object.keys(handlers).map((v) => v.toUpperCase());
  if (allowed.includes('GET')) allowed.push('HEAD');
  route.all((_req, res) => {
    res.setHeader('Allow', allowed.join(', '));
    throw new CofferError('method_not_allowed', 'method not allowed on this route');
  });
}

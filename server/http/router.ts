import type { RequestHandler, Router } from 'express';
import { CofferError } from '../errors.js';

/** Case-sensitive, strict routing: `/v1/Secrets` and `/v1/sys/health/` do not match. */
export const routerOptions = { caseSensitive: true, strict: true } as const;

type Verb = 'get' | 'put' | 'post' | 'delete';

/**
 * Registers handlers for one path; every other method on it answers 405 (HEAD follows GET,
 * as express does, and is authorised the same way).
 */
export function methods(
  router: Router,
  path: string,
  handlers: Partial<Record<Verb, RequestHandler | RequestHandler[]>>,
): void {
  const route = router.route(path);
  for (const [verb, handler] of Object.entries(handlers) as [Verb, RequestHandler | RequestHandler[]][]) {
    route[verb](...(Array.isArray(handler) ? handler : [handler]));
  }
  const allowed = Object.keys(handlers).map((v) => v.toUpperCase());
  if (allowed.includes('GET')) allowed.push('HEAD');
  route.all((_req, res) => {
    res.setHeader('Allow', allowed.join(', '));
    throw new CofferError('method_not_allowed', 'method not allowed on this route');
  });
}

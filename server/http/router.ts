import type { RequestHandler, Router } from 'express';
import { CofferError } from '../errors.js';
import { emptyQuery } from '../../sdk/wire/schemas.js';
import { asHandler, asMiddleware, type Step } from './edge.js';
import { hot, hotSteps, isHot, registerHot, type HotHandlers } from './hot.js';
import { ROUTES } from './route-catalogue.js';
import { validateQuery } from './validate.js';

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
 * The routes the catalogue gives no query (or the empty one): one sent to them is refused by
 * name, never ignored (docs/api.md), here for every native route. The Vault routes check their
 * own (vault/route.ts), since a KV mount's routes exist under every configured mount name.
 */
const TAKES_NO_QUERY = new Set(
  ROUTES.filter((r) => r.query === undefined || r.query === emptyQuery).map((r) => `${r.method} ${r.path}`),
);

function noQuery(req: Parameters<Step>[0]): void {
  validateQuery(emptyQuery, req);
}

/** `handlers` with the query check in front when the route takes none (on the hot path too). */
function checkingQuery(verb: Verb, path: string, handlers: Handlers): Handlers {
  if (!TAKES_NO_QUERY.has(`${verb.toUpperCase()} ${path}`)) return handlers;
  if (isHot(handlers)) return hot(noQuery, ...hotSteps(handlers));
  return [asMiddleware(noQuery), ...(Array.isArray(handlers) ? handlers : [handlers])];
}

/**
 * Registers handlers for one path; every other method on it answers 405 (HEAD follows GET,
 * as express does, and is authorised the same way).
 */
export function methods(router: Router, path: string, handlers: Partial<Record<Verb, Handlers>>): void {
  const route = router.route(path);
  for (const [verb, handler] of Object.entries(handlers) as [Verb, Handlers][]) {
    route[verb](...expressHandlers(router, verb, path, checkingQuery(verb, path, handler)));
  }
  const allowed = Object.keys(handlers).map((v) => v.toUpperCase());
  if (allowed.includes('GET')) allowed.push('HEAD');
  route.all((_req, res) => {
    res.setHeader('Allow', allowed.join(', '));
    throw new CofferError('method_not_allowed', 'method not allowed on this route');
  });
}

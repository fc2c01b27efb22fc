import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Router } from 'express';
import { asMiddleware, type Step } from './edge.js';
import { pathnameOf, type HttpRequest, type HttpResponse } from './respond.js';

/**
 * The hot dispatcher: the routes a CI job calls on every build (a secret read, a batch read,
 * its token's self lookup, a Vault KV read) and the secret write of a bulk load, answered
 * without express. Express's per-request work (prototype swaps on node's request and response,
 * which slow every later property access on them, then a walk of the whole router stack) costs
 * more than the read itself (docs/performance.md). The route's own functions and every edge
 * step are the same ones the express router runs, in the same order (`useSteps`), so
 * authentication, policy, engine, audit and errors have one implementation; anything the
 * dispatcher does not claim (other methods, other paths, percent-encoding, fragments,
 * absolute-form targets) goes to express unchanged.
 */

const HOT = Symbol('hot route');

/** A route's handlers marked for the hot dispatcher (`methods()` registers them with express too). */
export interface HotHandlers {
  readonly [HOT]: readonly Step[];
}

export function hot(...steps: Step[]): HotHandlers {
  return { [HOT]: steps };
}

export function isHot(handlers: unknown): handlers is HotHandlers {
  return typeof handlers === 'object' && handlers !== null && HOT in handlers;
}

export const hotSteps = (handlers: HotHandlers): readonly Step[] => handlers[HOT];

interface HotRoute {
  method: 'GET' | 'POST' | 'PUT';
  /** The express pattern (audit lines and metrics name it). */
  pattern: string;
  /** An exact path, or the prefix of a `<prefix>*path` pattern. */
  literal: string;
  wildcard: boolean;
  /** The edge steps express runs before this route (`useSteps` before it was registered). */
  before: readonly Step[];
  steps: readonly Step[];
  /** What express puts in `req.route` (routePattern reads its path). */
  express: { path: string };
}

interface Registry {
  /** The steps `useSteps` has put on the router so far, in order. */
  steps: Step[];
  routes: HotRoute[];
}

const registries = new WeakMap<object, Registry>();
const registryOf = (router: object): Registry => {
  let registry = registries.get(router);
  if (!registry) registries.set(router, (registry = { steps: [], routes: [] }));
  return registry;
};

/**
 * Puts edge steps on the router as middleware, and notes them: a hot route registered later
 * runs exactly the steps put on before it, in the same order, and nothing else.
 */
export function useSteps(router: Router, ...steps: Step[]): void {
  router.use(...steps.map(asMiddleware));
  registryOf(router).steps.push(...steps);
}

/**
 * Records a hot route of `router` (called by `methods()` and `vaultMethods()`). Only an exact
 * path or one ending in a `*path` wildcard can be hot: the dispatcher matches those without a
 * regular expression.
 */
export function registerHot(router: object, verb: string, pattern: string, steps: readonly Step[]): void {
  const method = verb.toUpperCase();
  if (method !== 'GET' && method !== 'POST' && method !== 'PUT')
    throw new Error(`hot route ${pattern}: only GET, POST and PUT can be hot`);
  const wildcard = pattern.endsWith('/*path');
  const body = wildcard ? pattern.slice(0, -'*path'.length) : pattern;
  if (/(?<!\\)[:*(){}?]/.test(body)) throw new Error(`hot route ${pattern}: not a literal path`);
  const literal = body.replaceAll('\\:', ':');
  const registry = registryOf(router);
  registry.routes.push({
    method,
    pattern,
    literal,
    wildcard,
    before: [...registry.steps],
    steps,
    express: { path: pattern },
  });
}

export interface HotDispatch {
  /** The hot routes, with the names of the edge steps each runs first (for tests that hold them to express's). */
  routes: readonly { method: string; pattern: string; before: readonly string[] }[];
  /** The route the dispatcher claims for this request, if any. */
  claims(method: string, url: string): { method: string; pattern: string } | undefined;
  listener: RequestListener;
}

/**
 * The dispatcher over `router`'s hot routes: `fail` turns a thrown error into the answer
 * (respond-error.ts), and every request it does not claim goes to `fallback` (the express app).
 */
export function hotDispatcher(
  router: object,
  fail: (err: unknown, res: HttpResponse) => void,
  fallback: RequestListener,
): HotDispatch {
  const routes = registryOf(router).routes;
  const exact = new Map<string, HotRoute>();
  const prefixed: HotRoute[] = [];
  for (const route of routes) {
    if (route.wildcard) prefixed.push(route);
    else exact.set(`${route.method} ${route.literal}`, route);
  }

  const claims = (method: string, url: string): HotRoute | undefined => {
    if (method !== 'GET' && method !== 'POST' && method !== 'PUT') return undefined;
    // Percent-encoded paths are left to express, whose router decodes (and refuses) them, and
    // so are fragments and absolute-form targets, which express's URL parsing reads its own way.
    if (url.includes('%') || url.includes('#') || url.charCodeAt(0) !== 0x2f) return undefined;
    const path = pathnameOf(url);
    const found = exact.get(`${method} ${path}`);
    if (found) return found;
    for (const route of prefixed) {
      if (route.method === method && path.length > route.literal.length && path.startsWith(route.literal)) return route;
    }
    return undefined;
  };

  // The route is known to the request (audit lines and metrics name it) once the edge steps
  // let it through, as with express, whose router matches it only then.
  const run = async (route: HotRoute, req: HttpRequest, res: HttpResponse): Promise<void> => {
    try {
      for (const step of route.before) {
        const pending = step(req, res);
        if (pending) await pending;
      }
      req.route = route.express;
      for (const step of route.steps) {
        const pending = step(req, res);
        if (pending) await pending;
      }
    } catch (err) {
      fail(err, res);
    }
  };

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const route = claims(req.method ?? '', req.url ?? '');
    if (!route) return void fallback(req, res);
    const hotReq = req as HttpRequest;
    const hotRes = res as HttpResponse;
    hotRes.locals = {} as Express.Locals;
    // `fail` answers every error; should it throw itself, the connection is cut (express's final handler would answer 500).
    run(route, hotReq, hotRes).catch(() => res.destroy());
  };
  return {
    routes: routes.map((r) => ({ method: r.method, pattern: r.pattern, before: r.before.map((s) => s.name) })),
    claims,
    listener,
  };
}

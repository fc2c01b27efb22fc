import { randomUUID } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { CofferError } from '../errors.js';
import { auditRequests } from './audit.js';
import { clientAddress, trustedProxies } from './client-address.js';
import { authenticate } from './authenticate.js';
import type { AppDeps } from './deps.js';
import { keyProviderMetrics, requestMetrics, storeMetrics } from './metrics.js';
import { errorHandler } from './respond-error.js';
import { routerOptions } from './router.js';
import { metricsRoute, publicSysRoutes, sysRoutes } from './routes/sys.js';
import { secretsRoutes } from './routes/secrets.js';
import { byokRoutes } from './routes/byok.js';
import { transitRoutes } from './routes/transit.js';
import { accessRoutes, jwksRoute } from './routes/access.js';
import { loginAdminRoutes, loginRoutes } from './routes/logins.js';
import { refuseStaleReads, replicationRoutes } from './routes/replication.js';
import { backupRoutes } from './routes/backup.js';
import { openapiRoute } from './openapi.js';
import { uiRoutes } from './ui.js';
import { vaultEdge, vaultRoutes } from './vault/index.js';

export type { AppDeps };

/**
 * Builds the express app. It never listens: main.ts does, and tests drive it in-process.
 * All routes live on one flat router (nested routers cost measurable time per request):
 * first the routes that answer while sealed, then the seal gate and authentication, then the
 * secrets routes (the hot path) and the admin routes.
 */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag'); // an ETag of a secret body would be an equality oracle
  app.set('case sensitive routing', true);
  app.set('strict routing', true);
  app.set('query parser', 'simple');
  app.set('trust proxy', false);

  const router = express.Router(routerOptions);
  router.use((_req: Request, res: Response, next: NextFunction) => {
    const id = randomUUID();
    res.locals.requestId = id;
    res.setHeaders(
      new Map([
        ['X-Request-Id', id],
        ['Cache-Control', 'no-store'],
        ['X-Content-Type-Options', 'nosniff'],
      ]),
    );
    next();
  });
  router.use(vaultEdge(deps.vault));
  router.use(requestMetrics(deps.metrics));
  if (deps.lifecycle) {
    const lifecycle = deps.lifecycle;
    router.use((_req: Request, res: Response, next: NextFunction) => {
      if (lifecycle.draining) res.setHeader('Connection', 'close'); // a draining server keeps no connection open
      next();
    });
  }
  // One client address per request, decided once here (the socket peer, or X-Forwarded-For from
  // a trusted proxy; client-address.ts), so the login limits, approle CIDR bindings and the
  // audit log cannot disagree about who is asking.
  const proxies = trustedProxies(deps.trustedProxies ?? []);
  router.use((req: Request, res: Response, next: NextFunction) => {
    res.locals.clientAddress = clientAddress(req, proxies);
    next();
  });
  keyProviderMetrics(deps.metrics, deps.seal);
  storeMetrics(deps.metrics, deps.store);
  publicSysRoutes(router, deps);
  uiRoutes(router, deps); // the dashboard loads while sealed: it shows the seal status
  openapiRoute(router, { version: deps.version, metricsPublic: deps.metricsPublic === true });
  if (deps.metricsPublic) metricsRoute(router, deps);
  router.use((_req: Request, _res: Response, next: NextFunction) => {
    deps.seal.requireUnsealed(); // sealed or not initialized: 503 before any token is looked at
    next();
  });
  jwksRoute(router, deps);
  router.use(auditRequests(deps.audit));
  // A stale or loading replica must not issue tokens either (a user or role deleted on the
  // primary would still log in here): the gate comes before the logins. Health, seal status
  // and the JWKS are above it; the replication routes let themselves through it.
  router.use(refuseStaleReads(deps));
  loginRoutes(router, deps);
  router.use(authenticate(() => deps.access));
  replicationRoutes(router, deps);
  secretsRoutes(router, deps);
  vaultRoutes(router, deps);
  transitRoutes(router, deps);
  accessRoutes(router, deps);
  loginAdminRoutes(router, deps);
  sysRoutes(router, deps);
  byokRoutes(router, deps);
  backupRoutes(router, deps);
  if (!deps.metricsPublic) metricsRoute(router, deps);
  router.use((_req: Request, _res: Response) => {
    throw new CofferError('not_found', 'no such route');
  });
  app.use(router);
  app.use(errorHandler(deps.log));
  return app;
}

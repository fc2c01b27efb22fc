import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Express, type Request, type Response } from 'express';
import { CofferError } from '../errors.js';
import { auditRequests } from './audit.js';
import { trustedProxies } from './client-address.js';
import { authenticate } from './authenticate.js';
import type { AppDeps } from './deps.js';
import { closeWhenDraining, resolveClientAddress, sealGate, stampRequest, type Step } from './edge.js';
import { hotDispatcher, useSteps, type HotDispatch } from './hot.js';
import { keyProviderMetrics, requestMetrics, storeMetrics } from './metrics.js';
import { errorHandler, respondError } from './respond-error.js';
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

/** The request listener main.ts serves and tests drive in-process; `express` is the app behind the hot dispatcher. */
export interface App {
  (req: IncomingMessage, res: ServerResponse): void;
  readonly express: Express;
  readonly hot: HotDispatch;
}

/**
 * Builds the app. It never listens: main.ts does, and tests drive it in-process.
 * All routes live on one flat router (nested routers cost measurable time per request):
 * first the routes that answer while sealed, then the seal gate and authentication, then the
 * secrets routes (the hot path) and the admin routes. The hot routes (hot.ts) are also
 * answered without express, through the same steps (`useSteps`), in the same order.
 */
export function createApp(deps: AppDeps): App {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag'); // an ETag of a secret body would be an equality oracle
  app.set('case sensitive routing', true);
  app.set('strict routing', true);
  app.set('trust proxy', false);

  // Every request, in this order.
  const edge: Step[] = [
    stampRequest,
    vaultEdge(deps.vault),
    requestMetrics(deps.metrics),
    ...(deps.lifecycle ? [closeWhenDraining(deps.lifecycle)] : []),
    resolveClientAddress(trustedProxies(deps.trustedProxies ?? [])),
  ];
  // Before anything that needs the keys: the seal gate; then every answer waits for its audit
  // line. A stale or loading replica must not issue tokens either (a user or role deleted on the
  // primary would still log in here): its gate comes before the logins. Health, seal status and
  // the JWKS are above it; the replication routes let themselves through it.
  const unsealed = sealGate(deps.seal);
  const audited: Step[] = [auditRequests(deps.audit), refuseStaleReads(deps)];
  const token = authenticate(() => deps.access);

  const router = express.Router(routerOptions);
  useSteps(router, ...edge);
  keyProviderMetrics(deps.metrics, deps.seal);
  storeMetrics(deps.metrics, deps.store);
  publicSysRoutes(router, deps);
  uiRoutes(router, deps); // the dashboard loads while sealed: it shows the seal status
  openapiRoute(router, { version: deps.version, metricsPublic: deps.metricsPublic === true });
  if (deps.metricsPublic) metricsRoute(router, deps);
  useSteps(router, unsealed);
  jwksRoute(router, deps);
  useSteps(router, ...audited);
  loginRoutes(router, deps);
  useSteps(router, token);
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

  const dispatch = hotDispatcher(router, respondError(deps.log), app);
  return Object.assign(dispatch.listener, { express: app, hot: dispatch });
}

import { randomUUID } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { CofferError } from '../errors.js';
import { authenticate } from './authenticate.js';
import type { AppDeps } from './deps.js';
import { requestMetrics } from './metrics.js';
import { errorHandler } from './respond-error.js';
import { routerOptions } from './router.js';
import { metricsRoute, publicSysRoutes, sysRoutes } from './routes/sys.js';
import { secretsRoutes } from './routes/secrets.js';

export type { AppDeps };

/** Builds the express app. It never listens: main.ts does, and tests drive it in-process. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag'); // an ETag of a secret body would be an equality oracle
  app.set('case sensitive routing', true);
  app.set('strict routing', true);
  app.set('query parser', 'simple');
  app.set('trust proxy', false);

  app.use((req: Request, res: Response, next: NextFunction) => {
    const id = randomUUID();
    res.locals.requestId = id;
    res.setHeader('X-Request-Id', id);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.use(requestMetrics(deps.metrics));
  app.use(publicSysRoutes(deps));
  if (deps.metricsPublic) app.use(metricsRoute(deps));

  const sealedGate = (_req: Request, _res: Response, next: NextFunction) => {
    deps.seal.keys(); // throws sealed / not_initialized
    next();
  };
  const protectedRoutes = express.Router(routerOptions);
  protectedRoutes.use(sealedGate, authenticate(() => deps.access));
  protectedRoutes.use(sysRoutes(deps));
  if (!deps.metricsPublic) protectedRoutes.use(metricsRoute(deps));
  protectedRoutes.use(secretsRoutes(deps));
  app.use(protectedRoutes);

  app.use((_req: Request, _res: Response) => {
    throw new CofferError('not_found', 'no such route');
  });
  app.use(errorHandler(deps.log));
  return app;
}

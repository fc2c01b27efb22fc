import type { Response, Router } from 'express';
import { CofferError } from '../../errors.js';
import { identityOf, requireCapability } from '../authenticate.js';
import { jsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import type { Step } from '../edge.js';
import parseurl from 'parseurl';
import { methods } from '../router.js';
import { emptyBody } from '../../../sdk/wire/schemas.js';
import type { PromoteResult, ReplicationStatus } from '../../../sdk/wire/types.js';
import { timestamp } from '../../../sdk/wire/time.js';
import { validate } from '../validate.js';

/** GET /v1/sys/replication, POST …/promote and …/snapshot (admin on sys/replication). */
export function replicationRoutes(router: Router, deps: AppDeps): void {
  const admin = (res: Response) => requireCapability(deps.access, res, 'admin', 'sys/replication');
  const replication = () => {
    if (!deps.replication || deps.replication.configured === 'standalone')
      throw new CofferError('not_found', 'replication is not configured on this server');
    return deps.replication;
  };

  methods(router, '/v1/sys/replication', {
    get: (_req, res) => {
      admin(res);
      res.json(
        (deps.replication?.status() ?? {
          role: 'standalone',
          epoch: 0,
          last_seq: deps.store.lastSeq,
          targets: [],
          primary: '',
          lag_seq: 0,
          lag_ms: 0,
          stale: false,
          fenced: null,
          writes_from: null,
          replica: null,
        }) satisfies ReplicationStatus,
      );
    },
  });

  methods(router, '/v1/sys/replication/promote', {
    post: [
      jsonBody,
      async (req, res) => {
        validate(emptyBody, req.body);
        admin(res);
        const result = await replication().promote();
        deps.log.warn(
          { request_id: res.locals.requestId, identity: identityOf(res).id, epoch: result.epoch },
          'replica promoted to primary',
        );
        res.json({
          epoch: result.epoch,
          writes_from: timestamp(result.writes_from || Date.now()),
        } satisfies PromoteResult);
      },
    ],
  });

  methods(router, '/v1/sys/replication/snapshot', {
    post: [
      jsonBody,
      (req, res) => {
        validate(emptyBody, req.body);
        admin(res);
        replication().requestSnapshot();
        res.status(202).json({ requested: true });
      },
    ],
  });
}

/**
 * A replica whose last verified head is older than max_staleness (or that is loading a
 * snapshot) answers logins and token-authenticated requests with 503 replica_stale: a frozen
 * bucket must not keep a revoked token, a deleted user or a deleted role working here.
 * The replication routes stay reachable (status, and promotion when the primary is gone).
 */
export function refuseStaleReads(deps: AppDeps): Step {
  return function refuseStaleReads(req) {
    if (deps.replication?.refusesReads() && !isReplicationRoute(parseurl(req)?.pathname ?? '')) {
      throw new CofferError(
        'replica_stale',
        'this replica has not verified a fresh head from the primary within max_staleness; try the primary or retry later',
      );
    }
  };
}

const isReplicationRoute = (path: string) => path === '/v1/sys/replication' || path.startsWith('/v1/sys/replication/');

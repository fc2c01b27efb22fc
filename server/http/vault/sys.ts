import type { Request, Response, Router } from 'express';
import { CofferError } from '../../errors.js';
import { validateQuery } from '../validate.js';
import type { VaultSettings } from './mounts.js';
import { envelope, rawRest, vaultMethods } from './route.js';
import { emptyQuery } from '../../../sdk/wire/schemas.js';

/**
 * A KV mount as `sys/mounts` and the CLI's preflight describe it; `options.version` is a string
 * in Vault's answers. Any valid token reads these, so the mount's Coffer prefix is not in them:
 * it would name namespaces a token may have no rule on.
 */
function mountInfo(mount: string) {
  return {
    type: 'kv',
    description: 'Coffer secrets (KV version 2)',
    accessor: `kv_${mount}`,
    config: { default_lease_ttl: 0, max_lease_ttl: 0, force_no_cache: false },
    options: { version: '2' },
    local: false,
    seal_wrap: false,
    external_entropy_access: false,
  };
}

/** `sys/internal/ui/mounts/<path>` (the `vault` CLI's KV preflight) and `sys/mounts`: the KV mounts, for any valid token. */
export function mountRoutes(router: Router, settings: VaultSettings): void {
  vaultMethods(router, '/v1/sys/internal/ui/mounts/*path', {
    get: (req: Request, res: Response) => {
      validateQuery(emptyQuery, req);
      const mount = rawRest(req, '/v1/sys/internal/ui/mounts/').split('/')[0] ?? '';
      if (!settings.kvMounts.has(mount)) throw new CofferError('not_found', 'no KV mount at this path');
      res.json(envelope(res, { path: `${mount}/`, ...mountInfo(mount) }));
    },
  });

  vaultMethods(router, '/v1/sys/mounts', {
    get: (req: Request, res: Response) => {
      validateQuery(emptyQuery, req);
      const mounts = Object.fromEntries([...settings.kvMounts.keys()].map((mount) => [`${mount}/`, mountInfo(mount)]));
      // Vault repeats the mounts at the top level beside `data` (older clients read them there).
      res.json({ ...mounts, ...envelope(res, mounts) });
    },
  });
}

/** Vault's fields of `sys/health`, beside Coffer's own (routes/sys.ts): a replica stands for Vault's standby. */
export function vaultHealthFields(standby: boolean, nowMs: number) {
  return {
    standby,
    performance_standby: false,
    replication_performance_mode: 'disabled',
    replication_dr_mode: 'disabled',
    server_time_utc: Math.floor(nowMs / 1000),
    cluster_name: 'coffer',
  };
}

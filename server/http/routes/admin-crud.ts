import type { Response, Router } from 'express';
import { CofferError } from '../../errors.js';
import type { AccessControl } from '../../auth/access.js';
import { requireCapability } from '../authenticate.js';
import { jsonBody } from '../body.js';
import { methods } from '../router.js';
import type { NameList } from '../../../sdk/wire/types.js';

/** One named admin object type (policies, groups, users, roles) and how to store it. */
export interface CrudSpec<T> {
  /** Collection route, e.g. `/v1/policies`; items live at `<base>/:name`. */
  base: string;
  /** Capability path prefix under `sys/`, e.g. `policies` or `auth/userpass`. */
  area: string;
  /** Word for messages: `policy`, `group`, `user`, `role`. */
  kind: string;
  /** Checks the name from the URL (throws 400). */
  checkName(name: unknown): string;
  list(): string[] | Promise<string[]>;
  get(name: string): T | undefined | Promise<T | undefined>;
  /** Validates the body and stores it; returns what to answer. */
  put(name: string, body: unknown): Promise<T>;
  delete(name: string): Promise<boolean>;
  /**
   * What else ends with the object (TokenService.cutOff: the tokens a login issued, a group
   * tokens carry). Run after every delete, even of nothing, so a delete retried after a failed
   * cut-off still cuts.
   */
  cutOff?(name: string): Promise<void>;
}

/**
 * GET (list), GET/PUT/DELETE by name, each requiring `admin` on `sys/<area>[/<name>]`. The
 * name is checked before the capability, the body before anything is stored.
 */
export function adminCrud<T>(router: Router, access: AccessControl, spec: CrudSpec<T>): void {
  const admin = (res: Response, name?: string) =>
    requireCapability(access, res, 'admin', name ? `sys/${spec.area}/${name}` : `sys/${spec.area}`);
  const missing = (name: string) => new CofferError('not_found', `${spec.kind} ${name} not found`);

  methods(router, spec.base, {
    get: async (_req, res) => {
      admin(res);
      res.json({ keys: await spec.list() } satisfies NameList);
    },
  });
  methods(router, `${spec.base}/:name`, {
    get: async (req, res) => {
      const name = spec.checkName(req.params.name);
      admin(res, name);
      const item = await spec.get(name);
      if (item === undefined) throw missing(name);
      res.json(item satisfies T);
    },
    put: [
      jsonBody,
      async (req, res) => {
        const name = spec.checkName(req.params.name);
        admin(res, name);
        res.json((await spec.put(name, req.body)) satisfies T);
      },
    ],
    delete: async (req, res) => {
      const name = spec.checkName(req.params.name);
      admin(res, name);
      const existed = await spec.delete(name);
      await spec.cutOff?.(name);
      if (!existed) throw missing(name);
      res.status(204).end();
    },
  });
}

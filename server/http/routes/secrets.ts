import type { Request, Response, Router } from 'express';
import parseurl from 'parseurl';
import { CofferError, isCofferError } from '../../errors.js';
import { parseUrlPath } from '../../paths.js';
import { identityOf, requireCapability } from '../authenticate.js';
import { jsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import { batchBody, deleteQuery, emptyQuery, durationMs, listQuery, putSecretBody, readQuery, versionsBody } from '../schemas.js';
import { validate } from '../validate.js';
import { methods } from '../router.js';

const ACTIONS = ['undelete', 'destroy'] as const;

/**
 * The secret path of a request, from the raw URL (express has already decoded its params, and
 * a decoded '%2F' would look like a separator). Query and fragment never take part.
 */
function secretPath(req: Request, prefix: string): string {
  const pathname = parseurl(req)?.pathname ?? '';
  if (!pathname.startsWith(prefix)) throw new CofferError('invalid_path', 'path is invalid');
  return parseUrlPath(pathname.slice(prefix.length));
}

export function secretsRoutes(router: Router, deps: AppDeps): void {
  const { secrets, access } = deps;
  const can = (res: Response, capability: Parameters<typeof requireCapability>[2], path: string) =>
    requireCapability(access, res, capability, path);

  methods(router, '/v1/secrets', {
    get: async (req, res) => {
      const query = validate(listQuery, req.query, 'query');
      const prefix = query.prefix ?? '';
      if (query.expiring_within !== undefined) {
        const found = await secrets.expiring(durationMs(query.expiring_within));
        const permissions = access.permissions(identityOf(res));
        res.json({ secrets: found.filter((s) => permissions.allows('list', s.path)) });
        return;
      }
      // Listing shows only the paths the caller may list; `next` still follows the scan, so
      // pages may be short but pagination never skips or repeats.
      const permissions = access.permissions(identityOf(res));
      if (!permissions.mayReachBelow('list', prefix)) throw new CofferError('forbidden', `permission denied: list on ${prefix || '(all)'}`);
      const page = await secrets.list(prefix, query.after, query.limit ?? 100);
      res.json({ keys: page.keys.filter((k) => permissions.allows('list', k)), next: page.next });
    },
  });

  methods(router, '/v1/secrets\\:batch', {
    post: [
      jsonBody,
      async (req, res) => {
        const { paths } = validate(batchBody, req.body);
        const identity = identityOf(res);
        const found: Record<string, unknown> = {};
        const errors: Record<string, { code: string; message: string }> = {};
        for (const path of new Set(paths)) {
          if (!access.authorize(identity, 'read', path)) {
            errors[path] = { code: 'forbidden', message: `permission denied: read on ${path}` };
            continue;
          }
          try {
            const secret = await secrets.get(path);
            if (secret) found[path] = secret;
            else errors[path] = { code: 'not_found', message: `secret ${path} not found` };
          } catch (e) {
            if (!isCofferError(e, 'integrity_error')) throw e;
            deps.log.error({ request_id: res.locals.requestId, path }, 'integrity check failed');
            errors[path] = { code: e.code, message: e.message };
          }
        }
        res.json({ secrets: found, errors });
      },
    ],
  });

  methods(router, '/v1/secrets/*path', {
    get: async (req, res) => {
      const path = secretPath(req, '/v1/secrets/');
      const { version } = validate(readQuery, req.query, 'query');
      can(res, 'read', path);
      const secret = await secrets.get(path, version);
      if (!secret) throw new CofferError('not_found', version ? `secret ${path} has no readable version ${version}` : `secret ${path} not found`);
      res.json(secret);
    },
    put: [
      jsonBody,
      async (req, res) => {
        const path = secretPath(req, '/v1/secrets/');
        validate(emptyQuery, req.query, 'query');
        const body = validate(putSecretBody, req.body);
        can(res, secrets.metadata(path) ? 'update' : 'create', path);
        res.json(await secrets.put(path, body));
      },
    ],
    delete: async (req, res) => {
      const path = secretPath(req, '/v1/secrets/');
      const { versions } = validate(deleteQuery, req.query, 'query');
      can(res, 'delete', path);
      if (!(await secrets.delete(path, versions))) throw new CofferError('not_found', `secret ${path} not found`);
      res.status(204).end();
    },
    post: [
      jsonBody,
      async (req, res) => {
        const full = secretPath(req, '/v1/secrets/');
        const cut = full.lastIndexOf('/');
        const action = full.slice(cut + 1) as (typeof ACTIONS)[number];
        if (cut < 0 || !ACTIONS.includes(action)) throw new CofferError('not_found', 'no such action: POST /v1/secrets/<path>/undelete or /destroy');
        const path = full.slice(0, cut);
        const { versions } = validate(versionsBody, req.body);
        can(res, action === 'destroy' ? 'destroy' : 'update', path);
        const done = action === 'destroy' ? await secrets.destroy(path, versions) : await secrets.undelete(path, versions);
        if (!done) throw new CofferError('not_found', `secret ${path} not found`);
        res.status(204).end();
      },
    ],
  });

  methods(router, '/v1/metadata/*path', {
    get: (req, res) => {
      const path = secretPath(req, '/v1/metadata/');
      validate(emptyQuery, req.query, 'query');
      can(res, 'read', path);
      const meta = secrets.metadata(path);
      if (!meta) throw new CofferError('not_found', `secret ${path} not found`);
      const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
      res.json({
        path,
        type: meta.type,
        current_version: meta.current_version,
        metadata: meta.metadata,
        created_at: iso(meta.created_at),
        updated_at: iso(meta.updated_at),
        versions: meta.versions.map((v) => ({
          version: v.version,
          type: v.type,
          created_at: iso(v.created_at),
          deleted_at: iso(v.deleted_at),
          destroyed: v.destroyed,
          expires_at: iso(v.expires_at),
        })),
      });
    },
  });
}

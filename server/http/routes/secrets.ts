import type { IncomingMessage } from 'node:http';
import type { Router } from 'express';
import parseurl from 'parseurl';
import { CofferError, isCofferError } from '../../errors.js';
import { parseUrlPath } from '../../paths.js';
import { identityOf, requireCapability, writeCheck } from '../authenticate.js';
import { jsonBody, readJsonBody } from '../body.js';
import { hot } from '../hot.js';
import { sendJson } from '../respond.js';
import type { AppDeps } from '../deps.js';
import type { StoredSecret } from '../../secrets/engine.js';
import {
  batchBody,
  deleteQuery,
  listQuery,
  putSecretBody,
  readQuery,
  versionsBody,
} from '../../../sdk/wire/schemas.js';
import type { BatchResult, ExpiringResult, ListResult, Secret, SecretMetadata } from '../../../sdk/wire/types.js';
import { validate, validateQuery } from '../validate.js';
import { CURSOR, ListCursors } from '../list-cursor.js';
import type { AuditPathOutcome } from '../../../sdk/wire/audit.js';
import { methods } from '../router.js';
import { batchWriteRoute } from './batch-write.js';

const ACTIONS = ['undelete', 'destroy'] as const;

/**
 * A stored version on the native wire: every value a string. A value written through the Vault
 * API as other JSON (a number, a list) is given as its JSON text (docs/vault-compatibility.md).
 */
function wireSecret(secret: StoredSecret): Secret {
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries(secret.data))
    data[key] = typeof value === 'string' ? value : JSON.stringify(value);
  return { ...secret, data };
}

/**
 * The secret path of a request, from the raw URL (express has already decoded its params, and
 * a decoded '%2F' would look like a separator). Query and fragment never take part.
 */
function secretPath(req: IncomingMessage, prefix: string): string {
  const pathname = parseurl(req)?.pathname ?? '';
  if (!pathname.startsWith(prefix)) throw new CofferError('invalid_path', 'path is invalid');
  return parseUrlPath(pathname.slice(prefix.length));
}

/** Names one listing request may look at, visible or not: bounds the work a sparse view costs. */
const SCAN_BUDGET = 5000;

/** `expiring_within` (`3600`, `90m`, `12h`, `30d`, already validated by listQuery) in milliseconds. */
export function durationMs(text: string): number {
  const unit = text.at(-1)!;
  const scale = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit as 's'] ?? 1_000;
  return Number(/[smhd]$/.test(text) ? text.slice(0, -1) : text) * scale;
}

export function secretsRoutes(router: Router, deps: AppDeps): void {
  const { secrets, access } = deps;
  const cursors = new ListCursors();
  const can = (res: { locals: Express.Locals }, capability: Parameters<typeof requireCapability>[2], path: string) =>
    requireCapability(access, res, capability, path);

  methods(router, '/v1/secrets', {
    get: async (req, res) => {
      const query = validateQuery(listQuery, req);
      const prefix = query.prefix ?? '';
      if (query.expiring_within !== undefined) {
        const found = await secrets.expiring(durationMs(query.expiring_within));
        const permissions = access.permissions(identityOf(res));
        res.json({ secrets: found.filter((s) => permissions.allows('list', s.path)) } satisfies ExpiringResult);
        return;
      }
      const identity = identityOf(res);
      const permissions = access.permissions(identity);
      if (!permissions.mayReachBelow('list', prefix))
        throw new CofferError('forbidden', `permission denied: list on ${prefix || '(all)'}`);
      const scope = { prefix, identity: identity.id };
      const after =
        query.after !== undefined && CURSOR.test(query.after) ? cursors.open(query.after, scope) : query.after;
      const page = await visiblePage(prefix, after, query.limit ?? 100, (k) => permissions.allows('list', k));
      res.json({
        keys: page.keys,
        next:
          page.resumeAfter === null
            ? null
            : page.resumeAfter === page.keys.at(-1)
              ? page.resumeAfter
              : cursors.seal(page.resumeAfter, scope),
      } satisfies ListResult);
    },
  });

  /**
   * Up to `limit` names the caller may list, scanning at most SCAN_BUDGET names per request.
   * `resumeAfter` is the last name looked at when more may follow: the last visible name when
   * the page is full, or a hidden one when the budget ran out first (then sealed into a cursor,
   * so `next` never names a key the caller cannot see).
   */
  async function visiblePage(
    prefix: string,
    after: string | undefined,
    limit: number,
    visible: (k: string) => boolean,
  ) {
    const keys: string[] = [];
    let cursor = after;
    for (let scanned = 0; scanned < SCAN_BUDGET;) {
      const page = await secrets.list(prefix, cursor, Math.min(1000, SCAN_BUDGET - scanned));
      for (const key of page.keys) {
        if (!visible(key)) continue;
        if (keys.length === limit) return { keys, resumeAfter: keys.at(-1)! };
        keys.push(key);
      }
      scanned += page.keys.length;
      if (page.next === null) return { keys, resumeAfter: null };
      cursor = page.next;
    }
    return { keys, resumeAfter: cursor! };
  }

  methods(router, '/v1/secrets\\:batch', {
    post: hot(readJsonBody, async function batchRead(req, res) {
      const { paths } = validate(batchBody, req.body);
      const identity = identityOf(res);
      const permissions = access.permissions(identity);
      const found: BatchResult['secrets'] = {};
      const errors: Record<string, { code: string; message: string }> = {};
      // One audit line for the batch, naming every path with its own outcome: each disclosed
      // secret and each denial is on record, as if it had been read alone.
      const audited: AuditPathOutcome[] = [];
      res.locals.auditPaths = audited;
      const fail = (path: string, code: string, message: string) => {
        errors[path] = { code, message };
        audited.push({ path, outcome: code === 'forbidden' ? 'denied' : 'error', error_code: code });
      };
      for (const path of new Set(paths)) {
        if (!permissions.allows('read', path)) {
          fail(path, 'forbidden', `permission denied: read on ${path}`);
          continue;
        }
        try {
          const secret = await secrets.get(path);
          if (secret) {
            found[path] = wireSecret(secret);
            audited.push({ path, outcome: 'ok' });
          } else fail(path, 'not_found', `secret ${path} not found`);
        } catch (e) {
          if (!isCofferError(e, 'integrity_error')) throw e;
          deps.log.error({ request_id: res.locals.requestId, path }, 'integrity check failed');
          fail(path, e.code, e.message);
        }
      }
      sendJson(res, { secrets: found, errors } satisfies BatchResult);
    }),
  });

  batchWriteRoute(router, deps);

  methods(router, '/v1/secrets/*path', {
    get: hot(async function readSecret(req, res) {
      const path = secretPath(req, '/v1/secrets/');
      const { version } = validateQuery(readQuery, req);
      can(res, 'read', path);
      const secret = await secrets.get(path, version);
      if (!secret)
        throw new CofferError(
          'not_found',
          version ? `secret ${path} has no readable version ${version}` : `secret ${path} not found`,
        );
      sendJson(res, wireSecret(secret));
    }),
    put: hot(readJsonBody, async function writeSecret(req, res) {
      const path = secretPath(req, '/v1/secrets/');
      const body = validate(putSecretBody, req.body);
      // One refusal whether or not the secret exists, so a denied caller learns nothing of it (C21).
      res.locals.auditPath = path;
      sendJson(res, await secrets.put(path, body, { authorize: writeCheck(access, identityOf(res), path) }));
    }),
    delete: async (req, res) => {
      const path = secretPath(req, '/v1/secrets/');
      const { versions } = validateQuery(deleteQuery, req);
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
        if (cut < 0 || !ACTIONS.includes(action))
          throw new CofferError('not_found', 'no such action: POST /v1/secrets/<path>/undelete or /destroy');
        const path = full.slice(0, cut);
        const { versions } = validate(versionsBody, req.body);
        can(res, action === 'destroy' ? 'destroy' : 'update', path);
        const done =
          action === 'destroy' ? await secrets.destroy(path, versions) : await secrets.undelete(path, versions);
        if (!done) throw new CofferError('not_found', `secret ${path} not found`);
        res.status(204).end();
      },
    ],
  });

  methods(router, '/v1/metadata/*path', {
    get: async (req, res) => {
      const path = secretPath(req, '/v1/metadata/');
      can(res, 'read', path);
      const meta = await secrets.metadata(path);
      if (!meta) throw new CofferError('not_found', `secret ${path} not found`);
      const iso = (ms: number) => new Date(ms).toISOString();
      const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));
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
          deleted_at: isoOrNull(v.deleted_at),
          destroyed: v.destroyed,
          expires_at: isoOrNull(v.expires_at),
        })),
      } satisfies SecretMetadata);
    },
  });
}

import type { IncomingMessage } from 'node:http';
import type { Request, Response, Router } from 'express';
import { CofferError } from '../../errors.js';
import { parseUrlPath } from '../../paths.js';
import type { JsonValue, SecretMeta, StoredSecret, VersionInfo, WriteCheck } from '../../secrets/engine.js';
import type { Capability } from '../../auth/access.js';
import { identityOf, requireCapability, writeCheck } from '../authenticate.js';
import type { AppDeps } from '../deps.js';
import { validate, validateQuery } from '../validate.js';
import { hot } from '../hot.js';
import { sendJson } from '../respond.js';
import { VAULT_LIST_BUDGET, cofferPath } from './mounts.js';
import { envelope, mergePatchBody, rawRest, vaultBody, vaultMethods } from './route.js';
import {
  kvListQuery,
  kvMetadataBody,
  kvMetadataPatchBody,
  kvMetadataQuery,
  kvPatchBody,
  kvReadQuery,
  kvVersionsBody,
  kvWriteBody,
  emptyQuery,
} from '../../../sdk/wire/schemas.js';

const iso = (ms: number | null) => (ms === null ? '' : new Date(ms).toISOString());

/** Vault's per-version metadata (`data.metadata` of a read, the answer of a write). */
function versionMetadata(meta: Pick<SecretMeta, 'metadata'>, info: VersionInfo) {
  return {
    created_time: iso(info.created_at),
    custom_metadata: customMetadata(meta.metadata),
    deletion_time: iso(info.deleted_at),
    destroyed: info.destroyed,
    version: info.version,
  };
}

/** Vault answers `null` for a secret without custom metadata. */
const customMetadata = (m: Record<string, string>) => (Object.keys(m).length === 0 ? null : m);

/**
 * KV version 2 on one mount (docs/vault-compatibility.md "KV v2"): Vault's routes and answers over
 * the secrets engine and the same policy checks as the native routes (`read` to read, `create` or
 * `update` to write, `delete`, `update` to undelete, `destroy`, `list`); `prefix` is the Coffer
 * path the mount stands for.
 */
export function kvRoutes(router: Router, deps: AppDeps, mount: string, prefix: string): void {
  const { secrets, access } = deps;
  // Names a listing looks at, at most: a Vault listing has no pages, so this bounds one request's work.
  const budget = deps.vault?.listBudget ?? VAULT_LIST_BUDGET;
  const base = `/v1/${mount}`;
  const can = (res: { locals: Express.Locals }, capability: Capability, path: string) =>
    requireCapability(access, res, capability, path);
  const pathOf = (req: IncomingMessage, action: string) =>
    cofferPath(prefix, parseUrlPath(rawRest(req, `${base}/${action}/`)));

  /** Writing needs `create` for a new secret and `update` for an existing one, judged inside the write. */
  const writeAccess = (res: Response, path: string) => {
    res.locals.auditPath = path;
    return writeCheck(access, identityOf(res), path);
  };

  const written = async (res: Response, path: string, version: number) => {
    const meta = await secrets.metadata(path);
    const info = meta?.versions.find((v) => v.version === version);
    if (!meta || !info) throw new CofferError('internal', 'written version is missing');
    res.json(envelope(res, versionMetadata(meta, info)));
  };

  const write = async (req: Request, res: Response) => {
    const path = pathOf(req, 'data');
    validateQuery(emptyQuery, req);
    const body = validate(kvWriteBody, req.body);
    const authorize = writeAccess(res, path);
    const cas = body.options?.cas;
    const result = await secrets.put(
      path,
      { data: body.data, ...(cas !== undefined ? { cas } : {}) },
      { keepMetadata: true, authorize },
    );
    await written(res, path, result.version);
  };

  vaultMethods(router, `${base}/data/*path`, {
    get: hot(async function vaultRead(req, res) {
      const path = pathOf(req, 'data');
      const { version } = validateQuery(kvReadQuery, req);
      can(res, 'read', path);
      const wanted = version === 0 ? undefined : version; // Vault: version 0 is the current one
      const secret = await secrets.get(path, wanted);
      if (secret) {
        sendJson(res, envelope(res, { data: secret.data, metadata: readMetadata(secret) }));
        return;
      }
      // Deleted or destroyed: Vault answers 404 with the version's metadata (clients tell that apart from a secret that never existed).
      const meta = await secrets.metadata(path);
      const info = meta?.versions.find((v) => v.version === (wanted ?? meta.current_version));
      if (!meta || !info) throw new CofferError('not_found', `secret ${path} not found`);
      sendJson(res, envelope(res, { data: null, metadata: versionMetadata(meta, info) }), 404);
    }),
    put: [vaultBody, write],
    post: [vaultBody, write],
    patch: [
      mergePatchBody,
      async (req, res) => {
        const path = pathOf(req, 'data');
        validateQuery(emptyQuery, req);
        const body = validate(kvPatchBody, req.body);
        can(res, 'read', path);
        can(res, 'update', path);
        const current = await secrets.get(path);
        if (!current) throw new CofferError('not_found', `secret ${path} not found`);
        // The version read is this PATCH's own check-and-set; a secret that requires one from the client (as Vault does) gets none implied.
        if (body.options?.cas === undefined && (await secrets.metadata(path))?.cas_required)
          throw new CofferError('invalid_request', `check-and-set is required for ${path}: send options.cas`);
        const data: Record<string, JsonValue> = { ...current.data };
        for (const [key, value] of Object.entries(body.data)) {
          if (value === null) delete data[key];
          else data[key] = mergePatch(data[key], value);
        }
        // The version patched is the check-and-set: a write in between fails this one, never lost.
        const result = await secrets.put(
          path,
          { data, cas: body.options?.cas ?? current.version },
          { keepMetadata: true, authorize: mustExist(path) },
        );
        await written(res, path, result.version);
      },
    ],
    delete: async (req, res) => {
      const path = pathOf(req, 'data');
      validateQuery(emptyQuery, req);
      can(res, 'delete', path);
      if (!(await secrets.delete(path))) throw new CofferError('not_found', `secret ${path} not found`);
      res.status(204).end();
    },
  });

  const versionsAction = (action: 'delete' | 'undelete' | 'destroy', capability: Capability) => {
    const handler = [
      vaultBody,
      async (req: Request, res: Response) => {
        const path = pathOf(req, action);
        validateQuery(emptyQuery, req);
        const { versions } = validate(kvVersionsBody, req.body);
        can(res, capability, path);
        const done =
          action === 'delete'
            ? await secrets.delete(path, versions)
            : action === 'destroy'
              ? await secrets.destroy(path, versions)
              : await secrets.undelete(path, versions);
        if (!done) throw new CofferError('not_found', `secret ${path} not found`);
        res.status(204).end();
      },
    ];
    vaultMethods(router, `${base}/${action}/*path`, { post: handler, put: handler });
  };
  versionsAction('delete', 'delete');
  versionsAction('undelete', 'update');
  versionsAction('destroy', 'destroy');

  /** The names directly below `path` ('' : the mount root) the caller may list; folders end in '/'. */
  const list = async (res: Response, path: string) => {
    res.locals.auditPath = path;
    const permissions = access.permissions(identityOf(res));
    if (!permissions.mayReachBelow('list', path))
      throw new CofferError('forbidden', `permission denied: list on ${path || '(all)'}`);
    const children = new Set<string>();
    const skip = path === '' ? 0 : path.length + 1;
    let after: string | undefined;
    let scanned = 0;
    let truncated = false;
    for (;;) {
      const page = await secrets.list(path, after, 1000);
      for (const key of page.keys) {
        if (key === path || !permissions.allows('list', key)) continue;
        const rest = key.slice(skip);
        const slash = rest.indexOf('/');
        children.add(slash < 0 ? rest : rest.slice(0, slash + 1));
      }
      scanned += page.keys.length;
      if (page.next === null) break;
      if (scanned >= budget) {
        truncated = true;
        break;
      }
      after = page.next;
    }
    if (children.size === 0) throw new CofferError('not_found', `nothing to list below ${path || 'the mount'}`);
    const keys = [...children].sort();
    res.json(
      envelope(
        res,
        { keys },
        truncated ? { warnings: [`listing stopped after ${budget} names: list a deeper prefix`] } : {},
      ),
    );
  };

  // The mount root: only a listing (`LIST secret/metadata`, `GET secret/metadata/?list=true`).
  const root = {
    get: async (req: Request, res: Response) => {
      validateQuery(kvListQuery, req);
      await list(res, prefix);
    },
  };
  vaultMethods(router, `${base}/metadata`, root);
  vaultMethods(router, `${base}/metadata/`, root);

  const setMetadata = async (req: Request, res: Response) => {
    const path = pathOf(req, 'metadata');
    validateQuery(emptyQuery, req);
    const body = validate(kvMetadataBody, req.body);
    const authorize = writeAccess(res, path);
    await secrets.configure(
      path,
      {
        ...(body.custom_metadata !== undefined ? { metadata: body.custom_metadata ?? {} } : {}),
        ...(body.max_versions !== undefined ? { max_versions: body.max_versions } : {}),
        ...(body.cas_required !== undefined ? { cas_required: body.cas_required } : {}),
      },
      { authorize, authorizeLowerLimit: () => can(res, 'destroy', path) },
    );
    res.status(204).end();
  };

  vaultMethods(router, `${base}/metadata/*path`, {
    get: async (req, res) => {
      const raw = rawRest(req, `${base}/metadata/`);
      const query = validateQuery(kvMetadataQuery, req);
      if (query.list) {
        await list(res, cofferPath(prefix, raw.endsWith('/') ? parseUrlPath(raw.slice(0, -1)) : parseUrlPath(raw)));
        return;
      }
      const path = cofferPath(prefix, parseUrlPath(raw));
      can(res, 'read', path);
      const meta = await secrets.metadata(path);
      if (!meta) throw new CofferError('not_found', `secret ${path} not found`);
      res.json(envelope(res, secretMetadata(meta, secrets.versionLimit(meta))));
    },
    put: [vaultBody, setMetadata],
    post: [vaultBody, setMetadata],
    patch: [
      mergePatchBody,
      async (req, res) => {
        const path = pathOf(req, 'metadata');
        validateQuery(emptyQuery, req);
        const body = validate(kvMetadataPatchBody, req.body);
        can(res, 'update', path);
        // The merge happens inside the write, against the metadata it changes: two PATCHes at once each keep the other's keys.
        const patch = body.custom_metadata;
        await secrets.configure(
          path,
          {
            ...(patch === null ? { metadata: {} } : patch !== undefined ? { metadataPatch: patch } : {}),
            ...(body.max_versions !== undefined ? { max_versions: body.max_versions } : {}),
            ...(body.cas_required !== undefined ? { cas_required: body.cas_required } : {}),
          },
          { authorize: mustExist(path), authorizeLowerLimit: () => can(res, 'destroy', path) },
        );
        res.status(204).end();
      },
    ],
    delete: async (req, res) => {
      const path = pathOf(req, 'metadata');
      validateQuery(emptyQuery, req);
      can(res, 'destroy', path);
      await secrets.purge(path); // as Vault: 204 whether or not there was anything to erase
      res.status(204).end();
    },
  });
}

/** A readable version's metadata, from the read itself (no second lookup on the hot path). */
function readMetadata(secret: StoredSecret) {
  return {
    created_time: secret.created_at,
    custom_metadata: customMetadata(secret.metadata),
    deletion_time: '',
    destroyed: false,
    version: secret.version,
  };
}

/** `GET <mount>/metadata/<path>`: Vault's shape, versions keyed by their number as a string. */
function secretMetadata(meta: SecretMeta, limit: number) {
  const versions: Record<string, { created_time: string; deletion_time: string; destroyed: boolean }> = {};
  for (const info of meta.versions)
    versions[String(info.version)] = {
      created_time: iso(info.created_at),
      deletion_time: iso(info.deleted_at),
      destroyed: info.destroyed,
    };
  return {
    cas_required: meta.cas_required ?? false,
    created_time: iso(meta.created_at),
    current_version: meta.current_version,
    custom_metadata: customMetadata(meta.metadata),
    delete_version_after: '0s',
    max_versions: meta.max_versions ?? 0,
    oldest_version: oldestVersion(meta, limit),
    updated_time: iso(meta.updated_at),
    versions,
  };
}

/**
 * Vault's `oldest_version`: 0 until the versions written reach the limit of versions kept (Vault
 * moves it when a write makes `current - oldest >= max`), then the oldest one kept.
 */
function oldestVersion(meta: SecretMeta, limit: number): number {
  const oldest = meta.versions[0]?.version ?? 0;
  return oldest > 1 || meta.current_version >= limit ? oldest : 0;
}

/**
 * A PATCH changes a secret that exists: checked again inside the write, so one purged after it
 * was read is not re-created (by a token that may only update it).
 */
const mustExist =
  (path: string): WriteCheck =>
  (exists) => {
    if (!exists) throw new CofferError('not_found', `secret ${path} not found`);
  };

/** RFC 7386 for one key's value: objects merge (null removes), anything else replaces. */
function mergePatch(target: JsonValue | undefined, patch: JsonValue): JsonValue {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const base: Record<string, JsonValue> =
    target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete base[key];
    else base[key] = mergePatch(base[key], value);
  }
  return base;
}

import type { IncomingMessage } from 'node:http';
import type { RequestHandler, Router } from 'express';
import parseurl from 'parseurl';
import { CofferError } from '../../errors.js';
import { jsonBodyOf } from '../body.js';
import { expressHandlers, type Handlers } from '../router.js';

type Verb = 'get' | 'put' | 'post' | 'patch' | 'delete';

/**
 * Registers the handlers of one Vault route; every other method answers 405 (in Vault's error
 * shape, as everything under these routes; errors.ts). HEAD follows GET.
 */
export function vaultMethods(router: Router, path: string, handlers: Partial<Record<Verb, Handlers>>): void {
  const route = router.route(path);
  for (const [verb, handler] of Object.entries(handlers) as [Verb, Handlers][]) {
    route[verb](...expressHandlers(router, verb, path, handler));
  }
  const allowed = Object.keys(handlers).map((v) => v.toUpperCase());
  if (allowed.includes('GET')) allowed.push('HEAD');
  route.all((_req, res) => {
    res.setHeader('Allow', allowed.join(', '));
    throw new CofferError('method_not_allowed', 'method not allowed on this route');
  });
}

const JSON_TYPE = /^application\/json\s*(;\s*charset=utf-8\s*)?$/i;
const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(;.*)?$/i;
const MERGE_PATCH = /^application\/merge-patch\+json\s*(;\s*charset=utf-8\s*)?$/i;

/**
 * Vault's clients send JSON without a Content-Type (the Go client), or labelled as a form (curl
 * `-d`, node-vault's empty renew): Vault reads every body as JSON, so these routes do too. The
 * body is still read as strict JSON within the same limits; a real form body fails as JSON.
 */
export const vaultBody: RequestHandler = jsonBodyOf(
  (type) => type === undefined || JSON_TYPE.test(type) || FORM_TYPE.test(type),
  'request body must be JSON (application/json, or no Content-Type)',
);

/** PATCH takes a JSON merge patch (RFC 7386) only, as Vault does. */
export const mergePatchBody: RequestHandler = jsonBodyOf(
  (type) => type !== undefined && MERGE_PATCH.test(type),
  'PATCH takes application/merge-patch+json',
);

/** The answer envelope of every Vault response with a body. */
export function envelope(
  res: { locals: Express.Locals },
  data: unknown,
  extra: { auth?: unknown; warnings?: string[] } = {},
) {
  return {
    request_id: res.locals.requestId,
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data,
    wrap_info: null,
    warnings: extra.warnings ?? null,
    auth: extra.auth ?? null,
  };
}

/** The raw path after `base` (still percent-encoded: express has decoded its params, and a decoded '%2F' would look like a separator). */
export function rawRest(req: IncomingMessage, base: string): string {
  const pathname = parseurl(req)?.pathname ?? '';
  if (!pathname.startsWith(base)) throw new CofferError('invalid_path', 'path is invalid');
  return pathname.slice(base.length);
}

import type { AuditPathOutcome } from '../../sdk/wire/audit.js';
import type { ErrorCode } from '../../sdk/wire/errors.js';
import type { Identity } from '../auth/access.js';

/**
 * What the HTTP layer keeps per request in `res.locals` (merged into express's `Locals` below),
 * so each of these reads and writes is typed instead of `any`. A name not declared here would
 * still be `any` (express's index signature): test/server/http/locals.test.ts fails when the
 * server uses one.
 */
export const REQUEST_LOCALS = [
  'requestId',
  'clientAddress',
  'identity',
  'loginIdentity',
  'auditPath',
  'auditPaths',
  'auditEntries',
  'errorCode',
  'vaultErrors',
] as const;

/** One secret of a request that writes several, as its own audit line would name it. */
export interface AuditEntry {
  /** null for an entry whose path broke the path rule. */
  path: string | null;
  status: number;
  error_code?: ErrorCode;
}

export interface RequestLocals {
  /** Set first for every request (app.ts); also `X-Request-Id` and the audit line's `request_id`. */
  requestId: string;
  /** The client address, decided once (app.ts, client-address.ts): limits, CIDR bindings and audit agree. */
  clientAddress: string;
  /** The caller, once the token verified (authenticate.ts); read it with `identityOf(res)`. */
  identity?: Identity;
  /** A login: the identity it logged in as (routes/logins.ts), for the audit line. */
  loginIdentity?: string;
  /** The capability path checked (requireCapability), for the audit line. */
  auditPath?: string;
  /** A batch read: each path with its outcome (routes/secrets.ts), for the audit line. */
  auditPaths?: AuditPathOutcome[];
  /**
   * A batch write: each secret with the status a write of it alone would have answered; the
   * audit gets one line per secret instead of one for the request (routes/secrets.ts).
   */
  auditEntries?: AuditEntry[];
  /** The error code answered (respond-error.ts), for the audit line. */
  errorCode?: ErrorCode;
  /**
   * Errors in Vault's shape (server/http/vault/errors.ts): `only` on the Vault routes, `both`
   * (Coffer's body plus Vault's `errors`) on the paths both APIs share.
   */
  vaultErrors?: 'only' | 'both';
}

// Every name of REQUEST_LOCALS is a field of RequestLocals and the other way round.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const _sameNames: Same<(typeof REQUEST_LOCALS)[number], keyof RequestLocals> = true;
void _sameNames;

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- declaration merging: Express's Locals gains our fields
    interface Locals extends RequestLocals {}
  }
}

/** The matched route's pattern (`/v1/secrets/*path`), or `unmatched`: what audit lines and metrics name, never the raw path. */
export function routePattern(req: { route?: unknown }): string {
  const route = req.route;
  return typeof route === 'object' && route !== null && 'path' in route && typeof route.path === 'string'
    ? route.path
    : 'unmatched';
}

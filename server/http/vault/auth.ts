import type { Request, Response, Router } from 'express';
import { CofferError } from '../../errors.js';
import type { ActiveClaims, TokenService } from '../../auth/tokens.js';
import { bearerToken } from '../authenticate.js';
import type { AppDeps } from '../deps.js';
import { validate, validateQuery } from '../validate.js';
import { envelope, vaultBody, vaultMethods } from './route.js';
import { emptyBody, emptyQuery, vaultRenewBody } from '../../../sdk/wire/schemas.js';

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

/**
 * Vault's `auth` object for a Coffer token (docs/vault-compatibility.md "Tokens"): the accessor
 * is the token's id (`jti`), which names it in revocations and the audit log but does not
 * authenticate; the lease is the time to its effective expiry, which a renewal moves.
 */
export function vaultAuth(token: string, claims: ActiveClaims, nowSeconds: number) {
  return {
    client_token: token,
    accessor: claims.jti,
    policies: claims.policies,
    token_policies: claims.policies,
    identity_policies: [],
    metadata: claims.meta ?? {},
    lease_duration: Math.max(0, claims.expires - nowSeconds),
    renewable: renewable(claims),
    entity_id: claims.sub,
    token_type: 'service',
    orphan: claims.parent === undefined,
    mfa_requirement: null,
    num_uses: 0,
  };
}

const renewable = (claims: ActiveClaims) => claims.root !== true && claims.expires < claims.exp;

/** Where the token came from, as Vault's `path`: init's root token and token/create are Vault's token routes too. */
const loginPath = (method: string) =>
  method === 'root' ? 'auth/token/root' : method === 'token' ? 'auth/token/create' : `auth/${method}/login`;

/** The body fields of a login answer that make it Vault's too: the native fields stay beside them (routes/logins.ts). */
export function vaultLoginFields(res: Response, token: string, claims: ActiveClaims, nowSeconds: number) {
  return envelope(res, null, { auth: vaultAuth(token, claims, nowSeconds) });
}

/** The calling token's claims, verified again (a cache hit): the identity lacks the issue time. */
async function callerClaims(req: Request, tokens: TokenService): Promise<{ token: string; claims: ActiveClaims }> {
  const token = bearerToken(req);
  const claims = token === undefined ? undefined : await tokens.verify(token);
  if (token === undefined || !claims) throw new CofferError('unauthenticated', 'token is not valid: log in again');
  return { token, claims };
}

/** `auth/token/lookup-self`, `renew-self`, `revoke-self` over the token service (the same as /v1/auth/token/self, renew, revoke). */
export function tokenRoutes(router: Router, deps: AppDeps): void {
  const { tokens } = deps.access;

  const lookup = async (req: Request, res: Response) => {
    validateQuery(emptyQuery, req);
    const { claims } = await callerClaims(req, tokens);
    const now = tokens.nowSeconds();
    const issued = claims.ttl_exp ?? claims.exp;
    // The token itself (Vault's `id`) is not echoed: a response never carries a token it did not mint.
    res.json(
      envelope(res, {
        accessor: claims.jti,
        creation_time: claims.iat,
        creation_ttl: issued - claims.iat,
        display_name: claims.sub,
        entity_id: claims.sub,
        expire_time: claims.root ? null : iso(claims.expires),
        explicit_max_ttl: claims.exp - claims.iat,
        groups: claims.groups,
        issue_time: iso(claims.iat),
        meta: claims.meta ?? null, // an empty one is never signed (tokens.ts)
        num_uses: 0,
        orphan: claims.parent === undefined,
        path: loginPath(claims.method),
        policies: claims.policies,
        renewable: renewable(claims),
        ttl: claims.root ? 0 : Math.max(0, claims.expires - now),
        type: 'service',
      }),
    );
  };
  vaultMethods(router, '/v1/auth/token/lookup-self', { get: lookup });

  const renew = [
    vaultBody,
    async (req: Request, res: Response) => {
      validateQuery(emptyQuery, req);
      validate(vaultRenewBody, req.body);
      const { token, claims } = await callerClaims(req, tokens);
      if (claims.root) throw new CofferError('invalid_request', 'the root token is not renewable');
      // The same token, extended in place: Go's renewal loop and consul-template keep using it.
      const renewed = await tokens.renew(claims);
      res.json(envelope(res, null, { auth: vaultAuth(token, renewed, tokens.nowSeconds()) }));
    },
  ];
  vaultMethods(router, '/v1/auth/token/renew-self', { post: renew, put: renew });

  const revoke = [
    vaultBody,
    async (req: Request, res: Response) => {
      validateQuery(emptyQuery, req);
      validate(emptyBody, req.body);
      const { claims } = await callerClaims(req, tokens);
      await tokens.revoke(claims.jti, claims.exp); // with its descendants, until its hard expiry
      deps.log.info({ request_id: res.locals.requestId, by: claims.sub }, 'token revoked');
      res.status(204).end();
    },
  ];
  vaultMethods(router, '/v1/auth/token/revoke-self', { post: revoke, put: revoke });
}

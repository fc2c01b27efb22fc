import type { Response, Router } from 'express';
import { CofferError } from '../../errors.js';
import { checkName } from '../../auth/directory.js';
import type { ActiveClaims } from '../../auth/tokens.js';
import { bearerToken, identityOf, requireCapability } from '../authenticate.js';
import {
  capabilitiesQuery,
  emptyBody,
  groupBody,
  policyBody,
  rotateSigningBody,
  tokenCreateBody,
  tokenRevokeBody,
} from '../../../sdk/wire/schemas.js';
import type {
  Group,
  Jwks,
  LoginResult,
  Policy,
  SigningKeyRotation,
  TokenCapabilities,
  TokenSelf,
} from '../../../sdk/wire/types.js';
import { CAPABILITIES } from '../../../sdk/wire/constants.js';
import { jsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import { methods } from '../router.js';
import { hot } from '../hot.js';
import { sendJson } from '../respond.js';
import { adminCrud } from './admin-crud.js';
import { validate, validateQuery } from '../validate.js';

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

/** What a login or token endpoint returns: the token, with what it grants and its effective expiry. */
export function tokenResponse(token: string, claims: ActiveClaims): LoginResult {
  return {
    token,
    expires_at: iso(claims.expires),
    groups: claims.groups,
    policies: claims.policies,
    identity: claims.sub,
  };
}

/** The public JWKS: answers whenever the vault is unsealed, without a token. */
export function jwksRoute(router: Router, deps: AppDeps): void {
  methods(router, '/v1/auth/jwks', {
    get: (_req, res) => {
      deps.seal.requireUnsealed();
      res.setHeader('Cache-Control', 'public, max-age=300');
      res.json(deps.access.tokens.jwks() satisfies Jwks);
    },
  });
}

/** Token self-service, and admin CRUD of policies and groups. */
export function accessRoutes(router: Router, deps: AppDeps): void {
  const { access } = deps;
  const { tokens, directory } = access;
  const admin = (res: Response, what: string) => requireCapability(access, res, 'admin', `sys/${what}`);

  methods(router, '/v1/auth/token/self', {
    get: hot(function tokenSelf(_req, res) {
      const identity = identityOf(res);
      sendJson(res, {
        identity: identity.id,
        groups: identity.groups,
        policies: identity.policies,
        expires_at: iso(identity.exp),
        jti: identity.jti,
        meta: identity.meta,
      } satisfies TokenSelf);
    }),
  });

  // The caller's own grants only (a "what can I do here" check): nothing another token may do is told.
  methods(router, '/v1/auth/token/capabilities', {
    get: (req, res) => {
      const { path } = validateQuery(capabilitiesQuery, req);
      const permissions = access.permissions(identityOf(res));
      res.json({
        path,
        capabilities: CAPABILITIES.filter((c) => c !== 'deny' && permissions.allows(c, path)),
      } satisfies TokenCapabilities);
    },
  });

  methods(router, '/v1/auth/token/renew', {
    post: [
      jsonBody,
      async (req, res) => {
        validate(emptyBody, req.body);
        const token = bearerToken(req)!;
        const claims = await tokens.verify(token);
        if (!claims) throw new CofferError('unauthenticated', 'token is not valid: log in again');
        if (claims.root) throw new CofferError('invalid_request', 'the root token is not renewable');
        // The same token, extended in place: a renewal never forks a second valid token (issue 10).
        res.json(tokenResponse(token, await tokens.renew(claims)));
      },
    ],
  });

  methods(router, '/v1/auth/token/revoke', {
    post: [
      jsonBody,
      async (req, res) => {
        const { token } = validate(tokenRevokeBody, req.body);
        const self = identityOf(res);
        // Revocation records last until the hard expiry (renewals never pass it), and take the
        // token's descendants with it.
        if (token === undefined) {
          await tokens.revoke(self.jti, self.max_exp);
        } else {
          admin(res, 'auth/token/revoke');
          const claims = await tokens.verify(token);
          if (claims) await tokens.revoke(claims.jti, claims.exp); // invalid, expired or revoked: nothing (more) to revoke
        }
        deps.log.info({ request_id: res.locals.requestId, by: self.id }, 'token revoked');
        res.status(204).end();
      },
    ],
  });

  methods(router, '/v1/auth/jwks/rotate', {
    post: [
      jsonBody,
      async (req, res) => {
        const { retire_previous } = validate(rotateSigningBody, req.body);
        admin(res, 'auth/jwks');
        const caller = await tokens.verify(bearerToken(req)!);
        const result = await tokens.rotateSigningKey(retire_previous, caller);
        deps.log.warn(
          { request_id: res.locals.requestId, kid: result.kid, retire_previous },
          'token signing key rotated',
        );
        res.json(result satisfies SigningKeyRotation);
      },
    ],
  });

  methods(router, '/v1/auth/token/create', {
    post: [
      jsonBody,
      async (req, res) => {
        const body = validate(tokenCreateBody, req.body);
        admin(res, 'auth/token/create');
        if (body.orphan) admin(res, 'auth/token/create-orphan');
        for (const g of body.groups) checkName('group', g);
        for (const p of body.policies) checkName('policy', p);
        // Bounded by the minter: a subset of its policies and groups, within its lifetime (mint.ts).
        const { token, claims } = await access.mint(identityOf(res), body);
        deps.log.info(
          {
            request_id: res.locals.requestId,
            by: identityOf(res).id,
            identity: claims.sub,
            parent: claims.parent ?? null,
          },
          'token created',
        );
        res.json(tokenResponse(token, claims));
      },
    ],
  });

  adminCrud<Policy>(router, access, {
    base: '/v1/policies',
    area: 'policies',
    kind: 'policy',
    checkName: (n) => checkName('policy', n),
    list: () => directory.listPolicies(),
    get: (n) => directory.getPolicy(n),
    put: (n, body) => directory.putPolicy(n, validate(policyBody, body).rules),
    delete: (n) => directory.deletePolicy(n),
  });

  adminCrud<Group>(router, access, {
    base: '/v1/groups',
    area: 'groups',
    kind: 'group',
    checkName: (n) => checkName('group', n),
    list: () => directory.listGroups(),
    get: (n) => directory.getGroup(n),
    put: (n, body) => {
      const { policies, members } = validate(groupBody, body);
      return directory.putGroup(n, policies, members ?? []);
    },
    delete: (n) => directory.deleteGroup(n),
    // Tokens that name the group lose it: a group made again later grants them nothing.
    cutOff: (n) => tokens.cutOff(`group:${n}`),
  });
}

import type { Request, Response, Router } from 'express';
import type { z } from 'zod';
import { checkLoginName } from '../../auth/logins.js';
import type { Grant } from '../../auth/logins.js';
import { requireCapability } from '../authenticate.js';
import {
  appRoleBody,
  appRoleLoginBody,
  emptyBody,
  jwtLoginBody,
  userBody,
  userpassLoginBody,
} from '../../../sdk/wire/schemas.js';
import type { AppRole, JwtRole, SecretIdResult, UserpassUser } from '../../../sdk/wire/types.js';
import { jsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import { LoginLimits } from '../login-limits.js';
import { methods } from '../router.js';
import { validate } from '../validate.js';
import { tokenResponse } from './access.js';
import { vaultLoginFields } from '../vault/auth.js';
import { vaultBody } from '../vault/route.js';
import { adminCrud } from './admin-crud.js';

/**
 * Login routes (no token needed), limited on failures only (API.md "Login limits"): an address
 * out of failure budget is refused before its body is read or parsed; the credential check then
 * runs holding a slot of the address's remaining budget (and of the user's, for userpass, before
 * the password hash runs), so parallel attempts cannot check more credentials than the budget;
 * successful logins are never counted and never refused for being parallel, so a CI fan-out of
 * any size logs in.
 */
export function loginRoutes(router: Router, deps: AppDeps): void {
  const limits = new LoginLimits(deps.loginLimits);

  const issue = async (res: Response, grant: Grant, method: string, loginStartedAt: number) => {
    const { token, claims } = await deps.access.tokens.issue({ ...grant, method, loginStartedAt });
    res.locals.loginIdentity = claims.sub;
    deps.log.info({ request_id: res.locals.requestId, identity: claims.sub, method }, 'login');
    // Vault's answer beside Coffer's: Vault's clients read `auth.client_token` (docs/vault-compatibility.md).
    res.json({
      ...tokenResponse(token, claims),
      ...vaultLoginFields(res, token, claims, deps.access.tokens.nowSeconds()),
    });
  };

  /**
   * One login route: address budget, then the body (a malformed one counts as a failure), then
   * the check within the budgets. The slot is taken only once the body is in, so a client
   * trickling its body holds none.
   */
  const login = <T>(
    method: string,
    schema: z.ZodType<T>,
    check: (body: T, address: string) => Promise<Grant>,
    username?: (body: T) => string,
    mounts: readonly string[] = [method],
  ) => {
    const handler = async (req: Request, res: Response) => {
      const startedAt = deps.access.tokens.nowSeconds(); // before the user or role is read (TokenService.issue)
      const address = res.locals.clientAddress; // set by app.ts for every request
      try {
        limits.checkAddress(address, res);
      } catch (e) {
        req.resume(); // refused unread: the body is discarded, never parsed
        throw e;
      }
      let body: T;
      try {
        // Vault's Go client sends its JSON without a Content-Type (vault/route.ts).
        await vaultBody(req, res, () => undefined);
        body = validate(schema, req.body);
      } catch (e) {
        limits.failed(address, e);
        throw e;
      }
      const gone = new AbortController(); // the client hung up while its attempt waited for a slot
      const onClose = () => {
        if (!res.writableEnded) gone.abort();
      };
      res.once('close', onClose);
      let grant: Grant;
      try {
        grant = await limits.attempt(address, res, () => check(body, address), {
          ...(username ? { username: username(body) } : {}),
          signal: gone.signal,
        });
      } finally {
        res.off('close', onClose);
      }
      await issue(res, grant, method, startedAt);
    };
    // PUT as well as POST: Vault's clients write with either. One handler, so one set of limits, for every mount.
    for (const mount of mounts) methods(router, `/v1/auth/${mount}/login`, { post: handler, put: handler });
  };

  login(
    'userpass',
    userpassLoginBody,
    (b) => deps.logins.userpass.login(b.username, b.password),
    (b) => b.username,
  );
  login('jwt', jwtLoginBody, (b) => deps.logins.jwt.login(b.role, b.jwt), undefined, deps.vault?.jwtMounts);
  // The CIDR binding sees the same client address as the limits and the audit log (B18).
  login('approle', appRoleLoginBody, (b, address) => deps.logins.approle.login(b.role_id, b.secret_id, address));
}

/** Admin CRUD of userpass users, approle roles and jwt roles (`admin` on `sys/auth/...`). */
export function loginAdminRoutes(router: Router, deps: AppDeps): void {
  const { userpass, approle, jwt } = deps.logins;
  const checkRole = (n: unknown) => checkLoginName('role', n);
  // Deleting a login ends the tokens it issued.
  const cutOff = (source: string) => deps.access.tokens.cutOff(source);

  adminCrud<UserpassUser>(router, deps.access, {
    base: '/v1/auth/userpass/users',
    area: 'auth/userpass',
    kind: 'user',
    checkName: (n) => checkLoginName('user', n),
    list: () => userpass.list(),
    get: (n) => userpass.get(n),
    put: (n, body) => userpass.put(n, validate(userBody, body)),
    delete: (n) => userpass.delete(n),
    cutOff: (n) => cutOff(`user:${n}`),
  });

  adminCrud<AppRole>(router, deps.access, {
    base: '/v1/auth/approle/roles',
    area: 'auth/approle',
    kind: 'role',
    checkName: checkRole,
    list: () => approle.list(),
    get: (n) => approle.get(n),
    put: (n, body) => {
      const role = validate(appRoleBody, body);
      return approle.put(n, { ...role, secret_id_ttl: role.secret_id_ttl ?? 0 });
    },
    delete: (n) => approle.delete(n),
    cutOff: (n) => cutOff(`approle:${n}`),
  });

  methods(router, '/v1/auth/approle/roles/:name/secret-id', {
    post: [
      jsonBody,
      async (req, res) => {
        const name = checkRole(req.params.name);
        validate(emptyBody, req.body);
        requireCapability(deps.access, res, 'admin', `sys/auth/approle/${name}`);
        res.json((await approle.createSecretId(name)) satisfies SecretIdResult);
      },
    ],
  });

  adminCrud<JwtRole>(router, deps.access, {
    base: '/v1/auth/jwt/roles',
    area: 'auth/jwt',
    kind: 'role',
    checkName: checkRole,
    list: () => jwt.list(),
    get: (n) => jwt.get(n),
    put: (n, body) => jwt.put(n, body),
    delete: (n) => jwt.delete(n),
    cutOff: (n) => cutOff(`jwt:${n}`),
  });
}

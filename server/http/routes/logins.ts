import type { Request, Response, Router } from 'express';
import type { z } from 'zod';
import { checkLoginName } from '../../auth/logins.js';
import type { Grant } from '../../auth/logins.js';
import { requireCapability } from '../authenticate.js';
import { appRoleBody, appRoleLoginBody, jwtLoginBody, userBody, userpassLoginBody } from '../auth-schemas.js';
import { jsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import { RateLimiter, rateLimit } from '../rate-limit.js';
import { methods } from '../router.js';
import { validate } from '../validate.js';
import { tokenResponse } from './access.js';
import { adminCrud } from './admin-crud.js';

/**
 * Login routes (no token needed): per-address limits before the body is read, then per-user or
 * per-role limits, so guessing one account is slow without locking others out.
 */
export function loginRoutes(router: Router, deps: AppDeps): void {
  const limits = deps.loginLimits ?? { perAddress: 60, perAccount: 10 };
  const perAddress = rateLimit({ max: limits.perAddress, windowMs: 60_000 });
  const perAccount = new RateLimiter({ max: limits.perAccount, windowMs: 60_000 });

  const issue = async (res: Response, grant: Grant, method: string) => {
    const { token, claims } = await deps.access.tokens.issue({ ...grant, method });
    res.locals.loginIdentity = claims.sub;
    deps.log.info({ request_id: res.locals.requestId, identity: claims.sub, method }, 'login');
    res.json(tokenResponse(token, claims));
  };

  /** One login route: per-address limit before the body, per-account limit before the check. */
  const login = <T>(method: string, schema: z.ZodType<T>, account: (body: T) => string, check: (body: T, req: Request) => Promise<Grant>) =>
    methods(router, `/v1/auth/${method}/login`, {
      post: [
        perAddress,
        jsonBody,
        async (req, res) => {
          const body = validate(schema, req.body);
          perAccount.hit(`${method}:${account(body).toLowerCase()}`, res);
          await issue(res, await check(body, req), method);
        },
      ],
    });

  login('userpass', userpassLoginBody, (b) => b.username, (b) => deps.logins.userpass.login(b.username, b.password));
  login('jwt', jwtLoginBody, (b) => b.role, (b) => deps.logins.jwt.login(b.role, b.jwt));
  login('approle', appRoleLoginBody, (b) => b.role_id, (b, req) => deps.logins.approle.login(b.role_id, b.secret_id, req.socket.remoteAddress ?? ''));
}

/** Admin CRUD of userpass users, approle roles and jwt roles (`admin` on `sys/auth/...`). */
export function loginAdminRoutes(router: Router, deps: AppDeps): void {
  const { userpass, approle, jwt } = deps.logins;
  const checkRole = (n: unknown) => checkLoginName('role', n);

  adminCrud(router, deps.access, {
    base: '/v1/auth/userpass/users',
    area: 'auth/userpass',
    kind: 'user',
    checkName: (n) => checkLoginName('user', n),
    list: () => userpass.list(),
    get: (n) => userpass.get(n),
    put: (n, body) => userpass.put(n, validate(userBody, body)),
    delete: (n) => userpass.delete(n),
  });

  adminCrud(router, deps.access, {
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
  });

  methods(router, '/v1/auth/approle/roles/:name/secret-id', {
    post: [
      jsonBody,
      async (req, res) => {
        const name = checkRole(req.params.name);
        requireCapability(deps.access, res, 'admin', `sys/auth/approle/${name}`);
        res.json(await approle.createSecretId(name));
      },
    ],
  });

  adminCrud(router, deps.access, {
    base: '/v1/auth/jwt/roles',
    area: 'auth/jwt',
    kind: 'role',
    checkName: checkRole,
    list: () => jwt.list(),
    get: (n) => jwt.get(n),
    put: (n, body) => jwt.put(n, body),
    delete: (n) => jwt.delete(n),
  });
}

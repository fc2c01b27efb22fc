import type { Request, Response, Router } from 'express';
import { CofferError } from '../../errors.js';
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

/**
 * Login routes (no token needed): per-address limits before the body is read, then per-user or
 * per-role limits, so guessing one account is slow without locking others out.
 */
export function loginRoutes(router: Router, deps: AppDeps): void {
  const perAddress = rateLimit({ max: 60, windowMs: 60_000 });
  const perAccount = new RateLimiter({ max: 10, windowMs: 60_000 });

  const issue = async (res: Response, grant: Grant, method: string) => {
    const { token, claims } = await deps.access.tokens.issue({ ...grant, method });
    res.locals.loginIdentity = claims.sub;
    deps.log.info({ request_id: res.locals.requestId, identity: claims.sub, method }, 'login');
    res.json(tokenResponse(token, claims));
  };

  methods(router, '/v1/auth/userpass/login', {
    post: [
      perAddress,
      jsonBody,
      async (req, res) => {
        const { username, password } = validate(userpassLoginBody, req.body);
        perAccount.hit(`user:${username.toLowerCase()}`, res);
        await issue(res, await deps.logins.userpass.login(username, password), 'userpass');
      },
    ],
  });

  methods(router, '/v1/auth/jwt/login', {
    post: [
      perAddress,
      jsonBody,
      async (req, res) => {
        const { role, jwt } = validate(jwtLoginBody, req.body);
        perAccount.hit(`jwt:${role.toLowerCase()}`, res);
        await issue(res, await deps.logins.jwt.login(role, jwt), 'jwt');
      },
    ],
  });

  methods(router, '/v1/auth/approle/login', {
    post: [
      perAddress,
      jsonBody,
      async (req, res) => {
        const { role_id, secret_id } = validate(appRoleLoginBody, req.body);
        perAccount.hit(`approle:${role_id.toLowerCase()}`, res);
        await issue(res, await deps.logins.approle.login(role_id, secret_id, req.socket.remoteAddress ?? ''), 'approle');
      },
    ],
  });
}

/** Admin CRUD of userpass users and approle roles (`admin` on `sys/auth/...`). */
export function loginAdminRoutes(router: Router, deps: AppDeps): void {
  const { userpass, approle, jwt } = deps.logins;
  const admin = (res: Response, what: string) => requireCapability(deps.access, res, 'admin', `sys/auth/${what}`);
  const nameOf = (req: Request, kind: string) => checkLoginName(kind, req.params.name);

  methods(router, '/v1/auth/userpass/users', { get: async (_req, res) => (admin(res, 'userpass'), void res.json({ keys: await userpass.list() })) });
  methods(router, '/v1/auth/userpass/users/:name', {
    get: (req, res) => {
      const name = nameOf(req, 'user');
      admin(res, `userpass/${name}`);
      const user = userpass.get(name);
      if (!user) throw new CofferError('not_found', `user ${name} not found`);
      res.json(user);
    },
    put: [
      jsonBody,
      async (req, res) => {
        const name = nameOf(req, 'user');
        const body = validate(userBody, req.body);
        admin(res, `userpass/${name}`);
        res.json(await userpass.put(name, body));
      },
    ],
    delete: async (req, res) => {
      const name = nameOf(req, 'user');
      admin(res, `userpass/${name}`);
      if (!(await userpass.delete(name))) throw new CofferError('not_found', `user ${name} not found`);
      res.status(204).end();
    },
  });

  methods(router, '/v1/auth/jwt/roles', { get: async (_req, res) => (admin(res, 'jwt'), void res.json({ keys: await jwt.list() })) });
  methods(router, '/v1/auth/jwt/roles/:name', {
    get: (req, res) => {
      const name = nameOf(req, 'role');
      admin(res, `jwt/${name}`);
      const role = jwt.get(name);
      if (!role) throw new CofferError('not_found', `role ${name} not found`);
      res.json(role);
    },
    put: [
      jsonBody,
      async (req, res) => {
        const name = nameOf(req, 'role');
        admin(res, `jwt/${name}`);
        res.json(await jwt.put(name, req.body));
      },
    ],
    delete: async (req, res) => {
      const name = nameOf(req, 'role');
      admin(res, `jwt/${name}`);
      if (!(await jwt.delete(name))) throw new CofferError('not_found', `role ${name} not found`);
      res.status(204).end();
    },
  });

  methods(router, '/v1/auth/approle/roles', { get: async (_req, res) => (admin(res, 'approle'), void res.json({ keys: await approle.list() })) });
  methods(router, '/v1/auth/approle/roles/:name', {
    get: (req, res) => {
      const name = nameOf(req, 'role');
      admin(res, `approle/${name}`);
      const role = approle.get(name);
      if (!role) throw new CofferError('not_found', `role ${name} not found`);
      res.json(role);
    },
    put: [
      jsonBody,
      async (req, res) => {
        const name = nameOf(req, 'role');
        const body = validate(appRoleBody, req.body);
        admin(res, `approle/${name}`);
        res.json(await approle.put(name, { ...body, secret_id_ttl: body.secret_id_ttl ?? 0 }));
      },
    ],
    delete: async (req, res) => {
      const name = nameOf(req, 'role');
      admin(res, `approle/${name}`);
      if (!(await approle.delete(name))) throw new CofferError('not_found', `role ${name} not found`);
      res.status(204).end();
    },
  });
  methods(router, '/v1/auth/approle/roles/:name/secret-id', {
    post: [
      jsonBody,
      async (req, res) => {
        const name = nameOf(req, 'role');
        admin(res, `approle/${name}`);
        res.json(await approle.createSecretId(name));
      },
    ],
  });
}

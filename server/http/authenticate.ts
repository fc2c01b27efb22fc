import type { IncomingMessage } from 'node:http';
import type { AccessControl, Capability, Identity } from '../auth/access.js';
import { CofferError } from '../errors.js';
import type { WriteCheck } from '../secrets/engine.js';
import type { Step } from './edge.js';

const BEARER = /^Bearer ([\x21-\x7e]{1,8192})$/;

/**
 * Reads the token from `Authorization: Bearer` or `X-Vault-Token` (never from the query string
 * or a cookie). Two different tokens, a repeated header or a malformed header are refused.
 */
export function bearerToken(req: IncomingMessage): string | undefined {
  let count = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const raw = req.rawHeaders[i]!;
    if (raw.length !== 13) continue; // both names are 13 characters: most headers need no lower-casing
    const name = raw.toLowerCase();
    if (name === 'authorization' || name === 'x-vault-token') count++;
  }
  const authorization = req.headers.authorization;
  const vaultToken = req.headers['x-vault-token'];
  let fromAuthorization: string | undefined;
  if (authorization !== undefined) {
    const m = BEARER.exec(authorization);
    if (!m) throw new CofferError('invalid_request', 'Authorization header must be "Bearer <token>"');
    fromAuthorization = m[1];
  }
  if (vaultToken !== undefined && (typeof vaultToken !== 'string' || !/^[\x21-\x7e]{1,8192}$/.test(vaultToken))) {
    throw new CofferError('invalid_request', 'X-Vault-Token header is malformed');
  }
  if (count > 1 && !(count === 2 && fromAuthorization !== undefined && fromAuthorization === vaultToken)) {
    throw new CofferError('invalid_request', 'send one token, in Authorization or X-Vault-Token');
  }
  return fromAuthorization ?? vaultToken;
}

/** Establishes `res.locals.identity` or answers 401. */
export function authenticate(access: () => AccessControl): Step {
  return async function authenticate(req, res) {
    const token = bearerToken(req);
    if (!token) throw new CofferError('unauthenticated', 'a token is required: send Authorization: Bearer <token>');
    const identity = await access().authenticate(token);
    if (!identity) throw new CofferError('unauthenticated', 'token is not valid: log in again');
    res.locals.identity = identity;
  };
}

export function identityOf(res: { locals: Express.Locals }): Identity {
  const identity = res.locals.identity;
  if (!identity) throw new CofferError('unauthenticated', 'a token is required');
  return identity;
}

/**
 * Writing a secret needs `create` for a new one and `update` for an existing one, with one
 * refusal either way (C21). A caller with neither is refused now, before the write looks at its
 * data; which one applies is decided by the secrets engine inside the write (WriteCheck).
 */
export function writeCheck(access: AccessControl, identity: Identity, path: string): WriteCheck {
  const create = access.authorize(identity, 'create', path);
  const update = access.authorize(identity, 'update', path);
  const refused = () => new CofferError('forbidden', `permission denied: create or update on ${path}`);
  if (!create && !update) throw refused();
  return (exists) => {
    if (!(exists ? update : create)) throw refused();
  };
}

/** Throws `forbidden` unless the caller holds `capability` on `path`. */
export function requireCapability(
  access: AccessControl,
  res: { locals: Express.Locals },
  capability: Capability,
  path: string,
): void {
  res.locals.auditPath = path;
  if (!access.authorize(identityOf(res), capability, path)) {
    throw new CofferError('forbidden', `permission denied: ${capability} on ${path}`);
  }
}

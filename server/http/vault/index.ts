import type { Router } from 'express';
import { CofferError } from '../../errors.js';
import type { AppDeps } from '../deps.js';
import type { Step } from '../edge.js';
import { pathnameOf } from '../respond.js';
import { tokenRoutes } from './auth.js';
import { kvRoutes } from './kv.js';
import { DEFAULT_VAULT_SETTINGS, type VaultSettings } from './mounts.js';
import { mountRoutes } from './sys.js';

/**
 * The Vault-compatible API (docs/vault-compatibility.md): a thin adapter over the same engines,
 * policy checks and audit as the native routes. `vaultEdge` runs first for every request: it
 * refuses a Vault namespace and a wrapped answer, and marks which requests answer errors in Vault's shape (the Vault
 * routes; both shapes on the paths the two APIs share), so that the seal gate, the token check
 * and the replica gate answer Vault's clients in the form they read.
 */
export function vaultEdge(settings: VaultSettings = DEFAULT_VAULT_SETTINGS): Step {
  const kvMounts = new Set(settings.kvMounts.keys());
  const aliases = new Set(settings.jwtMounts.filter((m) => m !== 'jwt'));
  const tokenSelf = new Set(['lookup-self', 'renew-self', 'revoke-self']);
  const shared = new Set(['/v1/auth/jwt/login', '/v1/auth/approle/login', '/v1/sys/health']);
  // The native API's first segments; any other path under /v1 is an unknown Vault mount to a Vault client.
  const native = new Set(['sys', 'auth', 'secrets', 'secrets:batch', 'metadata', 'keys', 'policies', 'groups']);
  return function vaultEdge(req, res) {
    const path = pathnameOf(req.url ?? '');
    const segments = path.split('/', 5); // ['', 'v1', first, second, third]
    const first = segments[2] ?? '';
    if (kvMounts.has(first)) res.locals.vaultErrors = 'only';
    else if (first === 'sys' && (segments[3] === 'mounts' || (segments[3] === 'internal' && segments[4] === 'ui')))
      res.locals.vaultErrors = 'only';
    else if (
      first === 'auth' &&
      ((segments[3] === 'token' && tokenSelf.has(segments[4] ?? '')) ||
        (aliases.has(segments[3] ?? '') && segments[4] === 'login'))
    )
      res.locals.vaultErrors = 'only';
    else if (shared.has(path) || (segments[1] === 'v1' && !native.has(first))) res.locals.vaultErrors = 'both';
    // A namespace would change what every path means: an empty one (vault-action sends it) is no namespace.
    const namespace = req.headers['x-vault-namespace'];
    if (namespace !== undefined && namespace !== '') {
      throw new CofferError(
        'invalid_request',
        'Vault namespaces are not supported: send no X-Vault-Namespace header (or an empty one)',
      );
    }
    // A client asking for a wrapped answer expects a wrapping token, safe to pass on or log;
    // answering with the secret itself would fail open, so the request is refused.
    const wrap = req.headers['x-vault-wrap-ttl'];
    if (wrap !== undefined && wrap !== '') {
      throw new CofferError(
        'invalid_request',
        'response wrapping is not supported: send no X-Vault-Wrap-TTL header (unset VAULT_WRAP_TTL, drop -wrap-ttl)',
      );
    }
  };
}

/** The token-authenticated Vault routes: KV v2 on each mount, token self-service, the mount listings. */
export function vaultRoutes(router: Router, deps: AppDeps): void {
  const settings = deps.vault ?? DEFAULT_VAULT_SETTINGS;
  for (const [mount, prefix] of settings.kvMounts) kvRoutes(router, deps, mount, prefix);
  tokenRoutes(router, deps);
  mountRoutes(router, settings);
}

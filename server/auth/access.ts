import type { Capability } from '../../sdk/wire/constants.js';

/** Who is calling, as established by authentication. */
export interface Identity {
  /** Stable identity name (e.g. `root`, `user:alice`, `approle:builder`, `jwt:github:...`). */
  id: string;
  /** Effective groups: the token's plus the groups that list the identity as a member. */
  groups: string[];
  /** The groups the token itself carries (a membership can be withdrawn; these cannot). */
  tokenGroups: string[];
  /** Policies attached to the identity directly (besides those of its groups). */
  policies: string[];
  /** The root token bypasses policies; it comes only from init (later: the quorum ceremony). */
  root: boolean;
  /** The token's id and effective expiry now, renewals applied (seconds since the epoch). */
  jti: string;
  exp: number;
  /** The token's hard expiry (its max TTL): renewals never pass it. */
  max_exp: number;
  /** The jti of the token that minted this one (absent for logins and orphans). */
  parent?: string;
  /** Identity details from the login (jwt `claim_mappings`). */
  meta: Record<string, string>;
  /** A minted token's minters (TokenClaims.within): it is allowed nothing any of them is not. */
  within?: Principal[];
}

export { CAPABILITIES, type Capability } from '../../sdk/wire/constants.js';

/** Who minted a token, as far as its access goes (TokenClaims.within). */
export interface Principal {
  sub: string;
  groups: string[];
  policies: string[];
}

/**
 * The auth hook between HTTP and the engines. Routes ask only these two questions, so the
 * policy engine can replace the root-only implementation without any route changing.
 */
export interface AccessControl {
  /** The identity a bearer token stands for, or `undefined` when the token is not valid. */
  authenticate(token: string): Identity | undefined | Promise<Identity | undefined>;
  /** Whether `identity` holds `capability` on `path` (a secret path, or `sys/...`). */
  authorize(identity: Identity, capability: Capability, path: string): boolean;
  /** Whether `identity` may hold `capability` on anything at or below `prefix` ('' = anywhere). */
  authorizeBelow(identity: Identity, capability: Capability, prefix: string): boolean;
  /**
   * The caller's permissions frozen now: a request that awaits I/O between two checks (a listing
   * scan) must answer with one policy version, never the old one for the gate and the new for the filter.
   */
  permissions(identity: Identity): Permissions;
}

export interface Permissions {
  allows(capability: Capability, path: string): boolean;
  mayReachBelow(capability: Capability, prefix: string): boolean;
}

export const ALLOW_ALL: Permissions = { allows: () => true, mayReachBelow: () => true };

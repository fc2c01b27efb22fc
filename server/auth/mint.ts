import { CofferError } from '../errors.js';
import type { Identity } from './access.js';
import type { IssueRequest } from './tokens.js';

/**
 * The bounds of token/create (cases B4, B14): a token grants at most what its minter
 * holds. Without these, a token whose only rule is `admin` on `sys/auth/token/create` could mint
 * `root`/`everything` for a year, or name `user:alice` and inherit alice's groups.
 */

/**
 * Identity namespaces that only init and the login methods produce (`root`, `user:<name>`,
 * `approle:<role>`, `jwt:<role>:<sub>`; the CI logins are jwt roles). Compared case-insensitively
 * on the part before the first separator, so `Root`, `USER:alice` or `user.alice` cannot pose as
 * one in an audit line or a group's member list. (Whitespace and non-ASCII never get this far:
 * the body schema allows only `[A-Za-z0-9:@._/-]`.)
 */
const RESERVED_NAMESPACES = new Set([
  'root',
  'user',
  'userpass',
  'approle',
  'jwt',
  'github',
  'gitlab',
  'kubernetes',
  'oidc',
]);

export function isReservedIdentity(identity: string): boolean {
  const head = identity
    .normalize('NFKC')
    .toLowerCase()
    .split(/[:@./]/, 1)[0]!;
  return RESERVED_NAMESPACES.has(head);
}

export interface MintRequest {
  identity: string;
  groups: string[];
  policies: string[];
  /** Seconds; absent: one hour, cut to what the minter may grant. */
  ttl?: number | undefined;
  max_ttl?: number | undefined;
  /** A token outside the minter's tree (the route checks the capability for it). */
  orphan: boolean;
}

export interface MintFacts {
  nowSeconds: number;
  /** Config `token_max_ttl_s`. */
  maxTtlSeconds: number;
  /** Groups that list `identity` as a member: a minted token would hold them too. */
  membership(identity: string): string[];
  /** How many ancestors the minter has (bounds the tree's depth). */
  minterDepth: number;
  maxDepth: number;
}

const DEFAULT_TTL = 3600;

/** The issue request for a token/create body, or a 400/403 naming what is out of bounds. */
export function boundMint(minter: Identity, request: MintRequest, facts: MintFacts): IssueRequest {
  if (isReservedIdentity(request.identity)) {
    throw new CofferError(
      'invalid_request',
      `identity "${request.identity}" is reserved: root and the login namespaces (user:, approle:, jwt:, ...) come only from init and logins; choose another, such as svc:<name>`,
    );
  }
  if (!minter.root) {
    const held = new Set(minter.policies);
    const policies = request.policies.filter((p) => !held.has(p));
    if (policies.length > 0)
      throw new CofferError('forbidden', `cannot grant policies this token does not hold: ${policies.join(', ')}`);
    // Only the groups the minter's own token carries: a group held through a `members` list can
    // be withdrawn by an administrator, and a child's claim would keep it after that (B5).
    const groups = new Set(minter.tokenGroups);
    const missing = request.groups.filter((g) => !groups.has(g));
    if (missing.length > 0)
      throw new CofferError('forbidden', `cannot grant groups this token does not carry: ${missing.join(', ')}`);
    const inherited = facts.membership(request.identity).filter((g) => !groups.has(g));
    if (inherited.length > 0) {
      throw new CofferError(
        'forbidden',
        `identity ${request.identity} is a member of groups this token does not hold: ${inherited.join(', ')}`,
      );
    }
  }
  if (!request.orphan && facts.minterDepth + 1 > facts.maxDepth) {
    throw new CofferError(
      'forbidden',
      `token tree too deep (at most ${facts.maxDepth} levels): mint from a token nearer the root`,
    );
  }
  // A child never outlives its minter's current expiry (renewing the minter later does not
  // stretch it); root is bounded only by the configured maximum.
  const remaining = minter.root ? Infinity : minter.exp - facts.nowSeconds;
  const bound = Math.min(remaining, facts.maxTtlSeconds);
  const check = (what: string, seconds: number) => {
    if (seconds <= bound) return;
    if (remaining <= facts.maxTtlSeconds)
      throw new CofferError('forbidden', `${what} ${seconds}s exceeds this token's remaining lifetime (${remaining}s)`);
    throw new CofferError('invalid_request', `${what} ${seconds}s exceeds token_max_ttl_s (${facts.maxTtlSeconds}s)`);
  };
  if (request.ttl !== undefined) check('ttl', request.ttl);
  if (request.max_ttl !== undefined) check('max_ttl', request.max_ttl);
  const ttlSeconds = request.ttl ?? Math.min(DEFAULT_TTL, bound);
  // Subsets of the minter's policies and groups bound what a child is granted, not what it is
  // denied: a deny or a membership the minter has and the child lacks would not reach it. So
  // the child carries the minter (and whom the minter carries), and is allowed only what each
  // of them is allowed at the time (service.ts `permissions`). Root is bounded by nothing.
  const within = minter.root
    ? (minter.within ?? [])
    : [{ sub: minter.id, groups: minter.tokenGroups, policies: minter.policies }, ...(minter.within ?? [])];
  if (within.length > facts.maxDepth || JSON.stringify(within).length > MAX_WITHIN_BYTES)
    throw new CofferError(
      'forbidden',
      'the chain of tokens this one was minted from is too large to carry: mint from a token nearer the root',
    );
  return {
    sub: request.identity,
    groups: request.groups,
    policies: request.policies,
    ttlSeconds,
    maxTtlSeconds: Math.max(request.max_ttl ?? ttlSeconds, ttlSeconds),
    method: 'token',
    ...(request.orphan ? {} : { parent: minter.jti }),
    ...(within.length > 0 ? { within } : {}),
  };
}

/** What a token's `within` may take of its 8 KiB (tokens.ts refuses longer tokens unread). */
const MAX_WITHIN_BYTES = 3072;

import { ALLOW_ALL, type AccessControl, type Capability, type Identity, type Permissions } from './access.js';
import type { Directory } from './directory.js';
import { boundMint, type MintRequest } from './mint.js';
import { MAX_TREE_DEPTH, type ActiveClaims, type TokenService } from './tokens.js';

/** The access control of a running vault: Coffer JWTs, then groups and path policies. */
export class AuthService implements AccessControl {
  constructor(
    readonly tokens: TokenService,
    readonly directory: Directory,
  ) {}

  async authenticate(token: string): Promise<Identity | undefined> {
    const claims = await this.tokens.verify(token);
    if (!claims) return undefined;
    const tokenGroups = this.tokens.liveGroups(claims.groups, claims.iat); // none deleted since it was issued
    return {
      id: claims.sub,
      groups: this.directory.effectiveGroups(claims.sub, tokenGroups),
      tokenGroups,
      policies: claims.policies,
      root: claims.root === true,
      jti: claims.jti,
      exp: claims.expires,
      max_exp: claims.exp,
      ...(claims.parent ? { parent: claims.parent } : {}),
      ...(claims.within
        ? { within: claims.within.map((p) => ({ ...p, groups: this.tokens.liveGroups(p.groups, claims.iat) })) }
        : {}),
      meta: claims.meta ?? {},
    };
  }

  /** token/create: a child of `minter` holding at most what it holds (see mint.ts). */
  async mint(minter: Identity, request: MintRequest): Promise<{ token: string; claims: ActiveClaims }> {
    const issue = boundMint(minter, request, {
      nowSeconds: this.tokens.nowSeconds(),
      maxTtlSeconds: this.tokens.maxTtlSeconds,
      membership: (identity) => this.directory.effectiveGroups(identity, []),
      minterDepth: this.tokens.depthOf(minter),
      maxDepth: MAX_TREE_DEPTH,
    });
    return this.tokens.issue(issue);
  }

  authorize(identity: Identity, capability: Capability, path: string): boolean {
    return this.permissions(identity).allows(capability, path);
  }

  authorizeBelow(identity: Identity, capability: Capability, prefix: string): boolean {
    return this.permissions(identity).mayReachBelow(capability, prefix);
  }

  /**
   * A compiled PolicySet is immutable (edits compile a new one), so it is the snapshot itself. A
   * minted token's is the meet of its own and its minters' (mint.ts), each minter with the
   * groups it has now: its token's and its memberships.
   */
  permissions(identity: Identity): Permissions {
    if (identity.root) return ALLOW_ALL;
    const own = this.directory.evaluator(identity.policies, identity.groups);
    if (!identity.within) return own;
    const all = [
      own,
      ...identity.within.map((p) =>
        this.directory.evaluator(p.policies, this.directory.effectiveGroups(p.sub, p.groups)),
      ),
    ];
    return {
      allows: (capability, path) => all.every((p) => p.allows(capability, path)),
      mayReachBelow: (capability, prefix) => all.every((p) => p.mayReachBelow(capability, prefix)),
    };
  }
}

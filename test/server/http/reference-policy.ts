/**
 * Independent reference models for the HTTP fuzzer (test/server/http/fuzz.test.ts), written from
 * DESIGN.md and API.md only: nothing here imports server code, so a bug in the server's policy
 * evaluator or path parser cannot hide itself by being copied into the oracle.
 *
 * Policies (DESIGN.md "Access"): a rule is `{path, capabilities}`; a path pattern is exact
 * segments, `*` (one segment) or a final `**` (any number of trailing segments, zero included);
 * an explicit `deny` on any matching rule wins; otherwise the union of the grants of every
 * matching rule of every attached policy.
 *
 * Reserved namespaces (issue 10 item 9): `sys/...` and `transit/<key>` are capability paths, not
 * secrets. No secret path may start with them (in any letter case), and a grant reaches them
 * only through a rule whose first segment names them literally; a matching deny still denies.
 *
 * Paths (API.md "Paths"): 1 to 16 segments of `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`, at most 512
 * characters, matched byte for byte after one URL decode; anything else is refused.
 */

export type RefCapability = 'read' | 'list' | 'create' | 'update' | 'delete' | 'destroy' | 'admin' | 'deny';

export interface RefRule {
  path: string;
  capabilities: RefCapability[];
}

export interface RefPolicy {
  rules: RefRule[];
}

/** Does the pattern (as written in a rule) match the concrete path? Segment by segment. */
export function refPatternMatches(pattern: string, path: string): boolean {
  const pat = pattern.split('/');
  const segs = path.split('/');
  if (pat[pat.length - 1] === '**') {
    const fixed = pat.slice(0, -1);
    if (segs.length < fixed.length) return false;
    return fixed.every((p, i) => p === '*' || p === segs[i]);
  }
  if (pat.length !== segs.length) return false;
  return pat.every((p, i) => p === '*' || p === segs[i]);
}

/** The reference decision for a set of policies (already the union of a caller's policies). */
export const REF_RESERVED = ['sys', 'transit'];

export function refAllows(policies: RefPolicy[], capability: RefCapability, path: string): boolean {
  const first = path.split('/')[0]!;
  const reserved = REF_RESERVED.includes(first);
  let granted = false;
  for (const policy of policies) {
    for (const rule of policy.rules) {
      if (!refPatternMatches(rule.path, path)) continue;
      if (rule.capabilities.includes('deny')) return false;
      if (reserved && rule.path.split('/')[0] !== first) continue;
      if (rule.capabilities.includes(capability)) granted = true;
    }
  }
  return granted;
}

/** The vault's directory as the reference sees it: policies by name, groups by name. */
export interface RefDirectory {
  policies: Map<string, RefPolicy>;
  groups: Map<string, { policies: string[]; members: string[] }>;
}

/** A token as minted: its identity, its own groups and its own policies. */
export interface RefPrincipal {
  identity: string;
  groups: string[];
  policies: string[];
  /** The root token bypasses policies. */
  root?: boolean;
}

/**
 * Every policy that applies to a principal: its own, those of the groups its token names, and
 * those of every group that lists its identity as a member.
 */
export function refEffectivePolicies(dir: RefDirectory, who: RefPrincipal): RefPolicy[] {
  const names = new Set(who.policies);
  for (const [name, group] of dir.groups) {
    if (who.groups.includes(name) || group.members.includes(who.identity)) for (const p of group.policies) names.add(p);
  }
  return [...names].flatMap((n) => dir.policies.get(n) ?? []);
}

export function refPrincipalAllows(
  dir: RefDirectory,
  who: RefPrincipal,
  capability: RefCapability,
  path: string,
): boolean {
  if (who.root) return true;
  return refAllows(refEffectivePolicies(dir, who), capability, path);
}

const REF_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function refIsCanonicalPath(path: string): boolean {
  if (path.length === 0 || path.length > 512) return false;
  const segs = path.split('/');
  return segs.length <= 16 && segs.every((s) => REF_SEGMENT.test(s)) && !REF_RESERVED.includes(segs[0]!.toLowerCase());
}

/**
 * The secret path a raw request target addresses under `prefix` (e.g. `/v1/secrets/`), or
 * `undefined` when API.md says it must be refused. The path part ends at the first `?` or `#`;
 * each `/`-separated raw segment is percent-decoded exactly once and must then be canonical.
 */
export function refCanonicalPath(target: string, prefix: string): string | undefined {
  const cut = target.search(/[?#]/);
  const pathname = cut < 0 ? target : target.slice(0, cut);
  if (!pathname.startsWith(prefix)) return undefined;
  const rawSegments = pathname.slice(prefix.length).split('/');
  const decoded: string[] = [];
  for (const raw of rawSegments) {
    let d: string;
    try {
      d = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (!REF_SEGMENT.test(d)) return undefined;
    decoded.push(d);
  }
  const path = decoded.join('/');
  return refIsCanonicalPath(path) ? path : undefined;
}

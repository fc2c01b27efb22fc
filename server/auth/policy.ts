import { CofferError } from '../errors.js';
import { RESERVED_NAMESPACES, SEGMENT } from '../paths.js';
import { CAPABILITIES, type Capability } from './access.js';

/**
 * Path policies. A rule is `{path, capabilities}`; a path pattern is segments joined by '/',
 * each a literal segment, `*` (exactly one segment) or, last only, `**` (zero or more further
 * segments). Patterns are matched segment by segment against the canonical path, never as
 * strings, so `app/*` cannot match `application/x` and a literal `*` in a request is
 * impossible (paths refuse it). A wildcard never grants in the reserved `sys` and `transit`
 * namespaces: a rule grants there only by naming them (a wildcard deny still denies). An explicit `deny` on a matching rule wins; otherwise the
 * grants of every matching rule of every attached policy add up.
 */
export interface Rule {
  path: string;
  capabilities: Capability[];
}

export interface Policy {
  name: string;
  rules: Rule[];
}

export { POLICY_NAME } from '../../sdk/wire/constants.js';
export const RESERVED_NAMES = new Set(['root', 'default', 'admin-root']);

/** One compiled rule: pattern segments and a capability bitmask. */
interface CompiledRule {
  segments: string[];
  trailing: boolean;
  grants: number;
  deny: boolean;
}

const BIT = Object.fromEntries(CAPABILITIES.map((c, i) => [c, 1 << i])) as Record<Capability, number>;

/** Checks a rule's path pattern at write time: the error says what is wrong with it. */
export function checkPattern(pattern: unknown): string {
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > 512) {
    throw new CofferError('invalid_request', 'rule path must be a pattern of 1 to 512 characters');
  }
  const segments = pattern.split('/');
  if (segments.length > 17) throw new CofferError('invalid_request', `rule path ${pattern}: too many segments`);
  segments.forEach((s, i) => {
    if (s === '**' && i === segments.length - 1) return;
    if (s === '*' || SEGMENT.test(s)) return;
    throw new CofferError(
      'invalid_request',
      `rule path ${pattern}: segment ${i + 1} must be a name of [A-Za-z0-9._-], '*' (one segment) or a final '**'`,
    );
  });
  return pattern;
}

export function compileRules(rules: Rule[]): CompiledRule[] {
  return rules.map((rule) => {
    const segments = checkPattern(rule.path).split('/');
    const trailing = segments[segments.length - 1] === '**';
    if (trailing) segments.pop();
    let grants = 0;
    for (const c of rule.capabilities) grants |= BIT[c];
    return { segments, trailing, grants, deny: rule.capabilities.includes('deny') };
  });
}

function matches(rule: CompiledRule, path: string[]): boolean {
  if (rule.trailing ? path.length < rule.segments.length : path.length !== rule.segments.length) return false;
  for (let i = 0; i < rule.segments.length; i++) {
    const s = rule.segments[i]!;
    if (s !== '*' && s !== path[i]) return false;
  }
  return true;
}

/**
 * The evaluator for one set of policies (the union of a caller's policies), compiled once and
 * reused for every request with the same set.
 */
export class PolicySet {
  private readonly rules: CompiledRule[];

  constructor(policies: Policy[]) {
    this.rules = policies.flatMap((p) => compileRules(p.rules));
  }

  allows(capability: Capability, path: string): boolean {
    const segments = path.split('/');
    const reserved = RESERVED_NAMESPACES.has(segments[0]!);
    let grants = 0;
    for (const rule of this.rules) {
      if (!matches(rule, segments)) continue;
      if (rule.deny) return false;
      if (reserved && rule.segments[0] !== segments[0]) continue; // a wildcard grant stops short of sys/ and transit/
      grants |= rule.grants;
    }
    return (grants & BIT[capability]) !== 0;
  }

  /** Whether any rule could grant `capability` somewhere at or below `prefix` (for listing). */
  mayReachBelow(capability: Capability, prefix: string): boolean {
    const segments = prefix === '' ? [] : prefix.split('/');
    return this.rules.some((rule) => {
      if (rule.deny || (rule.grants & BIT[capability]) === 0) return false;
      if (segments.length > 0 && RESERVED_NAMESPACES.has(segments[0]!) && rule.segments[0] !== segments[0])
        return false;
      const n = Math.min(segments.length, rule.segments.length);
      for (let i = 0; i < n; i++) if (rule.segments[i] !== '*' && rule.segments[i] !== segments[i]) return false;
      return rule.trailing || rule.segments.length >= segments.length;
    });
  }
}

import { CofferError } from '../errors.js';
import type { Store } from '../store/db.js';
import { GROUP_PREFIX, POLICY_PREFIX } from '../store/keys.js';
import { POLICY_NAME, PolicySet, RESERVED_NAMES, compileRules, type Policy, type Rule } from './policy.js';


export interface Group {
  name: string;
  policies: string[];
  /** Identities that belong to the group whatever their token says (e.g. `user:alice`). */
  members: string[];
}

/** Checks a policy or group name: lower-case, no reserved names, nothing that could shadow one. */
export function checkName(kind: 'policy' | 'group', name: unknown): string {
  if (typeof name !== 'string' || !POLICY_NAME.test(name)) {
    throw new CofferError('invalid_request', `${kind} name must be 1 to 64 characters of [a-z0-9_-], starting with a letter or digit`);
  }
  if (RESERVED_NAMES.has(name)) throw new CofferError('invalid_request', `${kind} name "${name}" is reserved`);
  return name;
}

/**
 * Policies and groups, kept in memory (they are small and read on every request) and written
 * through to the store. Evaluators are compiled once per distinct (policies, groups) set and
 * dropped whenever anything changes, so a request sees either the old or the new rules whole.
 */
export class Directory {
  private policies = new Map<string, Policy>();
  private groups = new Map<string, Group>();
  private membership = new Map<string, string[]>();
  private compiled = new Map<string, PolicySet>();

  constructor(private readonly store: Store) {}

  async load(): Promise<void> {
    const policies = new Map<string, Policy>();
    for (const [k, v] of await this.store.scanPrefix(POLICY_PREFIX)) policies.set(k.slice(POLICY_PREFIX.length), JSON.parse(Buffer.from(v).toString()) as Policy);
    const groups = new Map<string, Group>();
    for (const [k, v] of await this.store.scanPrefix(GROUP_PREFIX)) groups.set(k.slice(GROUP_PREFIX.length), JSON.parse(Buffer.from(v).toString()) as Group);
    this.policies = policies;
    this.groups = groups;
    this.reindex();
  }

  getPolicy(name: string): Policy | undefined {
    return this.policies.get(name);
  }

  listPolicies(): string[] {
    return [...this.policies.keys()].sort();
  }

  async putPolicy(name: string, rules: Rule[]): Promise<Policy> {
    checkName('policy', name);
    compileRules(rules); // refuse bad patterns before anything is written
    const policy: Policy = { name, rules };
    await this.store.mutate((tx) => tx.put(POLICY_PREFIX + name, Buffer.from(JSON.stringify(policy))));
    this.policies.set(name, policy);
    this.compiled = new Map();
    return policy;
  }

  async deletePolicy(name: string): Promise<boolean> {
    if (!this.policies.has(name)) return false;
    await this.store.mutate((tx) => tx.del(POLICY_PREFIX + name));
    this.policies.delete(name);
    this.compiled = new Map();
    return true;
  }

  getGroup(name: string): Group | undefined {
    return this.groups.get(name);
  }

  listGroups(): string[] {
    return [...this.groups.keys()].sort();
  }

  async putGroup(name: string, policies: string[], members: string[]): Promise<Group> {
    checkName('group', name);
    for (const p of policies) checkName('policy', p);
    const group: Group = { name, policies: [...new Set(policies)], members: [...new Set(members)] };
    await this.store.mutate((tx) => tx.put(GROUP_PREFIX + name, Buffer.from(JSON.stringify(group))));
    this.groups.set(name, group);
    this.reindex();
    return group;
  }

  async deleteGroup(name: string): Promise<boolean> {
    if (!this.groups.has(name)) return false;
    await this.store.mutate((tx) => tx.del(GROUP_PREFIX + name));
    this.groups.delete(name);
    this.reindex();
    return true;
  }

  /** Groups of an identity: those its token names plus those that list it as a member. */
  effectiveGroups(identity: string, tokenGroups: string[]): string[] {
    const extra = this.membership.get(identity);
    return extra ? [...new Set([...tokenGroups, ...extra])] : tokenGroups;
  }

  /** The compiled evaluator for a caller's direct policies and groups (cached). */
  evaluator(policies: string[], groups: string[]): PolicySet {
    const key = `${policies.join(',')}|${groups.join(',')}`;
    let set = this.compiled.get(key);
    if (!set) {
      const names = new Set(policies);
      for (const g of groups) for (const p of this.groups.get(g)?.policies ?? []) names.add(p);
      set = new PolicySet([...names].flatMap((n) => this.policies.get(n) ?? []));
      if (this.compiled.size > 10_000) this.compiled = new Map();
      this.compiled.set(key, set);
    }
    return set;
  }

  private reindex(): void {
    const membership = new Map<string, string[]>();
    for (const g of this.groups.values()) for (const m of g.members) membership.set(m, [...(membership.get(m) ?? []), g.name]);
    this.membership = membership;
    this.compiled = new Map();
  }
}

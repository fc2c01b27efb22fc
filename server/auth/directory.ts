import { z } from 'zod';
import { CofferError } from '../errors.js';
import type { SealManager, UnsealedKeys, VaultStore } from '../keys/seal.js';
import type { Table } from '../store/barrier.js';
import { jsonCodec } from '../store/codec.js';
import { GROUP_PREFIX, POLICY_PREFIX } from '../store/keys.js';
import { CAPABILITIES } from './access.js';
import { POLICY_NAME, PolicySet, RESERVED_NAMES, compileRules, type Policy, type Rule } from './policy.js';
import { cofferRule, type KvMounts } from './vault-policy-paths.js';

const ruleSchema = z.object({ path: z.string(), capabilities: z.array(z.enum(CAPABILITIES)) });
const policyCodec = jsonCodec(
  z.object({
    name: z.string(),
    rules: z.array(ruleSchema),
    /** The Coffer rules that Vault paths among `rules` stand for, when there were any (vault-policy-paths.ts). */
    effective: z.array(ruleSchema).optional(),
  }),
);

/** A policy as stored: its rules as written, and what they mean when Vault paths changed them. */
interface StoredPolicy extends Policy {
  effective?: Rule[] | undefined;
}
const groupCodec = jsonCodec(
  z.object({ name: z.string(), policies: z.array(z.string()), members: z.array(z.string()) }),
);

export interface Group {
  name: string;
  policies: string[];
  /** Identities that belong to the group whatever their token says (e.g. `user:alice`). */
  members: string[];
}

/** Checks a policy or group name: lower-case, no reserved names, nothing that could shadow one. */
export function checkName(kind: 'policy' | 'group', name: unknown): string {
  if (typeof name !== 'string' || !POLICY_NAME.test(name)) {
    throw new CofferError(
      'invalid_request',
      `${kind} name must be 1 to 64 characters of [a-z0-9_-], starting with a letter or digit`,
    );
  }
  if (RESERVED_NAMES.has(name)) throw new CofferError('invalid_request', `${kind} name "${name}" is reserved`);
  return name;
}

/**
 * Policies and groups, kept in memory (they are small and read on every request) and written
 * through to the store. Evaluators are compiled once per distinct (policies, groups) set and
 * dropped whenever anything changes, so a request sees either the old or the new rules whole.
 * They are loaded when the vault unseals (they are sealed in the store) and dropped when it seals.
 */
export class Directory {
  private policies = new Map<string, StoredPolicy>();
  private groups = new Map<string, Group>();
  private membership = new Map<string, string[]>();
  private compiled = new Map<string, PolicySet>();
  private readonly policyTable: Table<StoredPolicy, UnsealedKeys>;
  private readonly groupTable: Table<Group, UnsealedKeys>;
  private loaded = false;

  /** `kvMounts`: the Vault KV mounts, whose paths a rule may name (translated when the policy is written). */
  constructor(
    store: VaultStore,
    seal: SealManager,
    private readonly kvMounts: KvMounts,
  ) {
    this.policyTable = store.table(POLICY_PREFIX, policyCodec, 'policy');
    this.groupTable = store.table(GROUP_PREFIX, groupCodec, 'group');
    seal.onUnseal(() => this.load());
    seal.onSeal(() => this.unload());
  }

  /** Reads every policy and group (at unseal; a replica after applying changes to them). */
  async load(): Promise<void> {
    const policies = new Map(await this.policyTable.scan());
    const groups = new Map(await this.groupTable.scan());
    this.policies = policies;
    this.groups = groups;
    this.loaded = true;
    this.reindex();
  }

  /** A replica applied changes to policies or groups: reloads, unless sealed (the next unseal loads them). */
  async reload(): Promise<void> {
    if (this.loaded) await this.load();
  }

  private unload(): void {
    this.loaded = false;
    this.policies = new Map();
    this.groups = new Map();
    this.reindex();
  }

  /** The policy as written (Vault paths and all). */
  getPolicy(name: string): Policy | undefined {
    const policy = this.policies.get(name);
    return policy && { name: policy.name, rules: policy.rules };
  }

  listPolicies(): string[] {
    return [...this.policies.keys()].sort();
  }

  async putPolicy(name: string, rules: Rule[]): Promise<Policy> {
    checkName('policy', name);
    // Refuse bad patterns before anything is written. The meaning of a Vault path is fixed now,
    // so a rule written before a mount existed keeps the meaning it had.
    const effective = rules.flatMap((rule) => cofferRule(rule, this.kvMounts) ?? []);
    compileRules(effective);
    const changed = effective.length !== rules.length || effective.some((rule, i) => rule !== rules[i]);
    const policy: StoredPolicy = { name, rules, ...(changed ? { effective } : {}) };
    await this.policyTable.mutate((tx) => this.policyTable.write(tx, name, policy));
    this.policies.set(name, policy);
    this.compiled = new Map();
    return { name, rules };
  }

  async deletePolicy(name: string): Promise<boolean> {
    if (!this.policies.has(name)) return false;
    await this.policyTable.mutate((tx) => this.policyTable.delete(tx, name));
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
    await this.groupTable.mutate((tx) => this.groupTable.write(tx, name, group));
    this.groups.set(name, group);
    this.reindex();
    return group;
  }

  async deleteGroup(name: string): Promise<boolean> {
    if (!this.groups.has(name)) return false;
    await this.groupTable.mutate((tx) => this.groupTable.delete(tx, name));
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
      set = new PolicySet(
        [...names].flatMap((n) => {
          const policy = this.policies.get(n);
          return policy ? [{ name: n, rules: policy.effective ?? policy.rules }] : [];
        }),
      );
      if (this.compiled.size > 10_000) this.compiled = new Map();
      this.compiled.set(key, set);
    }
    return set;
  }

  private reindex(): void {
    const membership = new Map<string, string[]>();
    for (const g of this.groups.values())
      for (const m of g.members) membership.set(m, [...(membership.get(m) ?? []), g.name]);
    this.membership = membership;
    this.compiled = new Map();
  }
}

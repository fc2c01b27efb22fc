import { CofferError } from '../errors.js';
import { isReservedPath } from '../../sdk/wire/paths.js';
import type { Capability } from './access.js';
import { checkPattern, type Rule } from './policy.js';

/** KV v2 mount name → the Coffer path prefix it stands for ('' : Coffer paths as they are). */
export type KvMounts = ReadonlyMap<string, string>;

type Action = 'data' | 'metadata' | 'delete' | 'undelete' | 'destroy';

/**
 * What a Vault capability on each KV v2 path grants in Coffer (docs/vault-compatibility.md
 * "Policies"): never more than Vault would, but for one coarser capability: Coffer's `destroy`
 * also erases a secret with its metadata, which Vault's `destroy` path does not ("Differences").
 * Coffer's `read`, `create` and `update` on a secret
 * cover its metadata with its data, so metadata read/write and undelete (which needs `update`)
 * grant nothing on their own; `list` on a data path grants nothing in Vault either. A deny on
 * any of them denies the Coffer path whole.
 */
const GRANTS: Record<Action, Partial<Record<Capability, Capability>>> = {
  data: { read: 'read', create: 'create', update: 'update', delete: 'delete', destroy: 'destroy', deny: 'deny' },
  metadata: { list: 'list', delete: 'destroy', deny: 'deny' },
  delete: { update: 'delete', deny: 'deny' },
  undelete: { deny: 'deny' },
  destroy: { update: 'destroy', deny: 'deny' },
};

const isAction = (s: string | undefined): s is Action => s !== undefined && Object.hasOwn(GRANTS, s);

/**
 * The Coffer rule a policy rule stands for, decided when the policy is written. Only a rule of
 * the form `<KV mount>/<KV v2 action>/<pattern>` is a Vault path: it becomes `pattern` below the
 * mount's prefix with the capabilities of GRANTS, or undefined when it grants nothing. Every
 * other rule is Coffer's own, as it was before Vault paths existed: a Coffer namespace that
 * shares a mount's name (`secret/app/*`), a folder named like an action (`ml/data/**`), the
 * reserved `sys` and `transit` namespaces, and every rule of a server without KV mounts.
 */
export function cofferRule(rule: Rule, mounts: KvMounts): Rule | undefined {
  const [mount = '', action, ...rest] = checkPattern(rule.path).split('/');
  const prefix = mounts.get(mount);
  if (prefix === undefined || !isAction(action) || rest.length === 0 || isReservedPath(mount)) return rule;
  const pattern = checkPattern(prefix === '' ? rest.join('/') : `${prefix}/${rest.join('/')}`);
  if (isReservedPath(pattern))
    throw new CofferError(
      'invalid_request',
      `rule path ${rule.path}: a KV mount holds no secret in the sys or transit namespaces`,
    );
  const capabilities = [...new Set(rule.capabilities.flatMap((c) => GRANTS[action][c] ?? []))];
  return capabilities.length === 0 ? undefined : { path: pattern, capabilities };
}

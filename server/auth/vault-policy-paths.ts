import { CofferError } from '../errors.js';
import { isReservedPath } from '../../sdk/wire/paths.js';
import type { Capability } from './access.js';
import { checkPattern, type Rule } from './policy.js';

/** KV v2 mount name → the Coffer path prefix it stands for ('' : Coffer paths as they are). */
export type KvMounts = ReadonlyMap<string, string>;

type Action = 'data' | 'metadata' | 'delete' | 'undelete' | 'destroy';

/**
 * What a Vault capability on each KV v2 path grants in Coffer (docs/vault-compatibility.md
 * "Policies"): never more than Vault would. Coffer's `read`, `create` and `update` on a secret
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
 * The Coffer rule a policy rule stands for, decided when the policy is written. A rule whose
 * first segment is a KV mount, or whose second is a KV v2 action, is a Vault path
 * `<mount>/<action>/<pattern>`: it becomes `pattern` below the mount's prefix with the
 * capabilities of GRANTS, or undefined when it grants nothing. Any other rule, every rule on
 * the reserved `sys` and `transit` namespaces, and every rule of a server without KV mounts is
 * Coffer's own.
 */
export function cofferRule(rule: Rule, mounts: KvMounts): Rule | undefined {
  const [mount = '', action, ...rest] = checkPattern(rule.path).split('/');
  if (mounts.size === 0 || isReservedPath(mount) || (!mounts.has(mount) && !isAction(action))) return rule;
  const refuse = (why: string) => new CofferError('invalid_request', `rule path ${rule.path}: ${why}`);
  const prefix = mounts.get(mount);
  if (prefix === undefined)
    throw refuse(`${mount} is not a KV mount of this server (vault_kv_mounts: ${[...mounts.keys()].join(', ')})`);
  if (!isAction(action))
    throw refuse(`a path on the KV mount ${mount} continues with ${Object.keys(GRANTS).join(', ')}`);
  if (rest.length === 0)
    throw refuse(`name a pattern after ${mount}/${action}/ (${mount}/${action}/** for the whole mount)`);
  const pattern = checkPattern(prefix === '' ? rest.join('/') : `${prefix}/${rest.join('/')}`);
  if (isReservedPath(pattern)) throw refuse('a KV mount holds no secret in the sys or transit namespaces');
  const capabilities = [...new Set(rule.capabilities.flatMap((c) => GRANTS[action][c] ?? []))];
  return capabilities.length === 0 ? undefined : { path: pattern, capabilities };
}

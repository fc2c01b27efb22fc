import { checkPath } from '../../paths.js';

/**
 * The Vault mounts a server answers on (config `vault_kv_mounts`, `vault_jwt_mounts`;
 * docs/vault-compatibility.md "Mounts").
 */
export interface VaultSettings {
  /** KV v2 mount name → the Coffer path prefix it stands for ('' : Coffer paths as they are). */
  kvMounts: ReadonlyMap<string, string>;
  /** Auth mounts that log in with Coffer's jwt roles; `jwt` is always one. */
  jwtMounts: readonly string[];
  /** How many names a KV listing scans before it stops with a warning (VAULT_LIST_BUDGET unless set). */
  listBudget?: number;
}

/** A listing's scan bound: a `LIST` of a huge prefix answers in bounded time (docs/vault-compatibility.md). */
export const VAULT_LIST_BUDGET = 100_000;

export const DEFAULT_VAULT_SETTINGS: VaultSettings = { kvMounts: new Map([['secret', '']]), jwtMounts: ['jwt'] };

/** From the validated config strings (`name` or `name=prefix`). */
export function vaultSettings(kvMounts: readonly string[], jwtMounts: readonly string[]): VaultSettings {
  const kv = new Map<string, string>();
  for (const entry of kvMounts) {
    const eq = entry.indexOf('=');
    kv.set(eq < 0 ? entry : entry.slice(0, eq), eq < 0 ? '' : entry.slice(eq + 1));
  }
  return { kvMounts: kv, jwtMounts: [...new Set(['jwt', ...jwtMounts])] };
}

/**
 * The Coffer path of `rest` (already checked) under a mount's prefix, checked again whole: a
 * path the native API could not read or delete (over 16 segments or 512 characters once the
 * prefix is in front) is refused here too.
 */
export const cofferPath = (prefix: string, rest: string): string =>
  prefix === '' ? rest : checkPath(rest === '' ? prefix : `${prefix}/${rest}`);

import { CofferError } from '../sdk/errors.js';
import type { Coffer } from '../sdk/client.js';
import type { Secret } from '../sdk/wire/types.js';
import { CliError } from './errors.js';
import { ENV_NAME, envNameOf, isDangerousName } from '../sdk/env-names.js';

/**
 * Secrets to environment variables (docs/api.md "CLI"): each key upper-cased, characters outside
 * [A-Z0-9_] become '_'. A name that is still invalid, two keys that land on one name, a name
 * that changes how programs load code (LD_PRELOAD, NODE_OPTIONS, …) or a value with a NUL are
 * errors that name the variables, never the values; `--map` resolves them.
 */

export interface EnvOptions {
  /** `KEY=ENV` or `path:KEY=ENV` renames. */
  map: string[];
  prefix: string;
  /** Names allowed even though they are dangerous. */
  allow: string[];
}

/** Fetches `--path` secrets in one batch; `P/*` takes every secret under P. Fails closed. */
export async function fetchSecrets(client: Coffer, paths: string[]): Promise<Secret[]> {
  const wanted: string[] = [];
  for (const p of paths) {
    if (p.endsWith('/*')) {
      const found: string[] = [];
      for await (const path of client.list(p.slice(0, -2))) if (path !== p.slice(0, -2)) found.push(path);
      if (found.length === 0) throw new CliError('not_found', `no secrets under ${p.slice(0, -2)}`);
      wanted.push(...found);
    } else wanted.push(p);
  }
  const unique = [...new Set(wanted)];
  const secrets: Secret[] = [];
  for (let i = 0; i < unique.length; i += 100) {
    const { secrets: got, errors } = await client.batchGet(unique.slice(i, i + 100));
    const failed = Object.entries(errors);
    if (failed.length > 0) {
      const [path, error] = failed[0]!;
      const code = error.code === 'not_found' ? 'not_found' : error.code === 'forbidden' ? 'forbidden' : 'internal';
      throw new CofferError(
        code,
        `cannot read ${path}: ${error.message}${failed.length > 1 ? ` (and ${failed.length - 1} more)` : ''}`,
        code === 'not_found' ? 404 : 403,
      );
    }
    for (const p of unique.slice(i, i + 100)) secrets.push(got[p]!);
  }
  return secrets;
}

export function buildEnv(secrets: Secret[], options: EnvOptions): Map<string, string> {
  const renames = new Map<string, string>();
  for (const m of options.map) {
    const eq = m.lastIndexOf('=');
    if (eq < 1 || !ENV_NAME.test(m.slice(eq + 1)))
      throw new CliError('invalid_input', `--map ${m.split('=')[0]}=…: expected KEY=ENV_NAME or path:KEY=ENV_NAME`);
    renames.set(m.slice(0, eq), m.slice(eq + 1));
  }
  const env = new Map<string, string>();
  const origin = new Map<string, string>();
  const problems: string[] = [];
  for (const secret of secrets) {
    for (const [key, value] of Object.entries(secret.data)) {
      const name = renames.get(`${secret.path}:${key}`) ?? renames.get(key) ?? envNameOf(key, options.prefix);
      const from = `${secret.path}:${key}`;
      if (!ENV_NAME.test(name))
        problems.push(`${from} -> "${name}" is not a valid variable name (use --map ${key}=NAME)`);
      else if (isDangerousName(name, options.allow))
        problems.push(`${from} -> ${name} would change how programs run (allow it with --allow-env ${name})`);
      else if (origin.has(name))
        problems.push(`${from} and ${origin.get(name)} both map to ${name} (use --map to rename one)`);
      else if (value.includes('\u0000'))
        problems.push(`${from} -> ${name} holds a NUL character, which no environment variable can carry`);
      else {
        env.set(name, value);
        origin.set(name, from);
      }
    }
  }
  if (problems.length > 0)
    throw new CliError('invalid_input', `cannot build the environment:\n  ${problems.join('\n  ')}`);
  return env;
}

import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import type { AdminKind } from '../../sdk/client.js';
import { CofferError } from '../../sdk/errors.js';
import { client, output, type GlobalArgs } from '../context.js';

const CAPS = ['read', 'list', 'create', 'update', 'delete', 'destroy', 'admin', 'deny'];

/** `PATH:cap,cap` -> a policy rule. */
function parseRule(text: string) {
  const colon = text.lastIndexOf(':');
  const capabilities = text.slice(colon + 1).split(',');
  if (colon < 1 || !capabilities.every((c) => CAPS.includes(c))) {
    throw new CofferError('invalid_request', `--rule ${text}: expected PATH:CAPABILITY[,CAPABILITY] with capabilities from ${CAPS.join(', ')}`, 0);
  }
  return { path: text.slice(0, colon), capabilities };
}

async function bodyFromFile(file: string | undefined): Promise<Record<string, unknown> | undefined> {
  if (!file) return undefined;
  const text = await readFile(file, 'utf8').catch(() => {
    throw new CofferError('invalid_request', `cannot read ${file}`, 0);
  });
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new CofferError('invalid_request', `${file} is not JSON`, 0);
  }
}

/** `coffer policy|group|user|role put|get|rm|ls`: admin objects, JSON in and out. */
export function adminCommands(yargs: Argv<GlobalArgs>): Argv<GlobalArgs> {
  const verbs = ['put', 'get', 'rm', 'ls'] as const;
  const register = (y: Argv<GlobalArgs>, noun: string, describe: string, kindOf: (argv: { type?: string }) => AdminKind, build: (argv: Record<string, unknown>) => Promise<object>) =>
    y.command(
      `${noun} <verb> [name]`,
      describe,
      (b) =>
        b
          .positional('verb', { choices: verbs, demandOption: true })
          .positional('name', { type: 'string' })
          .option('file', { type: 'string', describe: 'JSON body for put' })
          .option('rule', { type: 'string', array: true, default: [] as string[], describe: 'policy: PATH:CAP[,CAP] (repeatable)' })
          .option('policy', { type: 'string', array: true, default: [] as string[], describe: 'policies to attach' })
          .option('group', { type: 'string', array: true, default: [] as string[], describe: 'groups to grant' })
          .option('member', { type: 'string', array: true, default: [] as string[], describe: 'group: static member identity' })
          .option('type', { choices: ['jwt', 'approle'] as const, default: 'jwt' as const, describe: 'role: kind of role' })
          .option('password-env', { type: 'string', default: 'COFFER_PASSWORD', describe: 'user: variable holding the password' }),
      async (argv) => {
        const api = (await client(argv)).admin(kindOf(argv));
        if (argv.verb === 'ls') {
          const keys = await api.list();
          return output(argv, keys, () => keys.join('\n'));
        }
        if (!argv.name) throw new CofferError('invalid_request', `name the ${noun}: coffer ${noun} ${argv.verb} NAME`, 0);
        if (argv.verb === 'get') {
          const item = await api.get(argv.name);
          return output(argv, item, () => JSON.stringify(item, null, 2));
        }
        if (argv.verb === 'rm') {
          await api.delete(argv.name);
          return output(argv, { deleted: argv.name }, () => `deleted ${noun} ${argv.name}`);
        }
        const body = (await bodyFromFile(argv.file)) ?? (await build(argv as unknown as Record<string, unknown>));
        const saved = await api.put(argv.name, body);
        output(argv, saved, () => `saved ${noun} ${argv.name}`);
      },
    );

  let y = register(yargs, 'policy', 'Manage policies (--rule PATH:CAPS or --file)', () => 'policy', async (a) => ({ rules: (a.rule as string[]).map(parseRule) }));
  y = register(y, 'group', 'Manage groups (--policy, --member)', () => 'group', async (a) => ({ policies: a.policy, members: a.member }));
  y = register(y, 'user', 'Manage userpass users (password from COFFER_PASSWORD)', () => 'user', async (a) => {
    const password = process.env[a.passwordEnv as string];
    return { groups: a.group, policies: a.policy, ...(password ? { password } : {}) };
  });
  y = register(y, 'role', 'Manage jwt or approle roles (--type, --file)', (a) => (a.type === 'approle' ? 'approle' : 'jwt'), async (a) => {
    if (a.type === 'jwt') throw new CofferError('invalid_request', 'a jwt role needs --file role.json (issuer, jwks_url, bound_audiences, …)', 0);
    return { groups: a.group, policies: a.policy };
  });
  return y;
}

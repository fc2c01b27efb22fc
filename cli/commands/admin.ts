import { open, readFile, rm } from 'node:fs/promises';
import type { Argv, CommandModule } from 'yargs';
import type { AdminKind } from '../../sdk/client.js';
import { CAPABILITIES } from '../../sdk/wire/constants.js';
import { output, type GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import type { Deps } from '../io.js';

const CAPS: readonly string[] = CAPABILITIES;

/** `PATH:cap,cap` -> a policy rule. */
function parseRule(text: string) {
  const colon = text.lastIndexOf(':');
  const capabilities = text.slice(colon + 1).split(',');
  if (colon < 1 || !capabilities.every((c) => CAPS.includes(c))) {
    throw new CliError(
      'invalid_input',
      `--rule ${text}: expected PATH:CAPABILITY[,CAPABILITY] with capabilities from ${CAPS.join(', ')}`,
    );
  }
  return { path: text.slice(0, colon), capabilities };
}

async function bodyFromFile(file: string | undefined): Promise<Record<string, unknown> | undefined> {
  if (!file) return undefined;
  const text = await readFile(file, 'utf8').catch(() => {
    throw new CliError('invalid_input', `cannot read ${file}`);
  });
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new CliError('invalid_input', `${file} is not JSON`);
  }
}

type Verb = 'put' | 'get' | 'rm' | 'ls' | 'secret-id';
type AdminArgs = Record<string, unknown> &
  GlobalArgs & { verb: Verb; name?: string; file?: string; type?: string; out?: string };
type Options = (b: Argv<GlobalArgs>) => Argv<GlobalArgs>;
const ruleOption: Options = (b) =>
  b.option('rule', { type: 'string', array: true, default: [] as string[], describe: 'PATH:CAP[,CAP] (repeatable)' });
const policyOption: Options = (b) =>
  b.option('policy', {
    type: 'string',
    array: true,
    default: [] as string[],
    describe: 'policies to attach (repeatable)',
  });
const groupOption: Options = (b) =>
  b.option('group', { type: 'string', array: true, default: [] as string[], describe: 'groups to grant (repeatable)' });
const memberOption: Options = (b) =>
  b.option('member', {
    type: 'string',
    array: true,
    default: [] as string[],
    describe: 'static member identity (repeatable)',
  });
const typeOption: Options = (b) =>
  b.option('type', { choices: ['jwt', 'approle'] as const, default: 'jwt' as const, describe: 'kind of role' });
const outOption: Options = (b) =>
  b.option('out', { type: 'string', describe: 'secret-id: write it to this new file (mode 0600) instead of stdout' });
const passwordEnvOption: Options = (b) =>
  b.option('password-env', { type: 'string', default: 'COFFER_PASSWORD', describe: 'variable holding the password' });

/**
 * `coffer policy|group|user|role put|get|rm|ls`: admin objects, JSON in and out. Each noun gets
 * only its own options (one shared builder used to show every noun's options in every `--help`).
 */
export function adminCommands(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  const register = (
    y: Argv<GlobalArgs>,
    noun: string,
    describe: string,
    options: Options[],
    examples: [string, string][],
    kindOf: (argv: { type?: string }) => AdminKind,
    build: (argv: Record<string, unknown>) => Promise<object>,
    extra?: { verb: Verb; run: (argv: AdminArgs, name: string) => Promise<void> },
  ) =>
    y.command({
      command: `${noun} <verb> [name]`,
      describe,
      builder: (b: Argv<GlobalArgs>) => {
        let c = b
          .positional('verb', {
            choices: ['put', 'get', 'rm', 'ls', ...(extra ? [extra.verb] : [])],
            demandOption: true,
          })
          .positional('name', { type: 'string' })
          .option('file', { type: 'string', describe: 'JSON body for put' }) as unknown as Argv<GlobalArgs>;
        for (const add of options) c = add(c);
        for (const [command, text] of examples) c = c.example(command, text);
        return c;
      },
      handler: async (argv: AdminArgs) => {
        const api = (await deps.client(argv)).admin(kindOf(argv));
        if (argv.verb === 'ls') {
          const keys = await api.list();
          return void output(deps.io, argv, keys, () => keys.join('\n'));
        }
        if (!argv.name) throw new CliError('invalid_input', `name the ${noun}: coffer ${noun} ${argv.verb} NAME`);
        if (extra && argv.verb === extra.verb) return extra.run(argv, argv.name);
        if (argv.verb === 'get') {
          const item = await api.get(argv.name);
          return void output(deps.io, argv, item, () => JSON.stringify(item, null, 2));
        }
        if (argv.verb === 'rm') {
          await api.delete(argv.name);
          return void output(deps.io, argv, { deleted: argv.name }, () => `deleted ${noun} ${argv.name}`);
        }
        const body = (await bodyFromFile(argv.file)) ?? (await build(argv));
        const saved = await api.put(argv.name, body);
        output(deps.io, argv, saved, () => `saved ${noun} ${argv.name}`);
      },
    } as unknown as CommandModule<GlobalArgs, AdminArgs>);

  let y = register(
    yargs,
    'policy',
    'Manage policies (--rule PATH:CAPS or --file)',
    [ruleOption],
    [
      ["coffer policy put deploy --rule 'deploy/prod/*:read,list'", 'read-only access under deploy/prod/'],
      ['coffer policy put ops --file ops-policy.json', 'the JSON body from a file'],
      ['coffer policy get deploy', 'print it as JSON'],
    ],
    () => 'policy',
    async (a) => ({ rules: (a.rule as string[]).map(parseRule) }),
  );
  y = register(
    y,
    'group',
    'Manage groups (--policy, --member)',
    [policyOption, memberOption],
    [
      ['coffer group put deployers --policy deploy --member user:alice', 'a group with one policy and a static member'],
      ['coffer group ls', 'every group'],
    ],
    () => 'group',
    async (a) => ({ policies: a.policy, members: a.member }),
  );
  y = register(
    y,
    'user',
    'Manage userpass users (password from COFFER_PASSWORD)',
    [groupOption, policyOption, passwordEnvOption],
    [
      ['COFFER_PASSWORD=… coffer user put alice --group deployers', 'create or update alice (12 characters or more)'],
      ['coffer user rm alice', 'delete the user'],
    ],
    () => 'user',
    async (a) => {
      const password = deps.io.env[a.passwordEnv as string];
      return { groups: a.group, policies: a.policy, ...(password ? { password } : {}) };
    },
  );
  y = register(
    y,
    'role',
    'Manage jwt or approle roles (--type, --file); secret-id makes an approle secret_id',
    [typeOption, groupOption, policyOption, outOption],
    [
      ['coffer role put github-api --file role.json', 'a jwt role: issuer, jwks_url, bound_audiences, bound claims'],
      ['coffer role put ci --type approle --policy deploy', 'an approle role'],
      ['coffer role get ci --type approle', 'print an approle role (its role_id)'],
      ['coffer role secret-id ci --out secret-id', 'a new secret_id for the approle role ci, into a 0600 file'],
    ],
    (a) => (a.type === 'approle' ? 'approle' : 'jwt'),
    async (a) => {
      if (a.type === 'jwt')
        throw new CliError('invalid_input', 'a jwt role needs --file role.json (issuer, jwks_url, bound_audiences, …)');
      return { groups: a.group, policies: a.policy };
    },
    {
      verb: 'secret-id',
      // Shown once (the server keeps only its hash): into a new 0600 file with --out, else on stdout.
      // The file is created first, so a secret_id is never made that nobody can hold; a failure after
      // that removes the file.
      run: async (argv, name) => {
        if (!argv.out) {
          if (argv.quiet)
            throw new CliError('invalid_input', '--quiet would hide the only copy of the secret_id: use --out FILE');
          const made = await (await deps.client(argv)).createSecretId(name);
          return void output(deps.io, argv, made, () => made.secret_id);
        }
        const file = argv.out;
        const handle = await open(file, 'wx', 0o600).catch((e: NodeJS.ErrnoException) => {
          throw new CliError(
            e.code === 'EEXIST' ? 'already_exists' : 'invalid_input',
            `cannot create ${file}: ${e.code === 'EEXIST' ? 'it exists (a secret_id is never written over a file)' : (e.code ?? e.message)}`,
          );
        });
        let made;
        try {
          made = await (await deps.client(argv)).createSecretId(name);
          await handle.writeFile(`${made.secret_id}\n`);
          await handle.sync();
        } catch (e) {
          await handle.close();
          await rm(file, { force: true });
          throw e;
        }
        await handle.close();
        const shown = { written_to: file, expires_at: made.expires_at, uses: made.uses }; // never the secret_id
        output(
          deps.io,
          argv,
          shown,
          () =>
            `secret_id for ${name} written to ${file}${made.uses ? ` (${made.uses} uses)` : ''}${made.expires_at ? `, expires ${made.expires_at}` : ''}`,
        );
      },
    },
  );
  return y;
}

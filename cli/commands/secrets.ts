import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { SECRET_TYPES } from '../../sdk/wire/constants.js';
import { output, relative, type GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import { readAll, type Deps, type IO } from '../io.js';

const versionsOption = { type: 'string', describe: 'comma-separated versions, e.g. 1,2' } as const;

function parseVersions(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9][0-9]*(,[1-9][0-9]*)*$/.test(text))
    throw new CliError('invalid_input', '--versions takes comma-separated positive numbers, e.g. 1,2');
  return text.split(',').map(Number);
}

/** Reads stdin for at most one `K=-` value of a command. */
function stdinOnce(io: IO): () => Promise<string> {
  let used = false;
  return async () => {
    if (used) throw new CliError('invalid_input', 'only one value can come from stdin (K=-)');
    used = true;
    return (await readAll(io)).toString('utf8').replace(/\r?\n$/, '');
  };
}

/** `K=V`, `K=@file` (file content) or `K=-` (stdin), so values need not be in shell history. */
async function parsePairs(pairs: string[], readStdin: () => Promise<string>): Promise<Record<string, string>> {
  const data = Object.create(null) as Record<string, string>; // a key named __proto__ stays a key (the server refuses it)
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq < 1)
      throw new CliError(
        'invalid_input',
        `"${pair.split('=')[0]}" is not KEY=VALUE (use KEY=@file or KEY=- for stdin)`,
      );
    const key = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    if (Object.hasOwn(data, key)) throw new CliError('invalid_input', `key ${key} is given twice`);
    data[key] =
      raw === '-'
        ? await readStdin()
        : raw.startsWith('@')
          ? await readFile(raw.slice(1), 'utf8').catch(() => {
              throw new CliError('invalid_input', `cannot read ${raw.slice(1)} for key ${key}`);
            })
          : raw;
  }
  return data;
}

export function secretCommands(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  return yargs
    .command(
      'get <path>',
      'Print a secret',
      (y) =>
        y
          .positional('path', { type: 'string', demandOption: true })
          .option('field', { type: 'string', describe: 'print only this key, raw' })
          .option('version', { type: 'number', describe: 'a past version' })
          .example('coffer get app/db --field password', 'print one value, for scripts'),
      async (argv) => {
        const secret = await (await deps.client(argv)).getSecret(argv.path, argv.version);
        if (argv.field !== undefined) {
          const value = Object.hasOwn(secret.data, argv.field) ? secret.data[argv.field] : undefined; // `constructor` is a key, not Object's
          if (value === undefined) throw new CliError('not_found', `secret ${argv.path} has no key ${argv.field}`);
          deps.io.stdout.write(argv.json ? `${JSON.stringify(value)}\n` : `${value}\n`);
          return;
        }
        output(deps.io, argv, secret, () => {
          const width = Math.max(3, ...Object.keys(secret.data).map((k) => k.length));
          const lines = [
            `${secret.path} (version ${secret.version}, ${secret.type}${secret.expires_at ? `, expires ${relative(secret.expires_at)}` : ''})`,
          ];
          for (const [k, v] of Object.entries(secret.data)) lines.push(`  ${k.padEnd(width)}  ${v}`);
          return lines.join('\n');
        });
      },
    )
    .command(
      'put <path> [pairs..]',
      'Write a new version of a secret (values are never echoed)',
      (y) =>
        y
          .positional('path', { type: 'string', demandOption: true })
          .positional('pairs', {
            type: 'string',
            array: true,
            default: [] as string[],
            describe: 'KEY=VALUE, KEY=@file or KEY=- (stdin)',
          })
          .option('type', { choices: SECRET_TYPES, describe: 'secret type' })
          .option('cas', { type: 'number', describe: 'write only if the current version is N (0: only if absent)' })
          .option('generate', { type: 'string', describe: 'KEY[:LENGTH]: the server fills KEY with a random password' })
          .example('coffer put app/db username=app password=-', 'read the password from stdin')
          .example(
            'coffer put tls/site --type certificate certificate=@cert.pem private_key=@key.pem',
            'store a certificate',
          ),
      async (argv) => {
        const data = await parsePairs(argv.pairs, stdinOnce(deps.io));
        let generate: { key: string; length?: number } | undefined;
        if (argv.generate !== undefined) {
          const m = /^([A-Za-z0-9._-]+)(?::([0-9]+))?$/.exec(argv.generate);
          if (!m) throw new CliError('invalid_input', '--generate takes KEY or KEY:LENGTH');
          generate = { key: m[1]!, ...(m[2] ? { length: Number(m[2]) } : {}) };
        }
        if (Object.keys(data).length === 0 && !generate)
          throw new CliError('invalid_input', 'give at least one KEY=VALUE or --generate KEY');
        const result = await (
          await deps.client(argv)
        ).putSecret(argv.path, {
          data,
          ...(argv.type ? { type: argv.type } : {}),
          ...(argv.cas !== undefined ? { cas: argv.cas } : {}),
          ...(generate ? { generate } : {}),
        });
        output(deps.io, argv, result, () => `wrote ${result.path} version ${result.version}`);
      },
    )
    .command(
      'ls [prefix]',
      'List secret paths under a prefix',
      (y) => y.positional('prefix', { type: 'string', default: '' }).example('coffer ls app', 'every path under app/'),
      async (argv) => {
        const c = await deps.client(argv);
        const paths: string[] = [];
        for await (const p of c.list(argv.prefix)) paths.push(p);
        output(deps.io, argv, paths, () => paths.join('\n'));
      },
    )
    .command(
      'rm <path>',
      'Soft-delete the current version (or --versions)',
      (y) =>
        y
          .positional('path', { type: 'string', demandOption: true })
          .option('versions', versionsOption)
          .example('coffer rm app/db', 'soft-delete the current version')
          .example('coffer rm app/db --versions 1,2', 'soft-delete versions 1 and 2'),
      async (argv) => {
        await (await deps.client(argv)).deleteSecret(argv.path, parseVersions(argv.versions));
        output(
          deps.io,
          argv,
          { deleted: argv.path },
          () => `deleted ${argv.path}${argv.versions ? ` versions ${argv.versions}` : ''} (undo: coffer undelete)`,
        );
      },
    )
    .command(
      'history <path>',
      'Show the versions of a secret (never values)',
      (y) =>
        y
          .positional('path', { type: 'string', demandOption: true })
          .example('coffer history app/db', 'versions, when they were made, deleted or destroyed'),
      async (argv) => {
        const meta = await (await deps.client(argv)).metadata(argv.path);
        output(deps.io, argv, meta, () =>
          [
            'VERSION  CREATED            STATE',
            ...meta.versions.map(
              (v) =>
                `${String(v.version).padEnd(7)}  ${relative(v.created_at).padEnd(17)}  ${v.destroyed ? 'destroyed' : v.deleted_at ? 'deleted' : v.version === meta.current_version ? 'current' : ''}`,
            ),
          ].join('\n'),
        );
      },
    )
    .command(
      'undelete <path>',
      'Restore soft-deleted versions',
      (y) =>
        y
          .positional('path', { type: 'string', demandOption: true })
          .option('versions', { ...versionsOption, demandOption: true })
          .example('coffer undelete app/db --versions 3', 'bring back version 3 (see coffer history app/db)'),
      async (argv) => {
        await (await deps.client(argv)).undelete(argv.path, parseVersions(argv.versions)!);
        output(deps.io, argv, { undeleted: argv.path }, () => `restored ${argv.path} versions ${argv.versions}`);
      },
    )
    .command(
      'destroy <path>',
      'Erase versions for good (ciphertext and data key)',
      (y) =>
        y
          .positional('path', { type: 'string', demandOption: true })
          .option('versions', { ...versionsOption, demandOption: true })
          .example('coffer destroy app/db --versions 1,2', 'erase versions 1 and 2 for good (no undelete)'),
      async (argv) => {
        await (await deps.client(argv)).destroy(argv.path, parseVersions(argv.versions)!);
        output(deps.io, argv, { destroyed: argv.path }, () => `destroyed ${argv.path} versions ${argv.versions}`);
      },
    );
}

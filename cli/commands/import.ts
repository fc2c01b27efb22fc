import { readFile } from 'node:fs/promises';
import { SingleBar } from 'cli-progress';
import { parse } from 'dotenv';
import type { Argv } from 'yargs';
import { output, type GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import type { Deps } from '../io.js';

/**
 * `coffer import --from-dotenv FILE --path P`: the file's variables become one secret at P, or
 * with `--split` one secret per variable under P (`P/<name in lower case>`), with a progress bar
 * on stderr when it is a terminal. Values are never printed.
 */
export function importCommand(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  return yargs.command(
    'import',
    'Import a .env file as secrets',
    (y) =>
      y
        .option('from-dotenv', { type: 'string', demandOption: true, describe: 'the .env file' })
        .option('path', { type: 'string', demandOption: true, describe: 'secret path (or prefix with --split)' })
        .option('split', { type: 'boolean', default: false, describe: 'one secret per variable' })
        .example('coffer import --from-dotenv .env --path app/config', 'every variable as one secret'),
    async (argv) => {
      const text = await readFile(argv.fromDotenv, 'utf8').catch(() => {
        throw new CliError('invalid_input', `cannot read ${argv.fromDotenv}`);
      });
      const vars = parse(text);
      const names = Object.keys(vars);
      if (names.length === 0) throw new CliError('invalid_input', `${argv.fromDotenv} holds no variables`);
      const c = await deps.client(argv);
      if (!argv.split) {
        const result = await c.putSecret(argv.path, { data: vars });
        return void output(
          deps.io,
          argv,
          result,
          () => `imported ${names.length} variables into ${result.path} version ${result.version}`,
        );
      }
      const bar =
        deps.io.stderr.isTTY && !argv.json && !argv.quiet
          ? new SingleBar({ stream: deps.io.stderr, format: 'importing [{bar}] {value}/{total}' })
          : undefined;
      bar?.start(names.length, 0);
      const written: string[] = [];
      try {
        for (const name of names) {
          const path = `${argv.path}/${name.toLowerCase().replace(/[^a-z0-9._-]/g, '-')}`;
          await c.putSecret(path, { data: { [name]: vars[name]! } });
          written.push(path);
          bar?.increment();
        }
      } finally {
        bar?.stop();
      }
      output(deps.io, argv, written, () => `imported ${written.length} secrets under ${argv.path}`);
    },
  );
}

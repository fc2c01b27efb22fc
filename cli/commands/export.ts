import { appendFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { Unrepresentable, assertWellFormed, githubEnvBlock, githubMasks } from '../../sdk/github-commands.js';
import { type GlobalArgs } from '../context.js';
import { buildEnv, fetchSecrets } from '../env.js';
import { CliError } from '../errors.js';
import type { Deps } from '../io.js';

/**
 * Each format is written for its real reader, and a value that reader cannot get back exactly is
 * refused (naming the variable, never the value) rather than written corrupted. The rules below
 * come from the readers themselves: dotenv's parse (node_modules/dotenv, both its default regex
 * parser and `fast: true`), bash's `source`, and the GitHub Actions runner (actions/runner
 * ActionCommand.cs, ActionCommandManager.cs, FileCommandManager.cs); the tests re-check every
 * format against those readers with generated values.
 */
export type TextFormat = 'dotenv' | 'shell' | 'github';

/**
 * dotenv quoting, chosen per value. dotenv turns every CR of the file (and CRLF) into LF before
 * parsing; single quotes and backticks are then literal and may span lines; double quotes are
 * literal except that `\n` and `\r` become LF and CR (no other escape exists: `\"` keeps its
 * backslash); a closing quote preceded by a backslash is taken as part of the value, so a value
 * ending in `\` cannot be quoted at all; an unquoted value ends at `#` or the line end and is
 * trimmed.
 */
export function dotenvValue(value: string): string {
  assertWellFormed(value);
  const trailingBackslash = value.endsWith('\\');
  if (!trailingBackslash && !value.includes('\r')) {
    if (!value.includes("'")) return `'${value}'`;
    if (!value.includes('`')) return `\`${value}\``;
  }
  if (!trailingBackslash && !value.includes('"') && !/\\[nr]/.test(value))
    return `"${value.replace(/\r/g, '\\r').replace(/\n/g, '\\n')}"`;
  // Unquoted: one line, no '#', no surrounding white space, not starting with a quote.
  if (/^[^\s#'"`](?:[^#\r\n\u2028\u2029]*[^\s#])?$/.test(value)) return value;
  throw new Unrepresentable(
    'cannot be written so that dotenv reads it back exactly (a carriage return or a literal \\n together with a double quote, or all three quote characters with a line break, a # or surrounding spaces); use --format json or shell',
  );
}

export const dotenvLine = (name: string, value: string) => `${name}=${dotenvValue(value)}`;

/**
 * Names bash gives its own meaning: assigning them does not set them (RANDOM, SECONDS, UID, …),
 * and for the integer ones (RANDOM, SRANDOM, OPTIND, HISTCMD) the assignment is evaluated as
 * arithmetic, so a value like `x[$(cmd)]` runs cmd when the file is sourced.
 */
const SHELL_SPECIAL =
  /^(BASH|BASH_.*|BASHOPTS|BASHPID|SHELLOPTS|RANDOM|SRANDOM|SECONDS|LINENO|UID|EUID|PPID|EPOCHSECONDS|EPOCHREALTIME|HISTCMD|GROUPS|FUNCNAME|DIRSTACK|OPTIND|_)$/;

/** POSIX shell: single quotes, each ' written as '\'' (newlines and CRs survive inside the quotes). */
export function shellLine(name: string, value: string): string {
  if (SHELL_SPECIAL.test(name))
    throw new Unrepresentable(
      'is a name the shell gives its own meaning: sourcing it would not set it (use --map to rename it)',
    );
  assertWellFormed(value);
  return `export ${name}='${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * The whole output for one format, or one error listing every variable it cannot carry: nothing
 * is written unless every variable can be (stdout for dotenv and shell; for github, the masks on
 * stdout and the heredocs for $GITHUB_ENV).
 */
export function formatEnv(format: TextFormat, env: Map<string, string>): { stdout: string; githubEnv?: string } {
  const problems: string[] = [];
  const attempt = (name: string, f: () => string) => {
    try {
      return f();
    } catch (e) {
      if (!(e instanceof Unrepresentable)) throw e;
      problems.push(`${name} ${e.message}`);
      return '';
    }
  };
  let stdout = '';
  let githubEnv: string | undefined;
  if (format === 'github') {
    githubEnv = '';
    for (const [k, v] of env) {
      const block = attempt(k, () => githubEnvBlock(k, v));
      stdout += githubMasks(v);
      githubEnv += block;
    }
  } else {
    const line = format === 'dotenv' ? dotenvLine : shellLine;
    for (const [k, v] of env) stdout += `${attempt(k, () => line(k, v))}\n`;
  }
  if (problems.length > 0)
    throw new CliError('invalid_input', `cannot export as ${format}:\n  ${problems.join('\n  ')}`);
  return githubEnv === undefined ? { stdout } : { stdout, githubEnv };
}

export function exportCommand(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  return yargs.command(
    'export',
    'Print secrets as dotenv, json or shell, or hand them to GitHub Actions',
    (y) =>
      y
        .option('path', { type: 'string', array: true, demandOption: true })
        .option('format', { choices: ['dotenv', 'json', 'shell', 'github'] as const, demandOption: true })
        .option('prefix-env', { type: 'string', default: '' })
        .option('map', { type: 'string', array: true, default: [] as string[] })
        .option('allow-env', { type: 'string', array: true, default: [] as string[] })
        .example(
          'coffer export --path ci/api/db --format github',
          'in a GitHub Actions step: masked and exported to later steps',
        ),
    async (argv) => {
      const env = buildEnv(await fetchSecrets(await deps.client(argv), argv.path), {
        map: argv.map,
        prefix: argv.prefixEnv,
        allow: argv.allowEnv,
      });
      switch (argv.format) {
        case 'json':
          deps.io.stdout.write(`${JSON.stringify(Object.fromEntries(env), null, 2)}\n`);
          return;
        case 'dotenv':
        case 'shell':
          deps.io.stdout.write(formatEnv(argv.format, env).stdout);
          return;
        case 'github': {
          const file = deps.io.env.GITHUB_ENV;
          if (!file)
            throw new CliError(
              'invalid_input',
              'GITHUB_ENV is not set: --format github runs inside a GitHub Actions step',
            );
          const out = formatEnv('github', env);
          // Masks first: the runner must know every value before anything could show one.
          deps.io.stdout.write(out.stdout);
          await appendFile(file, out.githubEnv!);
          return;
        }
      }
    },
  );
}

import { randomBytes } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
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

/** A value (or name) the format cannot carry: why, without the value. */
class Unrepresentable extends Error {}

// Lone surrogates become U+FFFD on the way to UTF-8, and a NUL ends a shell string or an
// environment variable (buildEnv refuses it already): no text format can keep either.
const wellFormed = (value: string) => {
  if (!value.isWellFormed()) throw new Unrepresentable('holds an unpaired UTF-16 surrogate, which UTF-8 output cannot carry (use --format json)');
  if (value.includes('\u0000')) throw new Unrepresentable('holds a NUL character, which no environment variable can carry');
};

/**
 * dotenv quoting, chosen per value. dotenv turns every CR of the file (and CRLF) into LF before
 * parsing; single quotes and backticks are then literal and may span lines; double quotes are
 * literal except that `\n` and `\r` become LF and CR (no other escape exists: `\"` keeps its
 * backslash); a closing quote preceded by a backslash is taken as part of the value, so a value
 * ending in `\` cannot be quoted at all; an unquoted value ends at `#` or the line end and is
 * trimmed.
 */
export function dotenvValue(value: string): string {
  wellFormed(value);
  const trailingBackslash = value.endsWith('\\');
  if (!trailingBackslash && !value.includes('\r')) {
    if (!value.includes("'")) return `'${value}'`;
    if (!value.includes('`')) return `\`${value}\``;
  }
  if (!trailingBackslash && !value.includes('"') && !/\\[nr]/.test(value)) return `"${value.replace(/\r/g, '\\r').replace(/\n/g, '\\n')}"`;
  // Unquoted: one line, no '#', no surrounding white space, not starting with a quote.
  if (/^[^\s#'"`](?:[^#\r\n\u2028\u2029]*[^\s#])?$/.test(value)) return value;
  throw new Unrepresentable('cannot be written so that dotenv reads it back exactly (a carriage return or a literal \\n together with a double quote, or all three quote characters with a line break, a # or surrounding spaces); use --format json or shell');
}

export const dotenvLine = (name: string, value: string) => `${name}=${dotenvValue(value)}`;

/**
 * Names bash gives its own meaning: assigning them does not set them (RANDOM, SECONDS, UID, …),
 * and for the integer ones (RANDOM, SRANDOM, OPTIND, HISTCMD) the assignment is evaluated as
 * arithmetic, so a value like `x[$(cmd)]` runs cmd when the file is sourced.
 */
const SHELL_SPECIAL = /^(BASH|BASH_.*|BASHOPTS|BASHPID|SHELLOPTS|RANDOM|SRANDOM|SECONDS|LINENO|UID|EUID|PPID|EPOCHSECONDS|EPOCHREALTIME|HISTCMD|GROUPS|FUNCNAME|DIRSTACK|OPTIND|_)$/;

/** POSIX shell: single quotes, each ' written as '\'' (newlines and CRs survive inside the quotes). */
export function shellLine(name: string, value: string): string {
  if (SHELL_SPECIAL.test(name)) throw new Unrepresentable('is a name the shell gives its own meaning: sourcing it would not set it (use --map to rename it)');
  wellFormed(value);
  return `export ${name}='${value.replace(/'/g, `'\\''`)}'`;
}

/** .NET String.Trim (Char.IsWhiteSpace), which the runner uses: unlike JavaScript's trim it strips U+0085 and keeps U+FEFF. */
const NET_TRIM = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/** ActionCommand.UnescapeData decodes %0D, %0A and %25 (in that order): the inverse, '%' first. */
const escapeCommandData = (data: string) => data.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');

/**
 * `::add-mask::` lines for a value. The runner reads a step's output with .NET ReadLine, which
 * ends a line at CRLF, a lone CR or a lone LF, and masks log lines one at a time: so each such
 * line of the value is masked on its own (a whole multi-line mask would never match one log
 * line), and also trimmed, since older runners register only what they are given. No command
 * line may contain a CR or LF of its own, or the rest would be a new line: a new command.
 */
export function githubMasks(value: string): string {
  const masks = new Set<string>();
  for (const line of value.split(/\r\n|\r|\n/)) {
    const trimmed = line.replace(NET_TRIM, '');
    if (!trimmed) continue; // the runner refuses blank masks (and blank text reveals nothing)
    masks.add(line);
    masks.add(trimmed);
  }
  return [...masks].map((m) => `::add-mask::${escapeCommandData(m)}\n`).join('');
}

/**
 * GitHub Actions $GITHUB_ENV heredoc (FileCommandManager.cs): value lines up to a line equal to
 * the delimiter, which is random and never occurs in the value. Windows runners end a line at
 * CRLF, so a value ending in CR would lose it there; the runner drops NODE_OPTIONS.
 */
export function githubEnvBlock(name: string, value: string): string {
  if (name.toUpperCase() === 'NODE_OPTIONS') throw new Unrepresentable('is refused by the Actions runner in $GITHUB_ENV');
  wellFormed(value);
  if (value.endsWith('\r')) throw new Unrepresentable('ends in a carriage return, which a Windows runner strips from $GITHUB_ENV');
  let delimiter: string;
  do delimiter = `ghadelimiter_${randomBytes(16).toString('hex')}`;
  while (value.includes(delimiter));
  return `${name}<<${delimiter}\n${value}\n${delimiter}\n`;
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
  if (problems.length > 0) throw new CliError('invalid_input', `cannot export as ${format}:\n  ${problems.join('\n  ')}`);
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
        .example('coffer export --path ci/api/db --format github', 'in a GitHub Actions step: masked and exported to later steps'),
    async (argv) => {
      const env = buildEnv(await fetchSecrets(await deps.client(argv), argv.path), { map: argv.map, prefix: argv.prefixEnv, allow: argv.allowEnv });
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
          if (!file) throw new CliError('invalid_input', 'GITHUB_ENV is not set: --format github runs inside a GitHub Actions step');
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

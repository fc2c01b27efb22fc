import { randomBytes } from 'node:crypto';

/**
 * What the GitHub Actions runner reads from a step: workflow commands on stdout (`::add-mask::`)
 * and the file commands ($GITHUB_ENV, $GITHUB_OUTPUT, $GITHUB_STATE). Shared by
 * `coffer export --format github` and the action in deploy/github-action (README "Use in CI").
 * The rules come from the runner itself (actions/runner ActionCommand.cs, ActionCommandManager.cs,
 * FileCommandManager.cs); the tests re-check them against a re-implementation of that reader.
 */

/** A value (or name) a format cannot carry exactly: why, without the value. */
export class Unrepresentable extends Error {}

/**
 * Lone surrogates become U+FFFD on the way to UTF-8, and a NUL ends a shell string or an
 * environment variable: no text format can keep either.
 */
export function assertWellFormed(value: string): void {
  if (!value.isWellFormed())
    throw new Unrepresentable(
      'holds an unpaired UTF-16 surrogate, which UTF-8 output cannot carry (use --format json)',
    );
  if (value.includes('\u0000'))
    throw new Unrepresentable('holds a NUL character, which no environment variable can carry');
}

/** .NET String.Trim (Char.IsWhiteSpace), which the runner uses: unlike JavaScript's trim it strips U+0085 and keeps U+FEFF. */
const NET_TRIM =
  /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

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
 * A file-command heredoc (FileCommandManager.cs), the same for $GITHUB_ENV, $GITHUB_OUTPUT and
 * $GITHUB_STATE: value lines up to a line equal to the delimiter, which is random and never
 * occurs in the value. Windows runners end a line at CRLF, so a value ending in CR would lose it
 * there.
 */
export function githubFileBlock(name: string, value: string): string {
  assertWellFormed(value);
  if (value.endsWith('\r'))
    throw new Unrepresentable('ends in a carriage return, which a Windows runner strips from a file command');
  let delimiter: string;
  do delimiter = `ghadelimiter_${randomBytes(16).toString('hex')}`;
  while (value.includes(delimiter) || name.includes(delimiter));
  return `${name}<<${delimiter}\n${value}\n${delimiter}\n`;
}

/** $GITHUB_ENV: a file-command heredoc; the runner drops NODE_OPTIONS (SetEnvFileCommand). */
export function githubEnvBlock(name: string, value: string): string {
  if (name.toUpperCase() === 'NODE_OPTIONS')
    throw new Unrepresentable('is refused by the Actions runner in $GITHUB_ENV');
  return githubFileBlock(name, value);
}

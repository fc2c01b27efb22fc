/**
 * The GitHub Actions runner's rules for a step's output and its $GITHUB_ENV file, re-implemented
 * for tests so that `coffer export --format github` is checked against its real consumer rather
 * than against our own idea of it. Written from the sources of actions/runner (read at commit
 * 258d6c857db3519913f7deb6004b60172f8043ae), not copied:
 *
 * - src/Runner.Sdk/ProcessInvoker.cs: a step's stdout is read with .NET StreamReader.ReadLine,
 *   so a line ends at "\r\n", a lone "\r" or a lone "\n".
 * - src/Runner.Worker/Handlers/OutputManager.cs: a line containing "::" or "##[" is offered to
 *   the command manager; a line it takes as a command is not logged as output.
 * - src/Runner.Worker/ActionCommandManager.cs: TryParseV2 first, then the legacy TryParse; only
 *   registered command names count (case-insensitive); `::stop-commands::TOKEN` stops all
 *   command processing until a line whose command is TOKEN, and while stopped every command
 *   line (including `::add-mask::…`) is logged, i.e. printed in clear. add-mask is not echoed;
 *   it refuses null-or-whitespace data, registers the data, and (current runners) also each
 *   entry of the data split on '\r' and '\n', trimmed, empty entries dropped.
 * - src/Runner.Common/ActionCommand.cs: V2 is `::name[ props]::data` after TrimStart, the data
 *   separator being the first "::" after the leading one; data is unescaped by ordinal
 *   replacement of "%0D" → CR, then "%0A" → LF, then "%25" → "%" (so "%250A" stays "%0A").
 *   Legacy is `##[name[ k=v;…]]data` anywhere in the line, data unescaped for ";", CR, LF, "]", "%".
 * - src/Sdk/DTLogging/Logging/SecretMasker.cs, ValueSecret.cs: every ordinal occurrence of
 *   every registered value is found (overlapping too), the ranges merged, each replaced by "***".
 * - src/Runner.Worker/FileCommandManager.cs (EnvFileKeyValuePairs): the file is read whole; lines
 *   end at "\n" (on Windows "\r\n" first); `NAME=VALUE` when "=" comes before "<<", else
 *   `NAME<<DELIM` then value lines until a line equal (ordinal) to DELIM; the value is the text
 *   between, without the newline before the delimiter line; a missing delimiter or a delimiter
 *   without a newline before it fails the whole file; NODE_OPTIONS is refused by SetEnvFileCommand.
 */

/** Command names the runner registers (ActionCommandManager plus its command extensions). */
export const RUNNER_COMMANDS = [
  'stop-commands',
  'add-mask',
  'add-path',
  'add-matcher',
  'remove-matcher',
  'debug',
  'notice',
  'warning',
  'error',
  'group',
  'endgroup',
  'echo',
  'set-output',
  'save-state',
  'set-env',
];

/** StreamReader.ReadLine over a whole stream: CRLF, CR or LF end a line; no empty last line. */
export function runnerLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '\r' && c !== '\n') continue;
    lines.push(text.slice(start, i));
    if (c === '\r' && text[i + 1] === '\n') i++;
    start = i + 1;
  }
  if (start < text.length) lines.push(text.slice(start));
  return lines;
}

const replaceAll = (s: string, pairs: [string, string][]) =>
  pairs.reduce((acc, [from, to]) => acc.split(from).join(to), s);
/** ActionCommand.UnescapeData: ordinal, in this order. */
export const unescapeData = (s: string) =>
  replaceAll(s, [
    ['%0D', '\r'],
    ['%0A', '\n'],
    ['%25', '%'],
  ]);
const unescapeLegacy = (s: string) =>
  replaceAll(s, [
    ['%3B', ';'],
    ['%0D', '\r'],
    ['%0A', '\n'],
    ['%5D', ']'],
    ['%25', '%'],
  ]);

export interface ParsedCommand {
  command: string;
  data: string;
}

/**
 * .NET Char.IsWhiteSpace, used by String.Trim, TrimStart and IsNullOrWhiteSpace. Not JavaScript's
 * \s: it includes U+0085 (NEL) and excludes U+FEFF.
 */
const NET_WS = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
export const netTrim = (s: string) => s.replace(new RegExp(`^[${NET_WS}]+|[${NET_WS}]+$`, 'g'), '');
const trimStart = (s: string) => s.replace(new RegExp(`^[${NET_WS}]+`), '');

export function parseCommandV2(line: string, registered: Set<string>): ParsedCommand | undefined {
  const message = trimStart(line);
  if (!message.startsWith('::')) return undefined;
  const end = message.indexOf('::', 2);
  if (end < 0) return undefined;
  const info = message.slice(2, end);
  const space = info.indexOf(' ');
  const command = space < 0 ? info : info.slice(0, space);
  if (!registered.has(command.toLowerCase())) return undefined;
  return { command: command.toLowerCase(), data: unescapeData(message.slice(end + 2)) };
}

export function parseCommandLegacy(line: string, registered: Set<string>): ParsedCommand | undefined {
  const prefix = line.indexOf('##[');
  if (prefix < 0) return undefined;
  const rb = line.indexOf(']', prefix);
  if (rb < 0) return undefined;
  const info = line.slice(prefix + 3, rb);
  const space = info.indexOf(' ');
  const command = space < 0 ? info : info.slice(0, space);
  if (!registered.has(command.toLowerCase())) return undefined;
  return { command: command.toLowerCase(), data: unescapeLegacy(line.slice(rb + 1)) };
}

export interface StepOptions {
  /** Current runners also register each line of an add-mask value; older ones do not. */
  splitMaskData?: boolean;
}

export interface StepResult {
  /** Values registered with the secret masker. */
  masks: Set<string>;
  /** Every command the runner processed, in order (add-mask included). */
  commands: ParsedCommand[];
  /** Lines written to the log, before masking. */
  logged: string[];
  /** True when command processing was stopped at the end of the step. */
  stopped: boolean;
}

/** What the runner does with a step's stdout: commands processed, masks registered, the rest logged. */
export function runStep(stdout: string, options: StepOptions = {}): StepResult {
  const registered = new Set(RUNNER_COMMANDS);
  const masks = new Set<string>();
  const commands: ParsedCommand[] = [];
  const logged: string[] = [];
  let stopToken: string | undefined;
  for (const line of runnerLines(stdout)) {
    const parsed =
      line !== '' && (line.includes('##[') || line.includes('::'))
        ? (parseCommandV2(line, registered) ?? parseCommandLegacy(line, registered))
        : undefined;
    if (!parsed) {
      logged.push(line);
      continue;
    }
    if (stopToken !== undefined) {
      if (parsed.command === stopToken.toLowerCase()) {
        registered.delete(stopToken.toLowerCase());
        stopToken = undefined;
        commands.push(parsed);
      }
      // A command while stopped is ordinary output: an add-mask line shows its value.
      logged.push(line);
      continue;
    }
    commands.push(parsed);
    if (parsed.command === 'stop-commands') {
      stopToken = parsed.data;
      registered.add(stopToken.toLowerCase());
      if (stopToken.length > 6) masks.add(stopToken);
      logged.push(line);
    } else if (parsed.command === 'add-mask') {
      if (netTrim(parsed.data) === '') continue; // "Can't add secret mask for empty string"
      masks.add(parsed.data);
      if (options.splitMaskData ?? true)
        for (const item of parsed.data.split(/[\r\n]/)) if (netTrim(item)) masks.add(netTrim(item));
    }
  }
  return { masks, commands, logged, stopped: stopToken !== undefined };
}

/** The characters of a log line that SecretMasker.MaskSecrets would leave visible. */
export function unmasked(line: string, masks: Set<string>): string {
  const covered = new Array<boolean>(line.length).fill(false);
  for (const m of masks) {
    for (let at = line.indexOf(m); at >= 0; at = line.indexOf(m, at + 1)) covered.fill(true, at, at + m.length);
  }
  return line
    .split('')
    .filter((_, i) => !covered[i])
    .join(''); // UTF-16 units, as .NET indexes
}

/** SecretMasker.MaskSecrets: the merged ranges of every occurrence each become "***". */
export function maskLine(line: string, masks: Set<string>): string {
  const ranges: [number, number][] = [];
  for (const m of masks)
    for (let at = line.indexOf(m); at >= 0; at = line.indexOf(m, at + 1)) ranges.push([at, at + m.length]);
  ranges.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  let out = '';
  let from = 0;
  for (const [start, end] of merged) {
    out += `${line.slice(from, start)}***`;
    from = end;
  }
  return out + line.slice(from);
}

/** EnvFileKeyValuePairs + SetEnvFileCommand: the variables a $GITHUB_ENV file sets, or the error. */
export function parseGithubEnv(text: string, os: 'linux' | 'windows' = 'linux'): Map<string, string> {
  let index = 0;
  const readLine = (): { line: string; newline: string | null } | null => {
    if (index >= text.length) return null;
    const start = index;
    const lf = text.indexOf('\n', index);
    if (lf < 0) {
      index = text.length;
      return { line: text.slice(start), newline: null };
    }
    if (os === 'windows') {
      const crlf = text.indexOf('\r\n', index);
      if (crlf >= 0 && crlf < lf) {
        index = crlf + 2;
        return { line: text.slice(start, crlf), newline: '\r\n' };
      }
    }
    index = lf + 1;
    return { line: text.slice(start, lf), newline: '\n' };
  };
  const env = new Map<string, string>();
  for (let read = readLine(); read !== null; read = readLine()) {
    const { line } = read;
    if (line === '') continue;
    const eq = line.indexOf('=');
    const heredoc = line.indexOf('<<');
    let key: string;
    let value: string;
    if (eq >= 0 && (heredoc < 0 || eq < heredoc)) {
      key = line.slice(0, eq);
      value = line.slice(eq + 1);
    } else if (heredoc >= 0 && (eq < 0 || heredoc < eq)) {
      key = line.slice(0, heredoc);
      const delimiter = line.slice(heredoc + 2);
      if (key === '' || delimiter === '')
        throw new Error(`Invalid format '${line}'. Name must not be empty and delimiter must not be empty`);
      const start = index;
      let end = index;
      let next = readLine();
      while (next?.line !== delimiter) {
        if (next === null) throw new Error(`Invalid value. Matching delimiter not found '${delimiter}'`);
        if (next.newline === null) throw new Error('Invalid value. EOF marker missing new line.');
        end = index - next.newline.length;
        next = readLine();
      }
      value = end > start ? text.slice(start, end) : '';
    } else throw new Error(`Invalid format '${line}'`);
    if (key.toUpperCase() === 'NODE_OPTIONS') continue; // SetEnvFileCommand's block list
    env.set(key, value);
  }
  return env;
}

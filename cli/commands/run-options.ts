import { CliError } from '../errors.js';
import type { GlobalArgs } from '../io.js';

/**
 * `coffer run`'s flags, declared once. The yargs command (for `coffer run --help`) and the fast
 * entry that `coffer run` takes without yargs (cli/run-entry.ts) are both built from this
 * table, and both hand the parsed values to `runOptions`, so a value is accepted or refused the
 * same way whichever parser read it.
 */
export const RUN_FLAGS = {
  path: { kind: 'list', describe: 'secret path (repeatable; P/* takes every secret under P)' },
  'prefix-env': { kind: 'text', describe: 'prefix for every variable name' },
  map: { kind: 'list', describe: 'KEY=ENV or path:KEY=ENV' },
  'allow-env': { kind: 'list', describe: 'allow a dangerous name such as PATH' },
  'clean-env': { kind: 'flag', describe: 'give the child only the secrets and PATH, HOME, LANG, TERM, …' },
  'pass-token': { kind: 'flag', describe: 'let the child inherit COFFER_TOKEN (and COFFER_TOKEN_FILE)' },
  'revoke-on-exit': { kind: 'flag', describe: 'revoke the token when the child ends' },
  watch: { kind: 'flag', describe: 'restart the command when a secret gets a new version' },
  'watch-interval': { kind: 'seconds', default: 30, describe: 'seconds between checks with --watch' },
  'watch-grace': { kind: 'seconds', default: 10, describe: 'seconds between SIGTERM and SIGKILL on a restart' },
  file: {
    kind: 'list',
    describe: 'KEY=ENV: write the value to a 0600 file (private temp dir, removed on exit) and set ENV to its path',
  },
} as const satisfies Record<string, { kind: 'list' | 'text' | 'flag' | 'seconds'; describe: string; default?: number }>;

export type RunFlag = keyof typeof RUN_FLAGS;

export interface RunOptions extends GlobalArgs {
  path: string[];
  prefixEnv: string;
  map: string[];
  allowEnv: string[];
  cleanEnv: boolean;
  passToken: boolean;
  revokeOnExit: boolean;
  file: string[];
  watch: boolean;
  watchInterval: number;
  watchGrace: number;
}

const SECONDS = /^[1-9][0-9]{0,5}$/;

/** The checked options from parsed flag values (keyed by flag name), whichever parser read them. */
export function runOptions(values: Partial<Record<RunFlag, unknown>>, globals: GlobalArgs): RunOptions {
  const list = (flag: RunFlag): string[] => {
    const v = values[flag];
    return v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String);
  };
  const flag = (name: RunFlag) => values[name] === true;
  const seconds = (name: 'watch-interval' | 'watch-grace'): number => {
    const v = values[name];
    if (v === undefined) return RUN_FLAGS[name].default;
    if (!SECONDS.test(String(v)))
      throw new CliError('invalid_input', `--${name} takes a whole number of seconds from 1 to 999999`);
    return Number(v);
  };
  const path = list('path');
  if (path.length === 0)
    throw new CliError(
      'usage',
      'give --path and put the command after --, e.g. coffer run --path app/db -- ./start.sh',
    );
  return {
    ...globals,
    path,
    prefixEnv: values['prefix-env'] === undefined ? '' : String(values['prefix-env']),
    map: list('map'),
    allowEnv: list('allow-env'),
    cleanEnv: flag('clean-env'),
    passToken: flag('pass-token'),
    revokeOnExit: flag('revoke-on-exit'),
    file: list('file'),
    watch: flag('watch'),
    watchInterval: seconds('watch-interval'),
    watchGrace: seconds('watch-grace'),
  };
}

/** The table as node:util parseArgs options (the fast entry). */
export function parseArgsOptions(): Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> {
  return Object.fromEntries(
    Object.entries(RUN_FLAGS).map(([name, f]) => [
      name,
      f.kind === 'flag'
        ? { type: 'boolean' as const }
        : f.kind === 'list'
          ? { type: 'string' as const, multiple: true }
          : { type: 'string' as const },
    ]),
  );
}

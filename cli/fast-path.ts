/**
 * Whether `coffer ARGS` takes the `coffer run` fast path (cli/run-entry.ts: node:util parseArgs,
 * no yargs, no server code): `run`, unless `--help` or `-h` comes before `--`.
 */
export function takesRunFastPath(args: readonly string[]): boolean {
  if (args[0] !== 'run') return false;
  const separator = args.indexOf('--');
  const own = separator < 0 ? args : args.slice(0, separator);
  return !own.some((a) => a === '--help' || a === '-h');
}

import { parseArgs } from 'node:util';
import { runWith } from './commands/run.js';
import { EXIT, explain } from './context.js';
import { CliError } from './errors.js';

/** `coffer run` without yargs: the same options, parsed strictly by node:util. */
export async function runFromArgs(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        path: { type: 'string', multiple: true },
        'prefix-env': { type: 'string', default: '' },
        map: { type: 'string', multiple: true, default: [] },
        'allow-env': { type: 'string', multiple: true, default: [] },
        'clean-env': { type: 'boolean', default: false },
        'pass-token': { type: 'boolean', default: false },
        'revoke-on-exit': { type: 'boolean', default: false },
        file: { type: 'string', multiple: true, default: [] },
        watch: { type: 'boolean', default: false },
        'watch-interval': { type: 'string', default: '30' },
        'watch-grace': { type: 'string', default: '10' },
        addr: { type: 'string' },
        token: { type: 'string' },
        json: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    process.stderr.write(`coffer run: ${(e as Error).message}\nusage: coffer run --path P [--path P]... [--map K=ENV]... -- CMD [ARGS...] (see coffer run --help)\n`);
    process.exit(EXIT.usage);
  }
  const v = parsed.values;
  const separator = args.indexOf('--');
  const extra = separator < 0 ? parsed.positionals : parsed.positionals.slice(0, parsed.positionals.length - (args.length - separator - 1));
  if (!v.path || v.path.length === 0 || extra.length > 0) {
    process.stderr.write('coffer run: give --path and put the command after --, e.g. coffer run --path app/db -- ./start.sh\n');
    process.exit(EXIT.usage);
  }
  const seconds = (s: string, name: string) => {
    if (!/^[1-9][0-9]{0,5}$/.test(s)) throw new CliError('invalid_input', `--${name} takes a number of seconds`);
    return Number(s);
  };
  try {
    await runWith(
      {
        path: v.path,
        prefixEnv: v['prefix-env']!,
        map: v.map!,
        allowEnv: v['allow-env']!,
        cleanEnv: v['clean-env']!,
        passToken: v['pass-token']!,
        revokeOnExit: v['revoke-on-exit']!,
        file: v.file!,
        watch: v.watch!,
        watchInterval: seconds(v['watch-interval']!, 'watch-interval'),
        watchGrace: seconds(v['watch-grace']!, 'watch-grace'),
        ...(v.addr ? { addr: v.addr } : {}),
        ...(v.token ? { token: v.token } : {}),
        json: v.json!,
        quiet: v.quiet!,
      },
      separator < 0 ? [] : args.slice(separator + 1),
    );
  } catch (e) {
    const { message, code } = explain(e);
    process.stderr.write(`coffer: ${message}\n`);
    process.exit(code);
  }
}

import { parseArgs } from 'node:util';
import { runWith } from './commands/run.js';
import { parseArgsOptions, runOptions } from './commands/run-options.js';
import { depsOf, EXIT, explain } from './context.js';
import { processIO } from './io.js';

/** `coffer run` without yargs: the flags of cli/commands/run-options.ts, parsed strictly by node:util. */
export async function runFromArgs(args: string[]): Promise<void> {
  const deps = depsOf(processIO());
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        ...parseArgsOptions(),
        addr: { type: 'string' },
        token: { type: 'string' },
        json: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    process.stderr.write(
      `coffer run: ${(e as Error).message}\nusage: coffer run --path P [--path P]... [--map K=ENV]... -- CMD [ARGS...] (see coffer run --help)\n`,
    );
    process.exit(EXIT.usage);
  }
  const { addr, token, json, quiet, ...values } = parsed.values;
  const separator = args.indexOf('--');
  const extra =
    separator < 0
      ? parsed.positionals
      : parsed.positionals.slice(0, parsed.positionals.length - (args.length - separator - 1));
  if (extra.length > 0) {
    process.stderr.write(
      `coffer run: unexpected ${extra[0]}: put the command after --, e.g. coffer run --path app/db -- ./start.sh\n`,
    );
    process.exit(EXIT.usage);
  }
  try {
    const options = runOptions(values, {
      ...(typeof addr === 'string' ? { addr } : {}),
      ...(typeof token === 'string' ? { token } : {}),
      json: json,
      quiet: quiet,
    });
    process.exit(await runWith(options, separator < 0 ? [] : args.slice(separator + 1), deps));
  } catch (e) {
    const { message, code } = explain(e);
    process.stderr.write(`coffer: ${message}\n`);
    process.exit(code);
  }
}

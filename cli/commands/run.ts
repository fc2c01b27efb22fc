import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Argv } from 'yargs';
import { client, EXIT, type GlobalArgs } from '../context.js';
import { buildEnv, fetchSecrets } from '../env.js';

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const;
const MINIMAL_ENV = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TERM', 'TZ', 'TMPDIR'];

/**
 * `coffer run -- CMD ARGS`: fetch every secret first (all or nothing), then spawn CMD without a
 * shell, with stdio inherited, signals forwarded, and its exit status passed through.
 */
export function runCommand(yargs: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return yargs.command(
    'run',
    'Run a command with secrets as environment variables',
    (y) =>
      y
        .parserConfiguration({ 'populate--': true })
        .option('path', { type: 'string', array: true, demandOption: true, describe: 'secret path (repeatable; P/* takes every secret under P)' })
        .option('prefix-env', { type: 'string', default: '', describe: 'prefix for every variable name' })
        .option('map', { type: 'string', array: true, default: [] as string[], describe: 'KEY=ENV or path:KEY=ENV' })
        .option('allow-env', { type: 'string', array: true, default: [] as string[], describe: 'allow a dangerous name such as PATH' })
        .option('clean-env', { type: 'boolean', default: false, describe: 'give the child only the secrets and PATH, HOME, LANG, TERM, …' })
        .option('pass-token', { type: 'boolean', default: false, describe: 'let the child inherit COFFER_TOKEN' })
        .option('revoke-on-exit', { type: 'boolean', default: false, describe: 'revoke the token when the child ends' })
        .example('coffer run --path ci/api/db -- ./migrate.sh', 'DB_PASSWORD etc. for one command'),
    async (argv) => {
      const command = (argv['--'] as string[] | undefined) ?? [];
      if (command.length === 0) {
        process.stderr.write('coffer: name the command after --, e.g. coffer run --path app/db -- ./start.sh\n');
        process.exit(EXIT.usage);
      }
      const c = await client(argv);
      const secrets = await fetchSecrets(c, argv.path);
      const fromSecrets = buildEnv(secrets, { map: argv.map, prefix: argv.prefixEnv, allow: argv.allowEnv });
      const base: NodeJS.ProcessEnv = argv.cleanEnv ? Object.fromEntries(MINIMAL_ENV.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]])) : { ...process.env };
      if (!argv.passToken) delete base.COFFER_TOKEN;
      const env = { ...base, ...Object.fromEntries(fromSecrets) }; // secrets win over inherited variables
      const code = await spawnChild(command[0]!, command.slice(1), env);
      if (argv.revokeOnExit) await c.revoke().catch(() => undefined);
      process.exit(code);
    },
  );
}

function spawnChild(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(file, args, { env, stdio: 'inherit', shell: false });
    } catch (e) {
      const big = (e as NodeJS.ErrnoException).code === 'E2BIG';
      process.stderr.write(`coffer: cannot start ${file}: ${big ? 'the environment is too large (E2BIG)' : (e as Error).message}\n`);
      return resolve(EXIT.error);
    }
    const forward = (signal: NodeJS.Signals) => () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    };
    const handlers = FORWARDED.map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    child.once('error', (e: NodeJS.ErrnoException) => {
      process.stderr.write(`coffer: cannot run ${file}: ${e.code === 'ENOENT' ? 'command not found' : e.code === 'EACCES' ? 'permission denied' : e.code}\n`);
      resolve(e.code === 'ENOENT' ? 127 : e.code === 'EACCES' ? 126 : EXIT.error);
    });
    child.once('exit', (code, signal) => {
      for (const [s, h] of handlers) process.off(s, h);
      resolve(code ?? 128 + ((signal && constants.signals[signal]) || 0));
    });
  });
}

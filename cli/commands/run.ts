import { spawn } from 'node:child_process';
// fs.promises at each call, not node:fs/promises: see sdk/client.ts.
import { promises as fs } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { EXIT, type GlobalArgs } from '../context.js';
import type { Secret } from '../../sdk/wire/types.js';
import { ENV_NAME, isDangerousName } from '../../sdk/env-names.js';
import { buildEnv, fetchSecrets } from '../env.js';
import { CliError } from '../errors.js';
import { RUN_FLAGS, runOptions, type RunOptions } from './run-options.js';
import type { Deps, IO } from '../io.js';

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const;
const MINIMAL_ENV = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TERM', 'TZ', 'TMPDIR'];

/**
 * `coffer run -- CMD ARGS`: fetch every secret first (all or nothing), then spawn CMD without a
 * shell, with stdio inherited, signals forwarded, and its exit status passed through.
 */
export function runCommand(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  return yargs.command(
    'run',
    'Run a command with secrets as environment variables',
    (y) => {
      let c = y.parserConfiguration({ 'populate--': true });
      for (const [name, f] of Object.entries(RUN_FLAGS)) {
        // Seconds are read as text, so runOptions checks them as the fast entry does.
        c = c.option(name, {
          type: f.kind === 'flag' ? 'boolean' : 'string',
          array: f.kind === 'list',
          describe: 'default' in f ? `${f.describe} (default ${f.default})` : f.describe,
        });
      }
      return c
        .example('coffer run --path ci/api/db -- ./migrate.sh', 'DB_PASSWORD etc. for one command')
        .example(
          'coffer run --path ci/api/db --path ci/api/cache --clean-env -- ./start.sh',
          'only the secrets and a minimal environment',
        );
    },
    async (argv) => {
      const values = Object.fromEntries(Object.keys(RUN_FLAGS).map((name) => [name, argv[name]]));
      const globals = {
        ...(argv.addr ? { addr: argv.addr } : {}),
        ...(argv.token ? { token: argv.token } : {}),
        json: argv.json === true,
        quiet: argv.quiet === true,
      };
      process.exit(await runWith(runOptions(values, globals), (argv['--'] as string[] | undefined) ?? [], deps));
    },
  );
}

/**
 * The whole of `coffer run`, shared by the yargs command and the fast entry (run-entry.ts):
 * resolves to the exit status to leave with (the child's).
 */
/** The variables `coffer login` reads credentials from by default (cli/commands/auth.ts). */
const LOGIN_CREDENTIALS = ['COFFER_PASSWORD', 'COFFER_SECRET_ID', 'COFFER_JWT'] as const;

export async function runWith(argv: RunOptions, command: string[], deps: Deps): Promise<number> {
  if (command.length === 0) {
    deps.io.stderr.write('coffer: name the command after --, e.g. coffer run --path app/db -- ./start.sh\n');
    return EXIT.usage;
  }
  const env = deps.io.env;
  const c = await deps.client(argv);
  const base: NodeJS.ProcessEnv = argv.cleanEnv
    ? Object.fromEntries(MINIMAL_ENV.filter((k) => env[k] !== undefined).map((k) => [k, env[k]]))
    : { ...env };
  if (!argv.passToken) {
    delete base.COFFER_TOKEN;
    delete base.COFFER_TOKEN_FILE; // naming the file hands the child the token just the same
  }
  // The login methods' credentials (`coffer login`'s default variables) are never the child's:
  // with them it could log in as this job, whatever --pass-token says.
  for (const login of LOGIN_CREDENTIALS) delete base[login];
  /** Everything fetched and checked before any child starts; `versions` detects changes. */
  const prepare = async () => {
    const secrets = await fetchSecrets(c, argv.path);
    const fromSecrets = buildEnv(secrets, { map: argv.map, prefix: argv.prefixEnv, allow: argv.allowEnv });
    const files =
      argv.file.length > 0
        ? await writeSecretFiles(secrets, argv.file, { allow: argv.allowEnv, taken: new Set(fromSecrets.keys()) })
        : undefined;
    const env = { ...base, ...Object.fromEntries(fromSecrets), ...files?.env }; // secrets win over inherited variables
    return { env, files, versions: secrets.map((s) => `${s.path}@${s.version}`).join(',') };
  };
  let current = await prepare();
  let resolveExit!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (resolveExit = resolve));
  // A replaced child's exit is not the command's exit.
  const watchExit = (c: Child) => void c.done.then((code) => c.replaced || resolveExit(code));
  let child = startChild(command[0]!, command.slice(1), current.env, deps.io);
  watchExit(child);
  let timer: NodeJS.Timeout | undefined;
  if (argv.watch) {
    // Poll; on a new version: prepare the new environment fully, then stop the old child
    // (SIGTERM, SIGKILL after the grace period) and start the new one: never two at once.
    const poll = async () => {
      try {
        const next = await prepare();
        if (next.versions === current.versions) {
          await next.files?.remove();
        } else {
          deps.io.stderr.write('coffer: a secret changed: restarting the command\n');
          child.replaced = true;
          await child.stop(argv.watchGrace * 1000);
          await current.files?.remove();
          current = next;
          child = startChild(command[0]!, command.slice(1), current.env, deps.io);
          watchExit(child);
        }
      } catch (e) {
        deps.io.stderr.write(
          `coffer: could not refresh secrets (${(e as Error).message}); the command keeps running\n`,
        );
      }
      timer = setTimeout(() => void poll(), argv.watchInterval * 1000);
    };
    timer = setTimeout(() => void poll(), argv.watchInterval * 1000);
  }
  const code = await finished;
  clearTimeout(timer);
  await current.files?.remove();
  if (argv.revokeOnExit) await c.revoke().catch(() => undefined);
  return code;
}

/**
 * `--file KEY=ENV`: the value of KEY (from any fetched secret) goes to a 0600 file in a 0700
 * temp dir made for this run; ENV names the file. Removed when the child ends.
 */
async function writeSecretFiles(
  secrets: Secret[],
  specs: string[],
  names: { allow: readonly string[]; taken: Set<string> },
): Promise<{ env: Record<string, string>; remove: () => Promise<void> }> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'coffer-run-'));
  const remove = () => fs.rm(dir, { recursive: true, force: true });
  try {
    const env: Record<string, string> = {};
    for (const spec of specs) {
      const eq = spec.lastIndexOf('=');
      const key = spec.slice(0, eq);
      const name = spec.slice(eq + 1);
      if (eq < 1 || !ENV_NAME.test(name))
        throw new CliError('invalid_input', `--file ${spec.split('=')[0]}=…: expected KEY=ENV_NAME`);
      // The same rules as the names taken from secrets: no name that changes how programs run, none taken twice.
      if (isDangerousName(name, names.allow))
        throw new CliError(
          'invalid_input',
          `--file ${key}=${name}: ${name} would change how programs run (allow it with --allow-env ${name})`,
        );
      if (names.taken.has(name) || Object.hasOwn(env, name))
        throw new CliError(
          'invalid_input',
          `--file ${key}=${name}: ${name} is already set from a secret or another --file (choose another name)`,
        );
      // Own keys only: `in` would find `constructor` or `toString` on every secret's prototype.
      const owner = secrets.find((s) => Object.hasOwn(s.data, key));
      if (!owner) throw new CliError('not_found', `--file: no fetched secret has a key ${key}`);
      const file = join(dir, name.toLowerCase());
      await fs.writeFile(file, owner.data[key]!, { mode: 0o600, flag: 'wx' });
      env[name] = file;
    }
    return { env, remove };
  } catch (e) {
    await remove();
    throw e;
  }
}

interface Child {
  done: Promise<number>;
  /** Set when the watcher replaces this child: its exit is not the command's exit. */
  replaced: boolean;
  stop(graceMs: number): Promise<void>;
}

/** Takes the IO, not its stderr: process.stderr is created on first use, and a run that goes well never writes to it. */
function startChild(file: string, args: string[], env: NodeJS.ProcessEnv, io: IO): Child {
  let proc: ReturnType<typeof spawn>;
  const handle: Child = { done: Promise.resolve(EXIT.error), replaced: false, stop: async () => undefined };
  try {
    proc = spawn(file, args, { env, stdio: 'inherit', shell: false });
  } catch (e) {
    const big = (e as NodeJS.ErrnoException).code === 'E2BIG';
    io.stderr.write(
      `coffer: cannot start ${file}: ${big ? 'the environment is too large (E2BIG)' : (e as Error).message}\n`,
    );
    return handle;
  }
  const running = () => proc.exitCode === null && proc.signalCode === null;
  const handlers = FORWARDED.map((s) => [s, () => running() && proc.kill(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  handle.done = new Promise((resolve) => {
    proc.once('error', (e: NodeJS.ErrnoException) => {
      io.stderr.write(
        `coffer: cannot run ${file}: ${e.code === 'ENOENT' ? 'command not found' : e.code === 'EACCES' ? 'permission denied' : e.code}\n`,
      );
      for (const [s, h] of handlers) process.off(s, h);
      resolve(e.code === 'ENOENT' ? 127 : e.code === 'EACCES' ? 126 : EXIT.error);
    });
    proc.once('exit', (code, signal) => {
      for (const [s, h] of handlers) process.off(s, h);
      resolve(code ?? 128 + ((signal && constants.signals[signal]) || 0));
    });
  });
  handle.stop = async (graceMs) => {
    if (!running()) return;
    proc.kill('SIGTERM');
    const killer = setTimeout(() => running() && proc.kill('SIGKILL'), graceMs);
    await handle.done;
    clearTimeout(killer);
  };
  return handle;
}

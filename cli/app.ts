import yargs, { type Argv } from 'yargs';
import { adminCommands } from './commands/admin.js';
import { auditCommand } from './commands/audit.js';
import { authCommands } from './commands/auth.js';
import { exportCommand } from './commands/export.js';
import { importCommand } from './commands/import.js';
import { keyringCommands } from './commands/keyring.js';
import { keyCommands } from './commands/key.js';
import { byokCommands } from './commands/byok.js';
import { backupCommands } from './commands/backup.js';
import { runCommand } from './commands/run.js';
import { replicaCommands } from './commands/replica.js';
import { secretCommands } from './commands/secrets.js';
import { sysCommands } from './commands/sys.js';
import { depsOf, EXIT, explain, output, type GlobalArgs } from './context.js';
import { processIO, type Deps } from './io.js';

/** A refused command line: yargs' message, after the help text. */
class UsageError extends Error {}

/**
 * The full `coffer` CLI (cli/main.ts answers `--version` and `coffer run` before loading it).
 * `coffer server` is the one command that loads the server (lazily, so client commands start
 * fast); every other command talks to a server through the SDK, with its IO and client from
 * `deps`: the process's for the real binary, a test's own for in-process runs. Resolves to the
 * exit status (the caller exits with it).
 */
export async function runCoffer(args: string[], deps: Deps = depsOf(processIO())): Promise<number> {
  const { io } = deps;
  let status: number | undefined;
  const commands = { ...deps, exitCode: (code: number) => void (status = code) };
  let cli = yargs()
    .scriptName('coffer')
    // `coffer --version` is answered in main.ts (yargs' own version option is global and would
    // collide with `get --version N`); declared here, not global, so the root help lists it.
    .version(false)
    .option('version', { type: 'boolean', global: false, describe: 'print the coffer version (package.json)' })
    .example('coffer server --dev', 'start a local dev vault')
    .example('coffer put app/db password=-', 'write a secret (the value from stdin)')
    .example('coffer run --path app/db -- ./start.sh', 'run a command with the secret as environment variables')
    .example('coffer <command> --help', 'options and examples of one command')
    .option('addr', {
      type: 'string',
      global: true,
      describe: 'server address (COFFER_ADDR, default http://127.0.0.1:8740)',
    })
    .option('token', {
      type: 'string',
      global: true,
      describe: 'token (prefer COFFER_TOKEN or coffer login: arguments are visible to other users)',
    })
    .option('json', { type: 'boolean', global: true, describe: 'machine-readable output' })
    .option('quiet', { type: 'boolean', global: true, describe: 'print nothing on success' })
    .command(
      'server',
      'Run a Coffer server',
      (y) =>
        y
          .option('dev', {
            type: 'boolean',
            describe: 'dev mode: LevelDB in ./.coffer, key file, auto-init and unseal',
          })
          .option('config', { type: 'string', describe: 'config file (JSON or YAML)' })
          .option('data-dir', { type: 'string', describe: 'data directory' })
          .option('listen', { type: 'string', describe: 'HOST:PORT to listen on (default 127.0.0.1:8740)' })
          .option('kek', {
            type: 'string',
            describe:
              'master key source: shamir:, file:PATH, env:VAR, passphrase:[VAR], pkcs11:module=…;token=…;key=…;pin-env=VAR',
          })
          .option('log-level', { type: 'string', describe: 'fatal|error|warn|info|debug|trace|silent' })
          .option('replicate-to', {
            type: 'string',
            array: true,
            describe:
              'ship the change log to this bucket (repeatable): file:///dir or s3://bucket/prefix?endpoint=…&region=…',
          })
          .option('replica-of', { type: 'string', describe: 'run as a read-only replica of the stream in this bucket' })
          .option('poll-interval', { type: 'number', describe: 'seconds between a replica’s polls (default 2)' })
          .option('api-addr', {
            type: 'string',
            describe: 'address published to replicas (default: the listen address)',
          })
          .option('tls-cert-file', {
            type: 'string',
            describe: 'server certificate (PEM; the chain may follow the leaf)',
          })
          .option('tls-key-file', {
            type: 'string',
            describe: 'its private key (PEM, unencrypted, mode 0600); SIGHUP reloads both',
          })
          .option('tls-min-version', {
            type: 'string',
            choices: ['TLSv1.2', 'TLSv1.3'],
            describe: 'oldest TLS version accepted (default TLSv1.2)',
          })
          .option('tls-client-ca-file', { type: 'string', describe: 'mTLS: CA (PEM) that signs client certificates' })
          .option('tls-require-client-cert', {
            type: 'boolean',
            describe: 'mTLS: refuse a handshake without a client certificate from that CA',
          })
          .option('dev-tls', {
            type: 'boolean',
            describe: 'dev mode over HTTPS with a throw-away CA in <data-dir>/tls/ (prints COFFER_CACERT=…)',
          })
          .option('insecure-no-tls', {
            type: 'boolean',
            describe: 'allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy)',
          })
          .option('allow-expired-cert', {
            type: 'boolean',
            describe: 'start even though the server certificate has expired',
          })
          .option('max-connections-per-address', {
            type: 'number',
            describe: 'open connections one client address may hold (default 256, 0: no cap)',
          })
          .option('shutdown-grace-s', {
            type: 'number',
            describe: 'SIGTERM: seconds requests in flight may take to finish (default 10)',
          })
          .example('coffer server --dev', 'run a local dev vault in ./.coffer')
          .example('coffer server --dev-tls', 'the same over HTTPS with a throw-away CA')
          .example(
            'coffer server --config /etc/coffer/coffer.yaml --tls-cert-file /etc/coffer/tls/server.pem --tls-key-file /etc/coffer/tls/server-key.pem',
            'serve HTTPS on the network',
          )
          .example('coffer server --data-dir /var/lib/coffer --kek shamir:', 'run sealed; then init and unseal'),
      async (argv) => {
        const { runServer } = await import('../server/main.js');
        await runServer({
          config: argv.config,
          dev: argv.dev,
          data_dir: argv.dataDir,
          listen: argv.listen,
          kek: argv.kek,
          log_level: argv.logLevel,
          replicate_to: argv.replicateTo,
          replica_of: argv.replicaOf,
          poll_interval: argv.pollInterval,
          api_addr: argv.apiAddr,
          shutdown_grace_s: argv.shutdownGraceS,
          tls_cert_file: argv.tlsCertFile,
          tls_key_file: argv.tlsKeyFile,
          tls_min_version: argv.tlsMinVersion,
          tls_client_ca_file: argv.tlsClientCaFile,
          tls_require_client_cert: argv.tlsRequireClientCert,
          dev_tls: argv.devTls,
          insecure_no_tls: argv.insecureNoTls,
          allow_expired_cert: argv.allowExpiredCert,
          max_connections_per_address: argv.maxConnectionsPerAddress,
        });
      },
    ) as unknown as Argv<GlobalArgs>;
  cli = cli.command(
    'hsm init',
    'Create the master key in an HSM token (refuses to overwrite an existing key)',
    (y) =>
      y
        .option('kek', {
          type: 'string',
          demandOption: true,
          describe: 'pkcs11:module=PATH;token=LABEL[,LABEL];key=LABEL;pin-env=VAR (or pin-file=PATH)',
        })
        .option('key-file', {
          type: 'string',
          describe:
            'put these 32 key bytes into every listed token instead of generating (a cluster needs the same key)',
        })
        .example(
          'coffer hsm init --kek "pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=coffer;key=master;pin-env=HSM_PIN"',
          'generate the key inside the token',
        )
        .example(
          'coffer hsm init --kek "pkcs11:module=/usr/lib/hsm.so;token=A,B;key=master;pin-env=HSM_PIN" --key-file master.key',
          'seed a two-token cluster',
        ),
    async (argv) => {
      const [{ parsePkcs11Uri }, { initHsmKey }, { readKeyFile }] = await Promise.all([
        import('../server/keys/pkcs11/uri.js'),
        import('../server/keys/pkcs11/init.js'),
        import('../server/keys/root-key.js'),
      ]);
      const settings = parsePkcs11Uri(argv.kek);
      const material = argv.keyFile ? await readKeyFile(argv.keyFile) : undefined;
      try {
        const result = initHsmKey(settings, io.env, material);
        output(
          io,
          argv,
          result,
          () =>
            `Created master key "${result.key}" (version 1, ${result.source}) in ${result.tokens.map((t) => `"${t}"`).join(', ')}.\nStart the server with --kek "${argv.kek}"`,
        );
      } finally {
        material?.fill(0);
      }
    },
  );
  cli = sysCommands(cli, commands);
  cli = replicaCommands(cli, commands);
  cli = authCommands(cli, commands);
  cli = secretCommands(cli, commands);
  cli = runCommand(cli, commands);
  cli = exportCommand(cli, commands);
  cli = adminCommands(cli, commands);
  cli = importCommand(cli, commands);
  cli = keyringCommands(cli, commands);
  cli = keyCommands(cli, commands);
  cli = byokCommands(cli, commands);
  cli = backupCommands(cli, commands, async (options) =>
    (await import('../server/backup/restore.js')).restoreBackup(options),
  );

  try {
    await cli
      .command('audit', 'Work with audit logs', (y) =>
        auditCommand(y, commands)
          .demandCommand(1, 'name an audit command: verify')
          .example(
            'coffer audit verify /var/lib/coffer/audit.log',
            'check the chain, checkpoints and signed tail of a log',
          ),
      )
      // Our own `completion` command (yargs' built-in one prints the script even for --help, so it
      // cannot show examples); yargs still answers --get-yargs-completions through the hidden one.
      .completion('__completion', false)
      .command(
        'completion',
        'Print a shell completion script (bash/zsh): coffer completion >> ~/.bashrc',
        (y: Argv<GlobalArgs>) =>
          y.example('coffer completion >> ~/.bashrc', 'bash').example('coffer completion >> ~/.zshrc', 'zsh'),
        () =>
          void (cli as unknown as { showCompletionScript($0: string, cmd: string): void }).showCompletionScript(
            'coffer',
            'completion',
          ),
      )
      .demandCommand(1, 'name a command: see coffer --help')
      .strict()
      .exitProcess(false)
      .fail((message, error, y) => {
        if (error) throw error;
        y.showHelp((text: string) => io.stderr.write(`${text}\n\n`)); // the usage of the command that was wrong
        throw new UsageError(message);
      })
      .help()
      // With a callback, yargs hands over what it would print (help, completion) instead of
      // writing it to the console: it goes to the injected stdout like every other output.
      .parseAsync(args, {}, (error, _argv, text) => {
        if (text) (error ? io.stderr : io.stdout).write(`${text}\n${error ? '\n' : ''}`);
      });
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`coffer: ${error.message}\n`);
      return EXIT.usage;
    }
    const { message: text, code } = explain(error);
    io.stderr.write(`coffer: ${text}\n`);
    return code;
  }
  return status ?? 0;
}

import type { Argv } from 'yargs';
import { output, type GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import { readAll, type Deps } from '../io.js';

/** `coffer key create|rotate|datakey|encrypt|decrypt NAME` (data-key API). Data comes on stdin. */
export function keyCommands(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  return yargs.command(
    'key <action> <name>',
    'Named encryption keys: create, rotate, datakey, encrypt (stdin), decrypt (stdin)',
    (y) =>
      y
        .positional('action', {
          choices: ['create', 'rotate', 'datakey', 'encrypt', 'decrypt', 'info'] as const,
          demandOption: true,
        })
        .positional('name', { type: 'string', demandOption: true })
        .option('context', { type: 'string', describe: 'context bound to the ciphertext (must match at decrypt)' })
        .option('exportable', { type: 'boolean', default: false })
        .example('echo -n secret | coffer key encrypt orders', 'prints coffer:v1:…')
        .example('echo coffer:v1:… | coffer key decrypt orders', 'prints the plaintext'),
    async (argv) => {
      const c = await deps.client(argv);
      const context = argv.context === undefined ? undefined : new Uint8Array(Buffer.from(argv.context));
      switch (argv.action) {
        case 'create': {
          const info = await c.createKey(argv.name, { exportable: argv.exportable });
          return void output(deps.io, argv, info, () => `created key ${info.name} (version ${info.latest_version})`);
        }
        case 'info': {
          const info = await c.keyInfo(argv.name);
          return void output(
            deps.io,
            argv,
            info,
            () =>
              `key ${info.name}: version ${info.latest_version}, decrypts from ${info.min_decryption_version}, usage ${info.usage.join(', ')}`,
          );
        }
        case 'rotate': {
          const info = await c.rotateKey(argv.name);
          return void output(deps.io, argv, info, () => `key ${info.name} is now at version ${info.latest_version}`);
        }
        case 'datakey': {
          const dk = await c.dataKey(argv.name, context);
          const result = { plaintext: Buffer.from(dk.plaintext).toString('base64'), ciphertext: dk.ciphertext };
          return void output(
            deps.io,
            argv,
            result,
            () => `plaintext  ${result.plaintext}\nciphertext ${result.ciphertext}`,
          );
        }
        case 'encrypt': {
          const ciphertext = await c.encrypt(argv.name, new Uint8Array(await readAll(deps.io)), context);
          return void output(deps.io, argv, { ciphertext }, () => ciphertext);
        }
        case 'decrypt': {
          const ciphertext = (await readAll(deps.io)).toString('utf8').trim();
          if (!ciphertext) throw new CliError('invalid_input', 'give the ciphertext on stdin');
          const plaintext = await c.decrypt(argv.name, ciphertext, context);
          if (argv.json)
            return void output(deps.io, argv, { plaintext: Buffer.from(plaintext).toString('base64') }, () => '');
          deps.io.stdout.write(plaintext);
          return;
        }
      }
    },
  );
}

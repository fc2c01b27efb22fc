import { readFile, writeFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { wrapForImport } from '../../sdk/byok.js';
import { OAEP_HASHES } from '../../sdk/wire/constants.js';
import { output, type GlobalArgs } from '../context.js';
import { decodeKeyFile } from '../key-file.js';
import { promptSecret } from './sys.js';
import { CliError } from '../errors.js';
import { readAll, type Deps } from '../io.js';

/** `coffer byok wrapping-key|wrap|import`: bring your own master key. */
export function byokCommands(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  return yargs.command(
    'byok <action>',
    'Bring your own key: wrapping key, wrap, import; export under a quorum of shares',
    (y) =>
      y
        .positional('action', { choices: ['wrapping-key', 'wrap', 'import', 'export'] as const, demandOption: true })
        .option('shares', {
          type: 'number',
          describe: 'export: how many shares to ask for (one per administrator, prompted without echo)',
        })
        .option('public-key', { type: 'string', describe: 'wrap: PEM file of the wrapping key' })
        .option('key-file', {
          type: 'string',
          describe: 'wrap: file with the 32-byte key material (raw, hex or base64)',
        })
        .option('oaep-hash', { choices: OAEP_HASHES, default: 'sha256' as const })
        .option('out', { type: 'string', describe: 'wrapping-key: write the PEM here' })
        .option('exportable', {
          type: 'boolean',
          describe: 'wrapping-key: the imported key may be exported again under quorum (default: no)',
        })
        .option('valid-to', {
          type: 'string',
          describe: 'wrapping-key: the imported material stops working at this ISO 8601 time',
        })
        .option('import-token', { type: 'string', describe: 'import: the token from wrapping-key' })
        .option('bundle', { type: 'string', describe: 'import: file holding the wrapped key (base64)' })
        .example('coffer byok wrapping-key --out wrap.pem', 'prints the import token')
        .example('coffer byok wrap --public-key wrap.pem --key-file master.key > bundle.b64', 'on the customer side')
        .example('coffer byok import --import-token … --bundle bundle.b64', 'installs the new master version'),
    async (argv) => {
      switch (argv.action) {
        case 'wrapping-key': {
          const wk = await (
            await deps.client(argv)
          ).byokWrappingKey({
            ...(argv.exportable !== undefined ? { exportable: argv.exportable } : {}),
            ...(argv.validTo !== undefined ? { valid_to: argv.validTo } : {}),
          });
          if (argv.out) await writeFile(argv.out, wk.public_key_pem);
          return void output(
            deps.io,
            argv,
            wk,
            () =>
              `${argv.out ? `wrapping key written to ${argv.out}\n` : wk.public_key_pem}import token (single use, expires ${wk.expires_at}):\n${wk.import_token}`,
          );
        }
        case 'wrap': {
          if (!argv.publicKey || !argv.keyFile)
            throw new CliError('invalid_input', 'wrap needs --public-key and --key-file');
          const material = decodeKeyFile(await readFile(argv.keyFile));
          try {
            deps.io.stdout.write(`${wrapForImport(await readFile(argv.publicKey, 'utf8'), material, argv.oaepHash)}\n`);
          } finally {
            material.fill(0);
          }
          return;
        }
        case 'export': {
          if (!argv.publicKey || !argv.shares)
            throw new CliError('invalid_input', 'export needs --public-key (the customer RSA key) and --shares N');
          const shares: string[] = [];
          if (deps.io.stdin.isTTY) {
            for (let i = 1; i <= argv.shares; i++)
              shares.push(await promptSecret(`share ${i} of ${argv.shares}: `, deps.io));
          } else {
            shares.push(
              ...(await readAll(deps.io))
                .toString('utf8')
                .split(/\r?\n/)
                .map((l) => l.trim())
                .filter(Boolean)
                .slice(0, argv.shares),
            );
          }
          const result = await (
            await deps.client(argv)
          ).byokExport(await readFile(argv.publicKey, 'utf8'), shares, argv.oaepHash);
          return void output(deps.io, argv, result, () => result.bundle);
        }
        case 'import': {
          if (!argv.importToken || !argv.bundle)
            throw new CliError('invalid_input', 'import needs --import-token and --bundle');
          const result = await (
            await deps.client(argv)
          ).byokImport(argv.importToken, (await readFile(argv.bundle, 'utf8')).trim(), argv.oaepHash);
          return void output(
            deps.io,
            argv,
            result,
            () =>
              `imported as master version ${result.master_version}; ${result.keyrings_rewrapped} keyrings re-wrapped`,
          );
        }
      }
    },
  );
}

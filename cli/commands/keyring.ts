import { SingleBar } from 'cli-progress';
import type { Argv } from 'yargs';
import { output, type GlobalArgs } from '../context.js';
import type { Deps } from '../io.js';

/** `coffer keyring status|rotate NS` and `coffer rotate-master`: key rotation from the CLI. */
export function keyringCommands(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  return yargs
    .command(
      'keyring <action> <namespace>',
      'Show or rotate a namespace keyring (rotate --rewrap --wait shows the rewrap progress)',
      (y) =>
        y
          .positional('action', { choices: ['status', 'rotate'] as const, demandOption: true })
          .positional('namespace', { type: 'string', demandOption: true })
          .option('rewrap', {
            type: 'boolean',
            default: false,
            describe: 'rotate: re-wrap every data key of the namespace in the background',
          })
          .option('wait', {
            type: 'boolean',
            default: false,
            describe: 'rotate --rewrap: wait for the rewrap, with a progress bar on a terminal',
          })
          .example('coffer keyring rotate app --rewrap --wait', 'new keyring version, every DEK re-wrapped'),
      async (argv) => {
        const c = await deps.client(argv);
        if (argv.action === 'status') {
          const k = await c.keyring(argv.namespace);
          return void output(deps.io, argv, k, () =>
            [
              `keyring ${k.namespace}: version ${k.current} of ${k.versions.length}, master version ${k.master_version}`,
              k.rewrap
                ? `rewrap: ${k.rewrap.state}, ${k.rewrap.rewrapped} re-wrapped of ${k.rewrap.scanned} scanned`
                : '',
            ]
              .filter(Boolean)
              .join('\n'),
          );
        }
        const rotated = await c.rotateKeyring(argv.namespace, argv.rewrap);
        if (!(argv.rewrap && argv.wait))
          return void output(
            deps.io,
            argv,
            rotated,
            () => `keyring ${rotated.namespace} is now at version ${rotated.version}`,
          );
        const total = rotated.rewrap?.total || 1;
        const bar =
          deps.io.stderr.isTTY && !argv.json && !argv.quiet
            ? new SingleBar({ stream: deps.io.stderr, format: 'rewrap [{bar}] {value}/{total} versions' })
            : undefined;
        bar?.start(total, 0);
        let status = await c.keyring(argv.namespace);
        while (status.rewrap?.state === 'running') {
          bar?.update(Math.min(status.rewrap.scanned, total));
          await new Promise((r) => setTimeout(r, 250));
          status = await c.keyring(argv.namespace);
        }
        bar?.update(total);
        bar?.stop();
        output(
          deps.io,
          argv,
          status,
          () =>
            `keyring ${argv.namespace} at version ${status.current}; rewrap ${status.rewrap?.state}: ${status.rewrap?.rewrapped ?? 0} data keys re-wrapped`,
        );
        if (status.rewrap?.state === 'failed') deps.exitCode(1);
      },
    )
    .command(
      'rotate-master',
      'Rotate the master key (re-wraps keyrings only)',
      (y) => y.example('coffer rotate-master', 'new master key version; secrets are not re-encrypted'),
      async (argv) => {
        const r = await (await deps.client(argv)).rotateMasterKey();
        output(
          deps.io,
          argv,
          r,
          () => `master key version ${r.master_version}; ${r.keyrings_rewrapped} keyrings re-wrapped`,
        );
      },
    );
}

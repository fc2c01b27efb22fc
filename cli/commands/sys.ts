import { createInterface } from 'node:readline/promises';
import type { Argv } from 'yargs';
import type { Health, SealStatus } from '../../sdk/wire/types.js';
import { EXIT, output, type GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import type { Deps, IO } from '../io.js';

/** Reads one secret line from the terminal without echoing it, or from a pipe. */
export async function promptSecret(question: string, io: IO): Promise<string> {
  const { stdin, stderr } = io;
  if (!stdin.isTTY || !stdin.setRawMode) {
    const rl = createInterface({ input: stdin });
    for await (const line of rl) {
      rl.close();
      return line.trim();
    }
    throw new CliError('invalid_input', 'no share given on stdin');
  }
  stderr.write(question);
  stdin.setRawMode(true);
  let value = '';
  try {
    for await (const chunk of stdin) {
      for (const ch of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return value;
        if (ch === '\u0003') throw new CliError('cancelled', 'cancelled');
        value = ch === '\u007f' ? value.slice(0, -1) : value + ch;
      }
    }
  } finally {
    stdin.setRawMode(false);
    stderr.write('\n');
  }
  return value;
}

/** `coffer status` as text: what state the server is in and the one command that moves it on. */
export function describeStatus(addr: string, health: Health, seal: SealStatus): string {
  const sealed = !health.initialized
    ? `${health.sealed}  (not initialized: run coffer init)`
    : health.sealed
      ? `true  (unseal progress ${seal.progress}/${seal.threshold}: run coffer unseal)`
      : 'false';
  const role = health.fenced
    ? `${health.role}, FENCED  (another server was promoted: this one refuses writes; see coffer replica status)`
    : health.role;
  return [
    `address      ${addr}`,
    `initialized  ${health.initialized}`,
    `sealed       ${sealed}`,
    `role         ${role}`,
    `key source   ${seal.provider}`,
    `version      ${health.version}`,
    ...(health.warnings ?? []).map((w) => `warning      ${w}`),
  ].join('\n');
}

export function sysCommands(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  return yargs
    .command(
      'status',
      'Show whether the vault is initialized and sealed (exit 0 unsealed, 2 sealed or not initialized, as vault status)',
      (y) =>
        y
          .example('coffer status', 'the server at COFFER_ADDR')
          .example('coffer status --addr https://vault.internal:8740 --json', 'another server, as JSON')
          .example('coffer status --quiet || coffer unseal', 'unseal only when needed'),
      async (argv) => {
        const c = await deps.client(argv);
        const [health, seal] = await Promise.all([c.health(), c.sealStatus()]);
        output(deps.io, argv, { ...health, ...seal }, () => describeStatus(c.addr, health, seal));
        // vault status's convention, which scripts and probes rely on: 2 = sealed (or nothing to unseal yet).
        if (health.sealed || !health.initialized) deps.exitCode(EXIT.sealed);
      },
    )
    .command(
      'init',
      'Initialize a new vault: prints the key shares and the root token once',
      (y) =>
        y
          .option('shares', { type: 'number', default: 5, describe: 'how many shares to make' })
          .option('threshold', { type: 'number', default: 3, describe: 'how many shares unseal' })
          .example('coffer init', '5 shares, 3 of them unseal')
          .example(
            'coffer init --shares 3 --threshold 2 --json > init.json',
            'keep the output somewhere safe, then split it',
          ),
      async (argv) => {
        const result = await (await deps.client(argv)).init(argv.shares, argv.threshold);
        output(deps.io, argv, result, () =>
          [
            ...result.shares.map((s, i) => `share ${i + 1}: ${s}`),
            '',
            `root token: ${result.root_token}`,
            '',
            `These are shown once. Give each share to a different administrator; ${argv.threshold} of them unseal the vault.`,
          ].join('\n'),
        );
      },
    )
    .command(
      'unseal [share]',
      'Submit one unseal share (prompted without echo if not given)',
      (y) =>
        y
          .positional('share', { type: 'string', describe: 'prefer the prompt: arguments end up in shell history' })
          .option('reset', { type: 'boolean', describe: 'forget the shares submitted so far (needs --nonce)' })
          .option('nonce', {
            type: 'string',
            describe: 'the nonce printed when the first share of this unseal was submitted',
          })
          .example('coffer unseal', 'prompts for one share without echo; repeat until unsealed')
          .example('coffer unseal --reset --nonce 3q2-7wAAe8Jq0nK6', 'start an unseal over'),
      async (argv) => {
        const c = await deps.client(argv);
        const status = argv.reset
          ? await c.resetUnseal(argv.nonce)
          : await c.unseal(argv.share ?? (await promptSecret('unseal share: ', deps.io)));
        output(deps.io, argv, status, () =>
          status.sealed
            ? `sealed: ${status.progress}/${status.threshold} shares submitted${status.nonce ? ` (nonce ${status.nonce}: needed to reset this unseal)` : ''}`
            : 'unsealed',
        );
      },
    )
    .command(
      'seal',
      'Seal the vault (forgets all keys until unsealed)',
      (y) => y.example('coffer seal', 'stop serving secrets now; coffer unseal to resume'),
      async (argv) => {
        await (await deps.client(argv)).seal();
        output(deps.io, argv, { sealed: true }, () => 'sealed');
      },
    );
}

import { createHash } from 'node:crypto';
import { constants as fs } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { SingleBar } from 'cli-progress';
import type { Argv } from 'yargs';
import { CofferError } from '../../sdk/errors.js';
import type { ErrorCode } from '../../sdk/wire/errors.js';
import type { RestoreRunner } from '../../sdk/wire/restore.js';
import { output, type GlobalArgs } from '../context.js';
import { promptSecret } from './sys.js';
import { CliError } from '../errors.js';
import type { Deps, IO } from '../io.js';

const MiB = 1024 * 1024;

/** `coffer backup --out FILE` (through the SDK) and `coffer restore FILE --data-dir DIR` (offline). */
export function backupCommands(yargs: Argv<GlobalArgs>, deps: Deps, restore: RestoreRunner): Argv<GlobalArgs> {
  return yargs
    .command(
      'backup',
      'Write an encrypted, consistent backup of the whole vault to a file (admin on sys/backup)',
      (y) =>
        y
          .option('out', {
            type: 'string',
            demandOption: true,
            describe: 'file to create (mode 0600; an existing file is never overwritten)',
          })
          .example('coffer backup --out /backups/coffer-$(date +%F).backup', 'online backup; writes go on meanwhile'),
      async (argv) => {
        const c = await deps.client(argv);
        // Refuse before asking the server for a snapshot; O_EXCL below closes the race.
        await assertAbsent(argv.out);
        const download = await c.backup();
        let handle;
        try {
          handle = await open(argv.out, fs.O_WRONLY | fs.O_CREAT | fs.O_EXCL, 0o600);
        } catch (e) {
          await drain(download.body);
          throw createError(e, argv.out);
        }
        const bar =
          deps.io.stderr.isTTY && !argv.json && !argv.quiet
            ? new SingleBar({
                stream: deps.io.stderr,
                format: 'backup {mib} MiB  {rate} MiB/s  {duration_formatted}',
                hideCursor: true,
              })
            : undefined;
        const started = Date.now();
        const check = new TrailerCheck();
        let bytes = 0;
        try {
          bar?.start(0, 0, { mib: '0.0', rate: '0.0' });
          for await (const piece of download.body) {
            check.update(piece);
            await handle.write(piece);
            bytes += piece.length;
            const seconds = Math.max(0.001, (Date.now() - started) / 1000);
            bar?.update(0, { mib: (bytes / MiB).toFixed(1), rate: (bytes / MiB / seconds).toFixed(1) });
          }
          if (!check.complete())
            throw new CliError(
              'damaged',
              'the backup stream ended early or arrived damaged (no valid end marker): the file was removed; run coffer backup again',
            );
          await handle.sync();
        } catch (e) {
          await handle.close().catch(() => undefined);
          await unlink(argv.out).catch(() => undefined); // a partial backup must not be mistaken for one
          throw e instanceof CofferError || e instanceof CliError
            ? e
            : new CliError(
                'unavailable',
                `the backup stream was cut: ${(e as Error).message}; the partial file was removed`,
              );
        } finally {
          bar?.stop();
        }
        await handle.close();
        const result = { file: argv.out, bytes, vault: download.vault, backup: download.backup, seq: download.seq };
        output(
          deps.io,
          argv,
          result,
          () =>
            `wrote ${argv.out} (${(bytes / MiB).toFixed(1)} MiB; vault ${download.vault}, sequence ${download.seq}). Keep it with the same care as the master key's holders: it restores with that key only.`,
        );
      },
    )
    .command(
      'restore <file>',
      'Restore a backup into a new data directory (offline; start coffer server on it afterwards)',
      (y) =>
        y
          .positional('file', { type: 'string', demandOption: true, describe: 'backup file from coffer backup' })
          .option('data-dir', {
            type: 'string',
            demandOption: true,
            describe: 'data directory to create (must be absent or empty)',
          })
          .option('kek', {
            type: 'string',
            describe:
              'the vault’s master key source, as for coffer server: file:PATH, env:VAR, passphrase:[VAR], pkcs11:…',
          })
          .option('share-file', {
            type: 'string',
            describe: 'Shamir vaults: a file with unseal shares, one per line (else prompted)',
          })
          .example(
            'coffer restore vault.backup --data-dir /var/lib/coffer --kek file:/etc/coffer/kek.key',
            'a key-file vault',
          )
          .example(
            'coffer restore vault.backup --data-dir /var/lib/coffer',
            'a Shamir vault: prompts for the unseal shares',
          ),
      async (argv) => {
        const shares = argv.shareFile ? await readShares(argv.shareFile) : undefined;
        const bar =
          deps.io.stderr.isTTY && !argv.json && !argv.quiet
            ? new SingleBar({
                stream: deps.io.stderr,
                format: '{phase} chunk {value}  {entries} entries',
                hideCursor: true,
              })
            : undefined;
        let result;
        try {
          bar?.start(0, 0, { phase: 'verify', entries: 0 });
          result = await restore({
            file: argv.file,
            dataDir: argv.dataDir,
            ...(argv.kek ? { kek: argv.kek } : {}),
            ...(shares ? { shares } : {}),
            askShares: async (threshold) => {
              bar?.stop();
              return askShares(threshold, deps.io);
            },
            progress: (phase, chunks, entries) => bar?.update(chunks, { phase, entries }),
          });
        } catch (e) {
          throw asCliError(e);
        } finally {
          bar?.stop();
        }
        output(
          deps.io,
          argv,
          result,
          () =>
            `restored ${result.entries} entries of vault ${result.vault} at sequence ${result.seq} (backup of ${result.created_at}) into ${result.data_dir}.\n` +
            `Start it with the same master key source: coffer server --data-dir ${result.data_dir}${argv.kek ? ' --kek <the same source>' : ' (then coffer unseal)'}`,
        );
      },
    );
}

async function assertAbsent(file: string): Promise<void> {
  const exists = await open(file, 'r').then(
    async (h) => {
      await h.close();
      return true;
    },
    (e: NodeJS.ErrnoException) => e.code !== 'ENOENT',
  );
  if (exists)
    throw new CliError(
      'already_exists',
      `${file} already exists: coffer backup never overwrites a file; choose another name`,
    );
}

function createError(e: unknown, file: string): CliError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EEXIST')
    return new CliError(
      'already_exists',
      `${file} already exists: coffer backup never overwrites a file; choose another name`,
    );
  return new CliError('invalid_input', `cannot create ${file}: ${code ?? (e as Error).message}`);
}

async function drain(body: AsyncIterable<Uint8Array>): Promise<void> {
  const iterator = body[Symbol.asyncIterator]();
  await iterator.return?.();
}

/** Server-side errors carry the same codes; give them the SDK's type so `explain` handles them. */
function asCliError(e: unknown): unknown {
  if (e instanceof CofferError || !(e instanceof Error) || typeof (e as { code?: unknown }).code !== 'string') return e;
  return new CofferError((e as unknown as { code: ErrorCode }).code, e.message, 0);
}

async function readShares(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => {
    throw new CliError('invalid_input', `cannot read share file ${file}`);
  });
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

async function askShares(threshold: number, io: IO): Promise<string[]> {
  if (!io.stdin.isTTY) {
    const lines: string[] = [];
    for await (const line of createInterface({ input: io.stdin })) if (line.trim()) lines.push(line.trim());
    return lines;
  }
  const shares: string[] = [];
  for (let i = 1; i <= threshold; i++) shares.push(await promptSecret(`unseal share ${i} of ${threshold}: `, io));
  return shares;
}

/**
 * A cheap end-to-end check as the file is written: the stream must end with the end marker
 * (u32 0) and the SHA-256 of everything before it. It needs no key; `coffer restore` verifies
 * every chunk's MAC as well.
 */
class TrailerCheck {
  private readonly hash = createHash('sha256');
  /** The last 36 bytes seen: possibly the end marker (4) and the digest (32). */
  private tail = Buffer.alloc(0);

  update(piece: Uint8Array): void {
    const all = Buffer.concat([this.tail, piece]);
    const keep = Math.min(36, all.length);
    this.hash.update(all.subarray(0, all.length - keep));
    this.tail = Buffer.from(all.subarray(all.length - keep));
  }

  complete(): boolean {
    if (this.tail.length !== 36 || this.tail.readUInt32BE(0) !== 0) return false;
    return this.hash.update(this.tail.subarray(0, 4)).digest().equals(this.tail.subarray(4));
  }
}

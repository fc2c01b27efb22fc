import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Argv } from 'yargs';
import { verifyAuditLog } from '../../sdk/audit.js';
import { CofferError } from '../../sdk/errors.js';
import { type GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import type { Deps } from '../io.js';

interface KeySource {
  pem: string;
  from: string;
  checkpointEvery?: number;
  intervalS?: number;
  serverLastSeq?: number;
}

/**
 * The checkpoint key: `--public-key FILE`, else the server's (`--addr` or COFFER_ADDR, with
 * the usual token), else none. A server that was named but cannot answer is an error, never
 * a silent fall back to the weaker check without a key.
 */
async function keySource(argv: GlobalArgs & { publicKey?: string }, deps: Deps): Promise<KeySource | undefined> {
  if (argv.publicKey) {
    const pem = await readFile(argv.publicKey, 'utf8').catch(() => {
      throw new Error(`cannot read ${argv.publicKey}: check the path`);
    });
    return { pem, from: argv.publicKey };
  }
  const addr = argv.addr || deps.io.env.COFFER_ADDR;
  if (!addr) return undefined;
  try {
    const info = await (await deps.client(argv)).auditInfo();
    if (!info.public_key_pem)
      throw new CliError(
        'unavailable',
        `the server at ${addr} has no audit key yet (never unsealed); pass --public-key FILE to verify offline`,
      );
    return {
      pem: info.public_key_pem,
      from: addr,
      checkpointEvery: info.checkpoint_every,
      serverLastSeq: info.last_seq,
      ...(info.checkpoint_interval_s !== null ? { intervalS: info.checkpoint_interval_s } : {}),
    };
  } catch (e) {
    if (e instanceof CliError) throw e;
    const message = `cannot fetch the audit public key from ${addr} (${e instanceof Error ? e.message : String(e)}); pass --public-key FILE to verify offline`;
    throw e instanceof CofferError
      ? new CofferError(e.code, message, e.status, e.requestId)
      : new CliError('unavailable', message);
  }
}

/** `coffer audit verify FILE`: the hash chain, the signed checkpoints and a signed tail. */
export function auditCommand(yargs: Argv, deps: Deps): Argv {
  return yargs.command(
    'verify <file>',
    'Verify an audit log file: chain, sequence, checkpoint signatures and a signed tail',
    (y) =>
      y
        .positional('file', { type: 'string', demandOption: true, describe: 'the audit JSONL file' })
        .option('public-key', {
          type: 'string',
          describe:
            'PEM file of the audit checkpoint key; default: fetched from the server (GET /v1/sys/audit) when --addr or COFFER_ADDR is set',
        })
        .option('expect-seq', {
          type: 'number',
          describe: 'last sequence number the server reports; fewer lines means truncation',
        })
        .option('require-signed-tail', {
          type: 'boolean',
          describe:
            "hold the lines after the last checkpoint to the server's bound (default: on when the key is known; --no-require-signed-tail to skip)",
        })
        .option('checkpoint-every', {
          type: 'number',
          describe: "the server's audit_checkpoint_every (default: from the server, else 100)",
        })
        .option('checkpoint-interval-s', {
          type: 'number',
          describe: "the server's audit_checkpoint_interval_s (default: from the server, else 10)",
        })
        .option('sink', {
          type: 'string',
          describe:
            "which audit_files entry this file is (its path on the server): gap markers the server wrote for that sink are accepted; default: the file's own absolute path",
        })
        .option('grace-s', { type: 'number', default: 2, describe: 'seconds of slack for clock skew and slow writes' })
        .option('json', { type: 'boolean', default: false })
        .example(
          'coffer audit verify /var/lib/coffer/audit.log',
          'key and checkpoint bounds from the server at COFFER_ADDR',
        )
        .example(
          'coffer audit verify audit.log --public-key audit.pem',
          'offline, with the key saved from GET /v1/sys/audit',
        ),
    async (argv) => {
      const text = await readFile(argv.file, 'utf8').catch(() => {
        throw new Error(`cannot read ${argv.file}: check the path`);
      });
      const key = await keySource(argv as GlobalArgs & { publicKey?: string }, deps);
      const result = verifyAuditLog(text, {
        ...(key ? { publicKeyPem: key.pem } : {}),
        ...(argv.requireSignedTail !== undefined ? { requireSignedTail: argv.requireSignedTail } : {}),
        ...(argv.expectSeq !== undefined ? { expectLastSeq: argv.expectSeq } : {}),
        maxUnsignedLines: argv.checkpointEvery ?? key?.checkpointEvery ?? 100,
        maxUnsignedSeconds: argv.checkpointIntervalS ?? key?.intervalS ?? 10,
        graceSeconds: argv.graceS,
        sink: argv.sink ?? resolve(argv.file),
      });
      if (argv.json) deps.io.stdout.write(`${JSON.stringify(result)}\n`);
      else if (result.ok) {
        const signed = key ? `signatures verified, key from ${key.from}` : 'signatures not checked';
        deps.io.stdout.write(
          `ok: ${result.lines} lines, ${result.checkpoints} checkpoints (${signed})${result.unsignedTail ? `; the last ${result.unsignedTail} not signed yet (within the checkpoint bound)` : ''}\n`,
        );
        for (const gap of result.gaps) {
          if (gap.file_seq !== null && gap.file_seq > gap.stored_seq) {
            deps.io.stdout.write(
              `note: line ${gap.line}: the server was started on purpose past lines it did not write or confirm; sequences ${gap.stored_seq + 1} to ${gap.file_seq} were accepted as found (${gap.reason})\n`,
            );
          } else {
            deps.io.stdout.write(
              `note: line ${gap.line}: the server was started past a gap on purpose; lines after sequence ${gap.file_seq ?? 'none'} up to ${gap.stored_seq} were lost (${gap.reason})\n`,
            );
          }
        }
        if (
          key?.serverLastSeq !== undefined &&
          argv.expectSeq === undefined &&
          (result.lastSeq ?? -1) < key.serverLastSeq
        ) {
          // A cut exactly at a checkpoint looks complete offline; only the server's sequence shows it.
          deps.io.stdout.write(
            `note: the server has written up to sequence ${key.serverLastSeq}, this file ends at ${result.lastSeq ?? 'none'}: if it is the live log, run again with --expect-seq ${key.serverLastSeq}\n`,
          );
        }
        for (const gap of result.sinkGaps) {
          deps.io.stdout.write(
            `note: line ${gap.line}: this sink (${gap.sink}) missed sequences ${gap.from}-${gap.to} while it was failing; the other audit sinks hold them\n`,
          );
        }
        for (const u of result.unconfirmed) {
          deps.io.stdout.write(
            u.cut
              ? `note: line ${u.line}: restart after a crash: sequences ${u.from} to ${u.to}, written to ${u.sink} but never confirmed (no request was answered for them), were cut off; the chain continues before them\n`
              : `note: line ${u.line}: restart after a crash: sequences ${u.from} to ${u.to} were written but never confirmed before it, and kept (an older server)\n`,
          );
        }
        for (const line of result.uncheckedRestarts) {
          deps.io.stdout.write(
            `note: line ${line}: a restart without a stored chain head (first start of this version, or the head file was removed): a truncation before it was not checked at start\n`,
          );
        }
      } else {
        deps.io.stdout.write(`FAILED at line ${result.firstBad!.line}: ${result.firstBad!.reason}\n`);
      }
      if (!key) {
        deps.io.stderr.write(
          'warning: no audit public key: a truncated tail or an edit with a recomputed chain cannot be detected; pass --public-key FILE, or --addr to fetch it from the server\n',
        );
      }
      deps.exitCode(result.ok ? 0 : 1);
    },
  );
}

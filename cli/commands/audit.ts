import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { verifyAuditLog } from '../../sdk/audit.js';

/** `coffer audit verify FILE`: offline check of the hash chain and the signed checkpoints. */
export function auditCommand(yargs: Argv): Argv {
  return yargs.command('verify <file>', 'Verify an audit log file: chain, sequence and checkpoint signatures', (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'the audit JSONL file' })
      .option('public-key', { type: 'string', describe: 'PEM file of the audit checkpoint key (GET /v1/sys/audit)' })
      .option('expect-seq', { type: 'number', describe: 'last sequence number the server reports; fewer lines means truncation' })
      .option('require-signed-tail', { type: 'boolean', default: false, describe: 'fail when lines follow the last checkpoint' })
      .option('json', { type: 'boolean', default: false })
      .example('coffer audit verify /var/lib/coffer/audit.log --public-key audit.pem', 'check a log against its checkpoint key'),
    async (argv) => {
      const text = await readFile(argv.file, 'utf8').catch(() => {
        throw new Error(`cannot read ${argv.file}: check the path`);
      });
      const publicKeyPem = argv.publicKey ? await readFile(argv.publicKey, 'utf8') : undefined;
      const result = verifyAuditLog(text, { publicKeyPem, expectLastSeq: argv.expectSeq, requireSignedTail: argv.requireSignedTail });
      if (argv.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else if (result.ok) {
        process.stdout.write(`ok: ${result.lines} lines, ${result.checkpoints} checkpoints${publicKeyPem ? ' (signatures verified)' : ' (signatures not checked: pass --public-key)'}\n`);
      } else {
        process.stdout.write(`FAILED at line ${result.firstBad!.line}: ${result.firstBad!.reason}\n`);
      }
      process.exitCode = result.ok ? 0 : 1;
    },
  );
}

import type { Argv } from 'yargs';
import type { ReplicationStatus } from '../../sdk/wire/types.js';
import { client, output, type GlobalArgs } from '../context.js';

const when = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : '-');

function describe(s: ReplicationStatus): string {
  const lines = [`role         ${s.role}${s.fenced ? `  (FENCED: ${s.fenced})` : ''}`, `epoch        ${s.epoch}`, `last seq     ${s.last_seq}`];
  if (s.role === 'replica') {
    lines.push(`primary      ${s.primary || '-'}`, `lag          ${s.lag_seq} records, ${s.lag_ms} ms`, `stale        ${s.stale}${s.stale ? '  (token-authenticated reads answer 503 replica_stale)' : ''}`);
    if (s.replica) {
      lines.push(`applied      ${s.replica.applied_seq} of ${s.replica.head_seq ?? '?'}  (head verified ${when(s.replica.verified_head_at)})`);
      if (s.replica.error) lines.push(`problem      ${s.replica.error.code}: ${s.replica.error.message}`);
    }
  }
  for (const t of s.targets) {
    lines.push(`target       ${t.url}`, `  shipped    ${t.last_shipped_seq} (epoch ${t.epoch}, snapshot ${t.snapshot_seq ?? '-'})`, `  state      ${t.ok ? 'ok' : 'failing'}${t.error ? `: ${t.error}` : ''}`, `  lease to   ${when(t.lease_until)}`);
  }
  return lines.join('\n');
}

/** `coffer replica status|promote`. */
export function replicaCommands(yargs: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return yargs.command('replica', 'Replication: status of this server, promotion of a replica', (y) =>
    y
      .command('status', 'Role, epoch, progress per bucket, lag and problems', (z) => z.example('coffer replica status --addr https://replica.internal:8740', 'lag and problems of a replica'), async (argv) => {
        const status = await (await client(argv)).replicationStatus();
        output(argv, status, () => describe(status));
      })
      .command(
        'promote',
        'Make this replica the primary of a new epoch (the old primary is fenced; writes start once its lease ran out)',
        (z) => z.example('coffer replica promote --addr https://replica.internal:8740', 'after the old primary is gone'),
        async (argv) => {
          const result = await (await client(argv)).promote();
          output(argv, result, () => `promoted: primary of epoch ${result.epoch}, accepting writes since ${result.writes_from}`);
        },
      )
      .demandCommand(1, 'name a replica command: status or promote')
      .example('coffer replica status', 'role, epoch and lag of the server at COFFER_ADDR')
      .example('coffer replica promote --addr https://replica.internal:8740', 'make that replica the primary'),
  );
}

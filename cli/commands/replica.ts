import { setTimeout as sleep } from 'node:timers/promises';
import type { Argv } from 'yargs';
import type { Coffer } from '../../sdk/client.js';
import { CofferError } from '../../sdk/errors.js';
import type { ReplicationStatus } from '../../sdk/wire/types.js';
import { output, type GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import type { Deps, IO } from '../io.js';

const when = (at: string | null | undefined) => at ?? '-';

function describe(s: ReplicationStatus): string {
  const lines = [
    `role         ${s.role}${s.fenced ? `  (FENCED: ${s.fenced})` : ''}`,
    `epoch        ${s.epoch}`,
    `last seq     ${s.last_seq}`,
  ];
  if (s.role === 'replica') {
    lines.push(
      `primary      ${s.primary || '-'}`,
      `lag          ${s.lag_seq} records, ${s.lag_ms} ms`,
      `stale        ${s.stale}${s.stale ? '  (token-authenticated reads answer 503 replica_stale)' : ''}`,
    );
    if (s.replica) {
      lines.push(
        `applied      ${s.replica.applied_seq} of ${s.replica.head_seq ?? '?'}  (head verified ${when(s.replica.verified_head_at)})`,
      );
      if (s.replica.error) lines.push(`problem      ${s.replica.error.code}: ${s.replica.error.message}`);
    }
  }
  for (const t of s.targets) {
    lines.push(
      `target       ${t.url}`,
      `  shipped    ${t.last_shipped_seq} (epoch ${t.epoch}, snapshot ${t.snapshot_seq ?? '-'})`,
      `  state      ${t.ok ? 'ok' : 'failing'}${t.error ? `: ${t.error}` : ''}`,
      `  lease to   ${when(t.lease_until)}`,
    );
  }
  return lines.join('\n');
}

const WATCH_EVERY_MS = 1_000;
/** How long to keep watching a promotion whose answer was lost (the request cut by a proxy or timeout). */
const LOST_ANSWER_GRACE_MS = 60_000;

type Promoted = { epoch: number; writes_from: string };

/** The progress line for a promotion under way, from the promoting server's replication status. */
export function promotionProgress(s: ReplicationStatus, now: number): string {
  const writesFrom = s.writes_from ? Date.parse(s.writes_from) : 0;
  if (s.role === 'primary' && writesFrom > now) {
    const left = Math.ceil((writesFrom - now) / 1000);
    return `promoted to epoch ${s.epoch}; waiting for the old primary's lease to run out: writes accepted in ${left}s (${s.writes_from})`;
  }
  if (s.role === 'primary') return `promoted to epoch ${s.epoch}; writes accepted`;
  const applied = s.replica ? `: applied ${s.replica.applied_seq} of ${s.replica.head_seq ?? '?'}` : '';
  return `catching up with everything the old primary shipped before claiming epoch ${s.epoch + 1}${applied}`;
}

/**
 * Promotes and waits until the new primary takes writes, which is after the old primary's lease
 * ran out (docs/api.md "Replication"). Meanwhile it asks the server how far it got, so the
 * operator sees a countdown instead of silence; if the long request is cut, the server carries on
 * and the status it reports decides the outcome.
 */
export async function promoteAndWatch(
  c: Coffer,
  progress: (line: string) => void,
  options: { promoteTimeoutMs?: number; now?: () => number } = {},
): Promise<Promoted> {
  const now = options.now ?? performance.now.bind(performance); // elapsed time: immune to clock steps
  // Who is being promoted, and from which epoch: a status read later through a load balancer
  // may come from another server, and only this node in a later epoch means success.
  const before = await c.replicationStatus();
  const answer = c.promote(options.promoteTimeoutMs === undefined ? {} : { timeoutMs: options.promoteTimeoutMs }).then(
    (result) => ({ result }),
    (error: unknown) => ({ error }),
  );
  let lostAt: number | undefined;
  let lost: unknown;
  for (;;) {
    const tick = sleep(WATCH_EVERY_MS, undefined);
    const outcome = lostAt === undefined ? await Promise.race([answer, tick]) : undefined;
    if (lostAt !== undefined) await tick;
    if (outcome && 'result' in outcome) return outcome.result;
    if (outcome && 'error' in outcome) {
      if (!(outcome.error instanceof CofferError) || outcome.error.code !== 'unavailable') throw outcome.error;
      lostAt = now();
      lost = outcome.error;
    }
    const status = await c.replicationStatus().catch(() => undefined);
    const ours = status?.node === before.node ? status : undefined;
    if (lostAt !== undefined) {
      if (ours?.role === 'primary' && ours.epoch > before.epoch && !ours.writes_from && !ours.fenced)
        return { epoch: ours.epoch, writes_from: new Date().toISOString() };
      // Promoted and counting down to writes_from (a lease longer than the request's timeout): keep watching.
      const countingDown = ours?.role === 'primary' && ours.epoch > before.epoch && Boolean(ours.writes_from);
      if (!status || (now() - lostAt > LOST_ANSWER_GRACE_MS && !countingDown)) {
        throw new CliError(
          'unavailable',
          `${(lost as Error).message}; the promotion may still be under way on the server: watch it with coffer replica status`,
        );
      }
    }
    if (ours) progress(promotionProgress(ours, Date.now()));
  }
}

/** Writes progress lines to stderr: rewritten in place on a terminal, once per change elsewhere. */
function progressWriter(io: IO, quiet: boolean | undefined): { line: (text: string) => void; end: () => void } {
  const { stderr } = io;
  const tty = stderr.isTTY;
  let last = '';
  return {
    line(text) {
      if (quiet) return;
      if (tty) stderr.write(`\r\x1b[2K${text}`);
      else if (text.replace(/\d+s \(/, '') !== last.replace(/\d+s \(/, '')) stderr.write(`${text}\n`);
      last = text;
    },
    end() {
      if (tty && last && !quiet) stderr.write('\n');
    },
  };
}

/** `coffer replica status|promote`. */
export function replicaCommands(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  return yargs.command('replica', 'Replication: status of this server, promotion of a replica', (y) =>
    y
      .command(
        'status',
        'Role, epoch, progress per bucket, lag and problems',
        (z) => z.example('coffer replica status --addr https://replica.internal:8740', 'lag and problems of a replica'),
        async (argv) => {
          const status = await (await deps.client(argv)).replicationStatus();
          output(deps.io, argv, status, () => describe(status));
        },
      )
      .command(
        'promote',
        'Make this replica the primary of a new epoch and wait until it takes writes (the old primary is fenced; writes start once its lease ran out, up to replication_lease_s)',
        (z) =>
          z
            .example(
              'coffer replica promote --addr https://replica.internal:8740',
              'after the old primary is gone; shows a countdown to the first write',
            )
            .example('coffer replica promote --json --quiet', 'for scripts: only the result on stdout'),
        async (argv) => {
          const c = await deps.client(argv);
          const progress = progressWriter(deps.io, argv.quiet);
          let result: Promoted;
          try {
            result = await promoteAndWatch(c, progress.line);
          } finally {
            progress.end();
          }
          output(
            deps.io,
            argv,
            result,
            () => `promoted: primary of epoch ${result.epoch}, accepting writes since ${result.writes_from}`,
          );
        },
      )
      .demandCommand(1, 'name a replica command: status or promote')
      .example('coffer replica status', 'role, epoch and lag of the server at COFFER_ADDR')
      .example('coffer replica promote --addr https://replica.internal:8740', 'make that replica the primary'),
  );
}

import { useEffect, useRef, useState } from 'preact/hooks';
import type { PromoteResult, ReplicationStatus } from '../../../sdk/wire/types.js';
import type { PageProps } from '../page.js';
import { Confirm, ErrorNote, When } from '../ui.js';

/**
 * Replication (docs/ui.md "Replication"): role, epoch, targets, a replica's lag (records and
 * ms) with a chart of the last ten minutes kept in the page, and promotion behind a typed
 * confirmation. Polls `GET /v1/sys/replication` every 2 s.
 */

const WINDOW_MS = 10 * 60_000;
const POLL_MS = 2_000;

interface Sample {
  at: number;
  records: number;
  ms: number;
}

export function Replication({ api }: PageProps) {
  const [status, setStatus] = useState<ReplicationStatus>();
  const [error, setError] = useState<unknown>();
  const [promoting, setPromoting] = useState(false);
  const [promoted, setPromoted] = useState<PromoteResult>();
  const samples = useRef<Sample[]>([]);
  useEffect(() => {
    let stopped = false;
    const poll = () =>
      api.get<ReplicationStatus>('/v1/sys/replication').then(
        (s) => {
          if (stopped) return;
          const now = Date.now();
          samples.current = [
            ...samples.current.filter((x) => now - x.at < WINDOW_MS),
            { at: now, records: s.lag_seq, ms: s.lag_ms },
          ];
          setStatus(s);
          setError(undefined);
        },
        (e: unknown) => !stopped && setError(e),
      );
    void poll();
    const timer = setInterval(poll, POLL_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  const s = status;
  return (
    <section aria-labelledby="replication-title">
      <h1 id="replication-title">Replication</h1>
      <ErrorNote error={error} />
      {s ? (
        <>
          <dl class="facts">
            <dt>Role</dt>
            <dd class="role">{s.role}</dd>
            <dt>Epoch</dt>
            <dd>{s.epoch}</dd>
            <dt>Last sequence</dt>
            <dd>{s.last_seq}</dd>
            {s.role === 'replica' ? (
              <>
                <dt>Primary</dt>
                <dd>{s.primary || '—'}</dd>
                <dt>Lag</dt>
                <dd>
                  {s.lag_seq} records, {s.lag_ms} ms{s.stale ? ' (stale)' : ''}
                </dd>
                {s.replica?.error ? (
                  <>
                    <dt>Error</dt>
                    <dd>
                      {s.replica.error.code}: {s.replica.error.message}
                    </dd>
                  </>
                ) : null}
              </>
            ) : null}
            {s.fenced ? (
              <>
                <dt>Fenced</dt>
                <dd>{s.fenced}</dd>
              </>
            ) : null}
            {s.writes_from ? (
              <>
                <dt>Writes from</dt>
                <dd>
                  <When at={s.writes_from} />
                </dd>
              </>
            ) : null}
          </dl>
          {s.targets.length > 0 ? (
            <table>
              <caption>Targets</caption>
              <thead>
                <tr>
                  <th scope="col">Target</th>
                  <th scope="col">Epoch</th>
                  <th scope="col">Last shipped</th>
                  <th scope="col">State</th>
                  <th scope="col">Last ok</th>
                </tr>
              </thead>
              <tbody>
                {s.targets.map((t) => (
                  <tr key={t.url}>
                    <td>{t.url}</td>
                    <td>{t.epoch}</td>
                    <td>{t.last_shipped_seq}</td>
                    <td>{t.ok ? 'ok' : `failing: ${t.error ?? ''}`}</td>
                    <td>
                      <When at={t.last_ok_at} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
          {s.role === 'replica' ? <LagChart samples={samples.current} /> : null}
          {s.role === 'replica' ? (
            <button type="button" class="danger" onClick={() => setPromoting(true)}>
              Promote this replica
            </button>
          ) : null}
        </>
      ) : null}
      {promoted ? (
        <p role="status">
          Promoted: epoch {promoted.epoch}, writes accepted from <When at={promoted.writes_from} />.
        </p>
      ) : null}
      {promoting ? (
        <Confirm
          title="Promote this replica"
          typed="promote"
          action="Promote"
          onCancel={() => setPromoting(false)}
          onConfirm={() => {
            setPromoting(false);
            api.send<PromoteResult>('POST', '/v1/sys/replication/promote', {}).then(setPromoted, setError);
          }}
        >
          <p>
            This server becomes the primary of a new epoch; the old primary is fenced and refuses writes once it sees
            it.
          </p>
        </Confirm>
      ) : null}
    </section>
  );
}

/** Lag in records over the last ten minutes, as an SVG polyline (no inline style: attributes only). */
function LagChart({ samples }: { samples: Sample[] }) {
  const w = 600;
  const h = 120;
  const now = Date.now();
  const top = Math.max(1, ...samples.map((x) => x.records));
  const points = samples
    .map(
      (x) =>
        `${(((x.at - (now - WINDOW_MS)) / WINDOW_MS) * w).toFixed(1)},${(h - (x.records / top) * (h - 10)).toFixed(1)}`,
    )
    .join(' ');
  const last = samples.at(-1);
  return (
    <figure>
      <svg
        class="chart"
        viewBox={`0 0 ${w} ${h}`}
        role="img"
        aria-label={`Replication lag over the last 10 minutes: now ${last?.records ?? 0} records, ${last?.ms ?? 0} ms; at most ${top} records`}
      >
        <polyline points={points} />
      </svg>
      <figcaption>
        Lag in records, last 10 minutes (peak {top}); now {last?.records ?? 0} records, {last?.ms ?? 0} ms.
      </figcaption>
    </figure>
  );
}

import type { AuditInfo } from '../../../sdk/wire/types.js';
import type { PageProps } from '../page.js';
import { ErrorNote, When, useLoad } from '../ui.js';

/**
 * Audit (docs/ui.md "Audit"): the log's state as `GET /v1/sys/audit` reports it: the last
 * sequence number, each sink's state and backlog, and the checkpoint public key with which
 * `coffer audit verify` checks the chain offline.
 */
export function Audit({ api }: PageProps) {
  const info = useLoad(() => api.get<AuditInfo>('/v1/sys/audit'), []);
  const a = info.data;
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit</h1>
      <ErrorNote error={info.error} />
      <button type="button" onClick={info.reload}>
        Refresh
      </button>
      {a ? (
        <>
          <dl class="facts">
            <dt>Last sequence</dt>
            <dd class="last-seq">{a.last_seq}</dd>
            <dt>Sinks</dt>
            <dd>{a.sinks}</dd>
            <dt>Failed writes</dt>
            <dd>{a.failed_writes}</dd>
            <dt>Checkpoint every</dt>
            <dd>
              {a.checkpoint_every} lines{a.checkpoint_interval_s ? ` or ${a.checkpoint_interval_s} s` : ''}
            </dd>
          </dl>
          <table>
            <caption>Sinks</caption>
            <thead>
              <tr>
                <th scope="col">Sink</th>
                <th scope="col">Kind</th>
                <th scope="col">State</th>
                <th scope="col">Since</th>
                <th scope="col">Written</th>
                <th scope="col">Behind</th>
                <th scope="col">Last error</th>
              </tr>
            </thead>
            <tbody>
              {a.sink_status.map((s) => (
                <tr key={s.name}>
                  <td>{s.name}</td>
                  <td>{s.kind}</td>
                  <td>{s.state}</td>
                  <td>
                    <When at={s.since} />
                  </td>
                  <td>{s.written_seq ?? '—'}</td>
                  <td>{s.behind}</td>
                  <td>{s.last_error ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {a.public_key_pem ? (
            <>
              <h2>Checkpoint public key</h2>
              <pre class="value">{a.public_key_pem}</pre>
              <p class="muted">
                Verify a copy of the log offline with <code>coffer audit verify</code> and this key.
              </p>
            </>
          ) : null}
        </>
      ) : null}
    </section>
  );
}

import { useState } from 'preact/hooks';
import type { AuditInfo, AuditLines } from '../../../sdk/wire/types.js';
import type { Api } from '../api.js';
import type { PageProps } from '../page.js';
import { ErrorNote, Field, When, useLoad } from '../ui.js';

/**
 * Audit (docs/ui.md "Audit"): recent request lines with filters and the chain verification
 * (`GET /v1/sys/audit/lines`), and the log's state (`GET /v1/sys/audit`): the last sequence
 * number, each sink's state and backlog, and the checkpoint public key.
 */
export function Audit({ api }: PageProps) {
  const info = useLoad(() => api.get<AuditInfo>('/v1/sys/audit'), []);
  const a = info.data;
  return (
    <section aria-labelledby="audit-title">
      <h1 id="audit-title">Audit</h1>
      <Lines api={api} />
      <h2>Log state</h2>
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

type Filter = Record<'identity' | 'path' | 'operation' | 'outcome', string>;
const NO_FILTER: Filter = { identity: '', path: '', operation: '', outcome: '' };

function Lines({ api }: { api: Api }) {
  const [draft, setDraft] = useState<Filter>(NO_FILTER);
  const [filter, setFilter] = useState<Filter>(NO_FILTER);
  const [tick, setTick] = useState(0);
  const found = useLoad(() => {
    const query: Record<string, string> = { limit: '200' };
    for (const [k, v] of Object.entries(filter)) if (v.trim()) query[k] = v.trim();
    return api.get<AuditLines>('/v1/sys/audit/lines', query);
  }, [filter, tick]);
  const set = (k: keyof Filter) => (e: { currentTarget: HTMLInputElement | HTMLSelectElement }) =>
    setDraft({ ...draft, [k]: e.currentTarget.value });
  const v = found.data?.verification;
  return (
    <section aria-labelledby="lines-title">
      <h2 id="lines-title">Recent requests</h2>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter(draft);
          setTick((t) => t + 1);
        }}
      >
        <Field label="Identity">
          <input value={draft.identity} onInput={set('identity')} placeholder="user:alice" />
        </Field>
        <Field label="Path prefix">
          <input value={draft.path} onInput={set('path')} placeholder="team/" />
        </Field>
        <Field label="Operation">
          <input value={draft.operation} onInput={set('operation')} placeholder="GET /v1/secrets/*path" />
        </Field>
        <Field label="Outcome">
          <select value={draft.outcome} onChange={set('outcome')}>
            <option value="">any</option>
            <option value="ok">ok</option>
            <option value="denied">denied</option>
            <option value="error">error</option>
          </select>
        </Field>
        <button type="submit">Filter</button>
      </form>
      <ErrorNote error={found.error} />
      {found.data ? (
        <>
          <p class={v && !v.ok ? 'error verification' : 'verification'} role="status">
            {v
              ? v.ok
                ? `Chain verified: ${v.lines} lines, ${v.checkpoints} checkpoints${v.signatures_verified ? ' with valid signatures' : ''}, last sequence ${v.last_seq ?? '—'}${v.unsigned_tail ? `, ${v.unsigned_tail} lines after the last checkpoint` : ''}.`
                : `Chain verification FAILED at line ${v.first_bad?.line ?? '?'}: ${v.first_bad?.reason ?? 'unknown'}.`
              : `Chain not verified: ${found.data.verification_skipped ?? 'no file'}.`}
          </p>
          <table class="lines">
            <caption>
              {found.data.lines.length} matching of the {found.data.scanned} newest request lines
            </caption>
            <thead>
              <tr>
                <th scope="col">Seq</th>
                <th scope="col">Time</th>
                <th scope="col">Identity</th>
                <th scope="col">Operation</th>
                <th scope="col">Path</th>
                <th scope="col">Outcome</th>
                <th scope="col">Client</th>
              </tr>
            </thead>
            <tbody>
              {found.data.lines.map((l) => (
                <tr key={l.seq}>
                  <td>{l.seq}</td>
                  <td>
                    <When at={l.time} />
                  </td>
                  <td>{l.identity ?? '—'}</td>
                  <td>{l.operation}</td>
                  <td>{l.path ?? '—'}</td>
                  <td>
                    {l.outcome} ({l.status}){l.error_code ? ` ${l.error_code}` : ''}
                  </td>
                  <td>{l.client}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </section>
  );
}

import { useState } from 'preact/hooks';
import { PASSWORD_CHARSETS, SECRET_TYPES } from '../../../sdk/wire/constants.js';
import { pathMessage, pathProblem } from '../../../sdk/wire/paths.js';
import type {
  ExpiringResult,
  ListResult,
  PutSecretRequest,
  PutSecretResult,
  Secret,
  SecretMetadata,
  SecretVersionInfo,
} from '../../../sdk/wire/types.js';
import { ApiError, secretUrl, type Api } from '../api.js';
import type { PageProps } from '../page.js';
import { go, href } from '../route.js';
import { Confirm, ErrorNote, Field, When, useLoad } from '../ui.js';

/**
 * Secrets (docs/ui.md "Secrets"): the tree of what the caller may list, a secret's versions,
 * reveal (a read like any other, audited), create and update with check-and-set, delete,
 * undelete and destroy.
 */
export function Secrets({ api, route }: PageProps) {
  const [view, ...rest] = route;
  const shown = rest.join('/');
  // A crafted link (`…/../../prod/db`) would show one path and act on the one the browser resolves.
  const problem = view === 's' && rest.length > 0 ? pathProblem(shown) : undefined;
  return (
    <div class="split">
      <aside>
        <Tree api={api} />
      </aside>
      <section class="content">
        {view === 'new' ? (
          <>
            <h1>New secret</h1>
            <SecretForm api={api} onSaved={(path) => go('secrets', 's', ...path.split('/'))} />
          </>
        ) : view === 'expiring' ? (
          <Expiring api={api} />
        ) : problem ? (
          <p class="error" role="alert">
            This link names no valid secret path: {pathMessage('the path', problem)}.
          </p>
        ) : view === 's' && rest.length > 0 ? (
          <SecretView key={shown} api={api} path={shown} />
        ) : (
          <>
            <h1>Secrets</h1>
            <p>Pick a secret in the tree, or create one.</p>
          </>
        )}
      </section>
    </div>
  );
}

// ---- tree

interface Node {
  children: Map<string, Node>;
  secret: boolean;
}

function treeOf(paths: string[], prefix: string): Node {
  const root: Node = { children: new Map(), secret: false };
  for (const path of paths) {
    const rel = prefix && path !== prefix ? path.slice(prefix.length + 1) : path === prefix ? '' : path;
    let node = root;
    if (rel === '') root.secret = true;
    else
      for (const part of rel.split('/')) {
        let next = node.children.get(part);
        if (!next) node.children.set(part, (next = { children: new Map(), secret: false }));
        node = next;
      }
    if (rel !== '') node.secret = true;
  }
  return root;
}

const PAGE = 1000;

function Tree({ api }: { api: Api }) {
  const [prefix, setPrefix] = useState('');
  const [typed, setTyped] = useState('');
  const [problem, setProblem] = useState<string>();
  const [pages, setPages] = useState<{ keys: string[]; next: string | null }>();
  const listing = useLoad(async () => {
    const page = await api.get<ListResult>('/v1/secrets', { prefix: prefix || undefined, limit: PAGE });
    setPages(page);
    return page;
  }, [prefix]);
  const more = async () => {
    if (!pages?.next) return;
    const page = await api.get<ListResult>('/v1/secrets', {
      prefix: prefix || undefined,
      after: pages.next,
      limit: PAGE,
    });
    setPages({ keys: [...pages.keys, ...page.keys], next: page.next });
  };
  const open = (e: Event) => {
    e.preventDefault();
    const p = typed.trim();
    const why = p === '' ? undefined : pathProblem(p);
    setProblem(why ? pathMessage('prefix', why) : undefined);
    if (!why) setPrefix(p);
  };
  const forbidden = listing.error instanceof ApiError && listing.error.code === 'forbidden';
  return (
    <nav aria-label="Secret tree">
      <form class="row" onSubmit={open}>
        <label class="field grow">
          <span>Prefix</span>
          <input
            value={typed}
            onInput={(e) => setTyped(e.currentTarget.value)}
            placeholder="(all)"
            aria-invalid={problem ? true : undefined}
            aria-describedby={problem ? 'prefix-problem' : undefined}
          />
        </label>
        <button type="submit">Open</button>
      </form>
      {problem ? (
        <p id="prefix-problem" class="error" role="alert">
          {problem}
        </p>
      ) : null}
      <p class="row">
        <a href={href('secrets', 'new')}>New secret</a>
        <a href={href('secrets', 'expiring')}>Expiring soon</a>
      </p>
      <h2 class="prefix">{prefix || 'All secrets'}</h2>
      {forbidden ? (
        <p class="noaccess" role="status">
          No access: your policies do not let you list {prefix ? <code>{prefix}</code> : 'here'}.
        </p>
      ) : listing.error ? (
        <ErrorNote error={listing.error} />
      ) : listing.loading || !pages ? (
        <p class="muted">Loading…</p>
      ) : pages.keys.length === 0 ? (
        <p class="muted">Nothing here you may list.</p>
      ) : (
        <>
          <Branch node={treeOf(pages.keys, prefix)} base={prefix} />
          {pages.next ? (
            <button type="button" onClick={more}>
              Load more
            </button>
          ) : null}
        </>
      )}
    </nav>
  );
}

function Branch({ node, base }: { node: Node; base: string }) {
  return (
    <ul class="tree">
      {node.secret && base ? (
        <li>
          <a href={href('secrets', 's', ...base.split('/'))}>{base.split('/').at(-1)}</a>
        </li>
      ) : null}
      {[...node.children].map(([name, child]) => {
        const full = base ? `${base}/${name}` : name;
        if (child.children.size === 0)
          return (
            <li key={name}>
              <a href={href('secrets', 's', ...full.split('/'))}>{name}</a>
            </li>
          );
        return (
          <li key={name}>
            <details open>
              <summary>{name}/</summary>
              <Branch node={{ children: child.children, secret: false }} base={full} />
              {child.secret ? (
                <a class="self" href={href('secrets', 's', ...full.split('/'))}>
                  {name} (secret)
                </a>
              ) : null}
            </details>
          </li>
        );
      })}
    </ul>
  );
}

// ---- one secret

const state = (v: SecretVersionInfo) => (v.destroyed ? 'destroyed' : v.deleted_at ? 'deleted' : 'live');
const DAY = 86_400_000;

function SecretView({ api, path }: { api: Api; path: string }) {
  const meta = useLoad(() => api.get<SecretMetadata>(secretUrl('/v1/metadata', path)), [path]);
  const [revealed, setRevealed] = useState<Map<number, Secret>>(new Map());
  const [error, setError] = useState<unknown>();
  const [destroying, setDestroying] = useState<number>();
  const [editing, setEditing] = useState(false);

  if (meta.error instanceof ApiError && meta.error.code === 'forbidden')
    return (
      <p class="noaccess" role="status">
        No access to <code>{path}</code>.
      </p>
    );
  if (meta.error) return <ErrorNote error={meta.error} />;
  const m = meta.data;
  if (!m) return <p class="muted">Loading…</p>;

  const act = (run: () => Promise<unknown>) => () =>
    run().then(() => {
      setError(undefined);
      setRevealed(new Map());
      meta.reload();
    }, setError);
  const reveal = (version: number) =>
    api.get<Secret>(secretUrl('/v1/secrets', path), { version }).then((s) => {
      setError(undefined);
      setRevealed(new Map(revealed).set(version, s));
    }, setError);
  const hide = (version: number) => {
    const next = new Map(revealed);
    next.delete(version);
    setRevealed(next);
  };
  const cert = m.type === 'certificate' ? m.metadata : undefined;
  return (
    <article aria-labelledby="secret-title">
      <h1 id="secret-title">{path}</h1>
      <dl class="facts">
        <dt>Type</dt>
        <dd>{m.type}</dd>
        <dt>Current version</dt>
        <dd>{m.current_version}</dd>
        <dt>Created</dt>
        <dd>
          <When at={m.created_at} />
        </dd>
        <dt>Updated</dt>
        <dd>
          <When at={m.updated_at} />
        </dd>
        {cert?.subject !== undefined ? (
          <>
            <dt>Subject</dt>
            <dd>{cert.subject}</dd>
            <dt>SANs</dt>
            <dd>{cert.sans || '—'}</dd>
            <dt>Days to expiry</dt>
            <dd>{cert.not_after ? Math.floor((Date.parse(cert.not_after) - Date.now()) / DAY) : '—'}</dd>
          </>
        ) : null}
      </dl>
      <ErrorNote error={error} />
      <table>
        <caption>Versions</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Type</th>
            <th scope="col">Created</th>
            <th scope="col">Expires</th>
            <th scope="col">State</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {[...m.versions].reverse().map((v) => (
            <tr key={v.version}>
              <td>{v.version}</td>
              <td>{v.type}</td>
              <td>
                <When at={v.created_at} />
              </td>
              <td>
                <When at={v.expires_at} />
              </td>
              <td>{state(v)}</td>
              <td class="actions">
                {state(v) === 'live' ? (
                  revealed.has(v.version) ? (
                    <button type="button" onClick={() => hide(v.version)}>
                      Hide v{v.version}
                    </button>
                  ) : (
                    <button type="button" onClick={() => reveal(v.version)}>
                      Reveal v{v.version}
                    </button>
                  )
                ) : null}
                {state(v) === 'live' ? (
                  <button
                    type="button"
                    onClick={act(() =>
                      api.send('DELETE', secretUrl('/v1/secrets', path), undefined, { versions: String(v.version) }),
                    )}
                  >
                    Delete v{v.version}
                  </button>
                ) : null}
                {state(v) === 'deleted' ? (
                  <button
                    type="button"
                    onClick={act(() =>
                      api.send('POST', `${secretUrl('/v1/secrets', path)}/undelete`, { versions: [v.version] }),
                    )}
                  >
                    Undelete v{v.version}
                  </button>
                ) : null}
                {!v.destroyed ? (
                  <button type="button" class="danger" onClick={() => setDestroying(v.version)}>
                    Destroy v{v.version}
                  </button>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {[...revealed].map(([version, secret]) => (
        <Revealed key={version} secret={secret} />
      ))}
      {editing ? (
        <section aria-labelledby="edit-title">
          <h2 id="edit-title">New version</h2>
          <SecretForm
            api={api}
            path={path}
            base={m}
            initial={revealed.get(m.current_version)}
            onSaved={() => {
              setEditing(false);
              setRevealed(new Map());
              meta.reload();
            }}
          />
        </section>
      ) : (
        <button type="button" onClick={() => setEditing(true)}>
          Write a new version
        </button>
      )}
      {destroying !== undefined ? (
        <Confirm
          title={`Destroy version ${destroying}`}
          typed={path}
          action="Destroy"
          onCancel={() => setDestroying(undefined)}
          onConfirm={() => {
            const version = destroying;
            setDestroying(undefined);
            act(() => api.send('POST', `${secretUrl('/v1/secrets', path)}/destroy`, { versions: [version] }))();
          }}
        >
          <p>The value of version {destroying} is erased for good; it cannot be undeleted.</p>
        </Confirm>
      ) : null}
    </article>
  );
}

function Revealed({ secret }: { secret: Secret }) {
  const [copied, setCopied] = useState<string>();
  const copy = (key: string, value: string) =>
    navigator.clipboard.writeText(value).then(
      () => setCopied(key),
      () => setCopied(undefined),
    );
  return (
    <section class="revealed" aria-label={`Version ${secret.version} values`}>
      <h2>
        Version {secret.version}{' '}
        <small class="muted">
          created <When at={secret.created_at} />
        </small>
      </h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Key</th>
            <th scope="col">Value</th>
            <th scope="col">Copy</th>
          </tr>
        </thead>
        <tbody>
          {Object.entries(secret.data).map(([key, value]) => (
            <tr key={key}>
              <th scope="row">{key}</th>
              <td>
                <pre class="value" data-key={key}>
                  {value}
                </pre>
              </td>
              <td>
                <button type="button" onClick={() => copy(key, value)}>
                  {copied === key ? `Copied ${key}` : `Copy ${key}`}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

// ---- create and update

interface Row {
  key: string;
  value: string;
}

/**
 * A new secret (`path` absent: check-and-set 0, so an existing path is never overwritten) or a
 * new version of `base` (check-and-set on its current version). A conflict shows both versions
 * and asks before writing over the newer one.
 */
function SecretForm(props: {
  api: Api;
  path?: string;
  base?: SecretMetadata;
  initial?: Secret | undefined;
  onSaved: (path: string) => void;
}) {
  const [path, setPath] = useState(props.path ?? '');
  const [type, setType] = useState<string>(props.base?.type ?? 'kv');
  const [rows, setRows] = useState<Row[]>(
    props.initial
      ? Object.entries(props.initial.data).map(([key, value]) => ({ key, value }))
      : [{ key: '', value: '' }],
  );
  const [generate, setGenerate] = useState({ on: false, key: 'password', length: '32', charset: 'alphanumeric' });
  const [expires, setExpires] = useState('');
  const [cas, setCas] = useState<number | undefined>(props.base ? props.base.current_version : 0);
  const [conflict, setConflict] = useState<{ mine: SecretVersionInfo | undefined; theirs: SecretMetadata }>();
  const [error, setError] = useState<unknown>();
  const [pathError, setPathError] = useState<string>();

  const request = (): PutSecretRequest => {
    const data: Record<string, string> = {};
    for (const r of rows) if (r.key) data[r.key] = r.value;
    const body: PutSecretRequest = { type: SECRET_TYPES.find((t) => t === type) ?? 'kv', data };
    if (cas !== undefined) body.cas = cas;
    if (expires) body.expires_at = new Date(expires).toISOString();
    const charset = PASSWORD_CHARSETS.find((c) => c === generate.charset);
    if (generate.on)
      body.generate = { key: generate.key, length: Number(generate.length), ...(charset ? { charset } : {}) };
    return body;
  };

  const save = (body: PutSecretRequest) => {
    const why = pathProblem(path);
    setPathError(why ? pathMessage('path', why) : undefined);
    if (why) return;
    props.api.send<PutSecretResult>('PUT', secretUrl('/v1/secrets', path), body).then(
      () => props.onSaved(path),
      async (e: unknown) => {
        if (e instanceof ApiError && e.code === 'cas_mismatch' && props.base) {
          const theirs = await props.api.get<SecretMetadata>(secretUrl('/v1/metadata', path)).catch(() => undefined);
          if (theirs) {
            setConflict({ mine: props.base.versions.find((v) => v.version === props.base?.current_version), theirs });
            return;
          }
        }
        setError(e);
      },
    );
  };
  const setRow = (i: number, patch: Partial<Row>) => setRows(rows.map((r, j) => (i === j ? { ...r, ...patch } : r)));
  const theirsCurrent = conflict?.theirs.versions.find((v) => v.version === conflict.theirs.current_version);

  return (
    <form
      class="secret-form"
      onSubmit={(e) => {
        e.preventDefault();
        setError(undefined);
        save(request());
      }}
    >
      {props.path === undefined ? (
        <Field label="Path" hint="segments of letters, digits, . _ - separated by /">
          <input
            name="path"
            value={path}
            onInput={(e) => setPath(e.currentTarget.value)}
            required
            aria-invalid={pathError ? true : undefined}
          />
        </Field>
      ) : null}
      {pathError ? (
        <p class="error" role="alert">
          {pathError}
        </p>
      ) : null}
      <Field label="Type">
        <select value={type} onChange={(e) => setType(e.currentTarget.value)}>
          {SECRET_TYPES.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
      </Field>
      <fieldset>
        <legend>Values</legend>
        {rows.map((r, i) => (
          <div class="row" key={i}>
            <label class="field">
              <span>Key {i + 1}</span>
              <input value={r.key} onInput={(e) => setRow(i, { key: e.currentTarget.value })} autoComplete="off" />
            </label>
            <label class="field grow">
              <span>Value {i + 1}</span>
              <textarea
                rows={1}
                value={r.value}
                onInput={(e) => setRow(i, { value: e.currentTarget.value })}
                autoComplete="off"
                spellcheck={false}
              />
            </label>
            <button
              type="button"
              onClick={() => setRows(rows.filter((_, j) => j !== i))}
              aria-label={`Remove key ${i + 1}`}
            >
              Remove
            </button>
          </div>
        ))}
        <button type="button" onClick={() => setRows([...rows, { key: '', value: '' }])}>
          Add a key
        </button>
      </fieldset>
      <fieldset>
        <legend>Generate a password on the server</legend>
        <label class="inline">
          <input
            type="checkbox"
            checked={generate.on}
            onChange={(e) => setGenerate({ ...generate, on: e.currentTarget.checked })}
          />{' '}
          Generate
        </label>
        {generate.on ? (
          <div class="row">
            <Field label="Key">
              <input value={generate.key} onInput={(e) => setGenerate({ ...generate, key: e.currentTarget.value })} />
            </Field>
            <Field label="Length">
              <input
                type="number"
                min={8}
                max={256}
                value={generate.length}
                onInput={(e) => setGenerate({ ...generate, length: e.currentTarget.value })}
              />
            </Field>
            <Field label="Characters">
              <select
                value={generate.charset}
                onChange={(e) => setGenerate({ ...generate, charset: e.currentTarget.value })}
              >
                {PASSWORD_CHARSETS.map((c) => (
                  <option key={c} value={c}>
                    {c}
                  </option>
                ))}
              </select>
            </Field>
          </div>
        ) : null}
      </fieldset>
      <Field label="Expires at (optional)">
        <input type="datetime-local" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />
      </Field>
      {props.base ? (
        <p class="muted">Check-and-set: saved only if version {cas} is still the current one.</p>
      ) : (
        <p class="muted">Created only if nothing exists at this path yet.</p>
      )}
      <button type="submit">Save</button>
      <ErrorNote error={error} />
      {conflict ? (
        <div class="conflict" role="alert">
          <p>
            Someone wrote this secret since you opened it. You edited version {conflict.mine?.version ?? '?'} (created{' '}
            <When at={conflict.mine?.created_at} />
            ); the current one is version {conflict.theirs.current_version} (created{' '}
            <When at={theirsCurrent?.created_at} />
            ).
          </p>
          <button
            type="button"
            class="danger"
            onClick={() => {
              const next = conflict.theirs.current_version;
              setCas(next);
              setConflict(undefined);
              save({ ...request(), cas: next });
            }}
          >
            Save over version {conflict.theirs.current_version}
          </button>
          <button type="button" onClick={() => setConflict(undefined)}>
            Keep editing
          </button>
        </div>
      ) : null}
    </form>
  );
}

// ---- expiring soon

function Expiring({ api }: { api: Api }) {
  const [within, setWithin] = useState('30d');
  const [asked, setAsked] = useState('30d');
  const found = useLoad(() => api.get<ExpiringResult>('/v1/secrets', { expiring_within: asked }), [asked]);
  return (
    <section aria-labelledby="expiring-title">
      <h1 id="expiring-title">Expiring soon</h1>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          setAsked(within.trim());
        }}
      >
        <Field label="Within" hint="3600, 90m, 12h or 30d">
          <input value={within} onInput={(e) => setWithin(e.currentTarget.value)} />
        </Field>
        <button type="submit">Show</button>
      </form>
      <ErrorNote error={found.error} />
      {found.data ? (
        found.data.secrets.length === 0 ? (
          <p>Nothing you may list expires in that time.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">Path</th>
                <th scope="col">Version</th>
                <th scope="col">Type</th>
                <th scope="col">Expires</th>
              </tr>
            </thead>
            <tbody>
              {found.data.secrets.map((s) => (
                <tr key={s.path}>
                  <td>
                    <a href={href('secrets', 's', ...s.path.split('/'))}>{s.path}</a>
                  </td>
                  <td>{s.version}</td>
                  <td>{s.type}</td>
                  <td>
                    <When at={s.expires_at} /> {s.expired ? <strong>expired</strong> : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : null}
    </section>
  );
}

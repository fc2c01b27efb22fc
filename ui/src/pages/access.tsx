import { useState } from 'preact/hooks';
import type { NameList, SecretIdResult, TokenCapabilities } from '../../../sdk/wire/types.js';
import { ApiError, type Api } from '../api.js';
import type { PageProps } from '../page.js';
import { go, href } from '../route.js';
import { Confirm, ErrorNote, Field, When, useLoad } from '../ui.js';

/**
 * Access (docs/ui.md "Access"): the five admin collections of the API (policies, groups,
 * userpass users, approle roles, jwt roles), each a list and a JSON editor of the object as the
 * API takes it. The server validates; its error is shown at the editor and nothing is saved.
 */

interface Collection {
  id: string;
  label: string;
  singular: string;
  base: string;
  /** What a new object starts as. */
  template: Record<string, unknown>;
  /** Fields an answer carries that a PUT does not take. */
  answerOnly: string[];
}

const COLLECTIONS: Collection[] = [
  {
    id: 'policies',
    label: 'Policies',
    singular: 'Policy',
    base: '/v1/policies',
    template: { rules: [{ path: 'team/**', capabilities: ['read', 'list'] }] },
    answerOnly: ['name'],
  },
  {
    id: 'groups',
    label: 'Groups',
    singular: 'Group',
    base: '/v1/groups',
    template: { policies: [], members: [] },
    answerOnly: ['name'],
  },
  {
    id: 'users',
    label: 'Userpass users',
    singular: 'Userpass user',
    base: '/v1/auth/userpass/users',
    template: { password: '', policies: [], groups: [], token_ttl: 3600 },
    answerOnly: ['name'],
  },
  {
    id: 'approle',
    label: 'AppRole roles',
    singular: 'AppRole role',
    base: '/v1/auth/approle/roles',
    template: { policies: [], secret_id_ttl: 3600, secret_id_num_uses: 0, bound_cidrs: [] },
    answerOnly: ['name', 'role_id'],
  },
  {
    id: 'jwt',
    label: 'JWT roles',
    singular: 'JWT role',
    base: '/v1/auth/jwt/roles',
    template: {},
    answerOnly: ['name'],
  },
];

/**
 * Starting points for CI platforms: what each must bind at least (README "CI jobs: jwt roles").
 * The upper-case placeholders are for the operator to replace.
 */
const JWT_PRESETS: Record<string, Record<string, unknown>> = {
  'GitHub Actions': {
    issuer: 'https://token.actions.githubusercontent.com',
    jwks_url: 'https://token.actions.githubusercontent.com/.well-known/jwks',
    allowed_algorithms: ['RS256'],
    bound_audiences: ['coffer'],
    bound_claims: { repository: 'OWNER/REPO', repository_id: 'REPOSITORY_ID', ref: 'refs/heads/main' },
    claim_mappings: { repository: 'repository', workflow_ref: 'workflow_ref' },
    groups: [],
  },
  'GitLab CI': {
    issuer: 'https://gitlab.com',
    jwks_url: 'https://gitlab.com/oauth/discovery/keys',
    allowed_algorithms: ['RS256'],
    bound_audiences: ['coffer'],
    bound_claims: { project_id: 'PROJECT_ID', ref_protected: 'true' },
    claim_mappings: { project_path: 'project_path' },
    groups: [],
  },
  Kubernetes: {
    issuer: 'https://kubernetes.default.svc.cluster.local',
    jwks_url: 'https://kubernetes.default.svc.cluster.local/openid/v1/jwks',
    allowed_algorithms: ['RS256'],
    bound_audiences: ['coffer'],
    bound_subject: 'system:serviceaccount:NAMESPACE:SERVICE_ACCOUNT',
    bound_claims: { 'kubernetes.io/serviceaccount/uid': 'SERVICE_ACCOUNT_UID' },
    groups: [],
  },
};

export function Access({ api, route }: PageProps) {
  const [which, name] = route;
  const collection = COLLECTIONS.find((c) => c.id === which) ?? COLLECTIONS[0];
  if (!collection) return null;
  return (
    <div class="split">
      <aside>
        <nav aria-label="Access">
          <ul class="tree">
            {COLLECTIONS.map((c) => (
              <li key={c.id}>
                <a href={href('access', c.id)} aria-current={c === collection ? 'page' : undefined}>
                  {c.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <Names key={`${collection.id}/${name ?? ''}`} api={api} collection={collection} />
        <CanI api={api} />
      </aside>
      <section class="content">
        {/* A collection's page opens the new-object editor, as its New link does: one key for both, so
            following New from there keeps what was typed instead of remounting an empty editor. */}
        <Editor key={`${collection.id}/${name ?? '+new'}`} api={api} collection={collection} name={name} />
      </section>
    </div>
  );
}

function Names({ api, collection }: { api: Api; collection: Collection }) {
  const list = useLoad(() => api.get<NameList>(collection.base), [collection.base]);
  return (
    <section aria-labelledby="names-title">
      <h2 id="names-title">{collection.label}</h2>
      <p>
        <a href={href('access', collection.id, '+new')}>New</a>
      </p>
      {list.error instanceof ApiError && list.error.code === 'forbidden' ? (
        <p class="noaccess" role="status">
          No access: listing {collection.label.toLowerCase()} needs admin.
        </p>
      ) : (
        <ErrorNote error={list.error} />
      )}
      <ul class="tree">
        {list.data?.keys.map((n) => (
          <li key={n}>
            <a href={href('access', collection.id, n)}>{n}</a>
          </li>
        ))}
      </ul>
    </section>
  );
}

const strip = (object: Record<string, unknown>, fields: string[]) =>
  Object.fromEntries(Object.entries(object).filter(([k]) => !fields.includes(k)));

function Editor({ api, collection, name }: { api: Api; collection: Collection; name: string | undefined }) {
  const creating = name === undefined || name === '+new';
  const item = (n: string) => {
    // `.` and `..` survive encodeURIComponent and would be resolved by the URL parser: no name is one.
    if (n === '.' || n === '..') throw new Error(`not a name: ${n}`);
    return `${collection.base}/${encodeURIComponent(n)}`;
  };
  const [newName, setNewName] = useState('');
  const [text, setText] = useState<string>();
  const [problem, setProblem] = useState<string>();
  const [saved, setSaved] = useState<string>();
  const [deleting, setDeleting] = useState(false);
  const [secretId, setSecretId] = useState<SecretIdResult>();
  const current = useLoad<Record<string, unknown> | undefined>(
    () => (creating ? Promise.resolve(undefined) : api.get<Record<string, unknown>>(item(name))),
    [collection.id, name],
  );
  if (!creating && current.error) return <ErrorNote error={current.error} />;
  if (!creating && !current.data) return <p class="muted">Loading…</p>;
  const shown =
    text ?? JSON.stringify(creating ? collection.template : strip(current.data ?? {}, collection.answerOnly), null, 2);
  const target = creating ? newName.trim() : name;

  const save = (e: Event) => {
    e.preventDefault();
    setSaved(undefined);
    let body: unknown;
    try {
      body = JSON.parse(shown);
    } catch (err) {
      // Nothing is sent for text that is not JSON.
      setProblem(`Not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (!target) {
      setProblem('Give a name.');
      return;
    }
    api.send<Record<string, unknown>>('PUT', item(target), body).then(
      () => {
        setProblem(undefined);
        setSaved(`Saved ${target}.`);
        if (creating) go('access', collection.id, target);
        else current.reload();
      },
      (err: unknown) => setProblem(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err)),
    );
  };

  return (
    <article aria-labelledby="editor-title">
      <h1 id="editor-title">{creating ? `New ${collection.singular}` : name}</h1>
      {collection.answerOnly.includes('role_id') && current.data?.role_id ? (
        <p>
          Role ID: <code>{String(current.data.role_id)}</code>
        </p>
      ) : null}
      <form onSubmit={save}>
        {creating ? (
          <Field label="Name">
            <input value={newName} onInput={(e) => setNewName(e.currentTarget.value)} required autoComplete="off" />
          </Field>
        ) : null}
        {collection.id === 'jwt' ? (
          <fieldset>
            <legend>Presets (fill issuer, keys and the claims to bind)</legend>
            {Object.entries(JWT_PRESETS).map(([label, preset]) => (
              <button
                key={label}
                type="button"
                onClick={() => (
                  setText(JSON.stringify({ ...JSON.parse(shown || '{}'), ...preset }, null, 2)),
                  setProblem(undefined)
                )}
              >
                {label}
              </button>
            ))}
          </fieldset>
        ) : null}
        <label class="field">
          <span>{collection.singular} (JSON)</span>
          <textarea
            class="code"
            value={shown}
            onInput={(e) => (setText(e.currentTarget.value), setProblem(undefined))}
            spellcheck={false}
            aria-invalid={problem ? true : undefined}
            aria-describedby={problem ? 'editor-problem' : undefined}
          />
        </label>
        {problem ? (
          <p id="editor-problem" class="error" role="alert">
            {problem}
          </p>
        ) : null}
        <button type="submit">Save</button>
        {!creating ? (
          <button type="button" class="danger" onClick={() => setDeleting(true)}>
            Delete
          </button>
        ) : null}
        {collection.id === 'approle' && !creating ? (
          <button
            type="button"
            onClick={() =>
              api
                .send<SecretIdResult>('POST', `${item(name)}/secret-id`, {})
                .then(setSecretId, (err: unknown) => setProblem(String(err instanceof ApiError ? err.message : err)))
            }
          >
            Issue a secret ID
          </button>
        ) : null}
        {saved ? <p role="status">{saved}</p> : null}
      </form>
      {secretId ? (
        <section class="notice" aria-label="New secret ID">
          <p>Shown once; it cannot be read again.</p>
          <pre class="value secret-id">{secretId.secret_id}</pre>
          <p>
            Expires <When at={secretId.expires_at} /> · uses {secretId.uses ?? 'unlimited'}
          </p>
          <button type="button" onClick={() => setSecretId(undefined)}>
            Done
          </button>
        </section>
      ) : null}
      {deleting && !creating ? (
        <Confirm
          title={`Delete ${name}`}
          typed={name}
          action="Delete"
          onCancel={() => setDeleting(false)}
          onConfirm={() => {
            setDeleting(false);
            api.send('DELETE', item(name)).then(
              () => go('access', collection.id),
              (err: unknown) => setProblem(String(err instanceof ApiError ? err.message : err)),
            );
          }}
        >
          <p>Tokens already issued keep what they were given until they expire.</p>
        </Confirm>
      ) : null}
    </article>
  );
}

/** "What can this token do at PATH": the signed-in token's own grants (`GET /v1/auth/token/capabilities`). */
function CanI({ api }: { api: Api }) {
  const [path, setPath] = useState('');
  const [answer, setAnswer] = useState<TokenCapabilities>();
  const [error, setError] = useState<unknown>();
  return (
    <section aria-labelledby="cani-title">
      <h2 id="cani-title">What can this token do?</h2>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          api.get<TokenCapabilities>('/v1/auth/token/capabilities', { path: path.trim() }).then(
            (a) => (setAnswer(a), setError(undefined)),
            (err: unknown) => (setAnswer(undefined), setError(err)),
          );
        }}
      >
        <Field label="At path" hint="team/app/db, sys/policies/ci, transit/payments">
          <input value={path} onInput={(e) => setPath(e.currentTarget.value)} autoComplete="off" />
        </Field>
        <button type="submit">Check</button>
      </form>
      <ErrorNote error={error} />
      {answer ? (
        <p role="status" class="capabilities">
          At <code>{answer.path}</code>: {answer.capabilities.length > 0 ? answer.capabilities.join(', ') : 'nothing'}
        </p>
      ) : null}
    </section>
  );
}

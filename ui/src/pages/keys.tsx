import { useEffect, useMemo, useState } from 'preact/hooks';
import { OAEP_HASHES } from '../../../sdk/wire/constants.js';
import { KEY_USAGES } from '../../../sdk/wire/constants.js';
import { namespaceOf } from '../../../sdk/wire/paths.js';
import type {
  ByokImportResult,
  ByokWrappingKey,
  KeyringRotation,
  KeyringStatus,
  ListResult,
  MasterRotation,
  RewrapProgress,
  SealStatus,
  TransitKeyInfo,
} from '../../../sdk/wire/types.js';
import { ApiError, type Api } from '../api.js';
import type { PageProps } from '../page.js';
import { Confirm, ErrorNote, Field, When, useLoad } from '../ui.js';

/**
 * Keys (docs/ui.md "Keys"): the hierarchy as the API reports it. The master key (provider,
 * version, imported material's rights) and the seal; one keyring per namespace with its versions
 * and wrap counts, rotated with the background rewrap followed live; named (transit) keys.
 */
export function Keys({ api }: PageProps) {
  return (
    <>
      <h1>Keys</h1>
      <Master api={api} />
      <Keyrings api={api} />
      <Transit api={api} />
      <Byok api={api} />
    </>
  );
}

function Master({ api }: { api: Api }) {
  const seal = useLoad(() => api.get<SealStatus>('/v1/sys/seal-status'), []);
  const [confirm, setConfirm] = useState(false);
  const [error, setError] = useState<unknown>();
  const [rotated, setRotated] = useState<MasterRotation>();
  const s = seal.data;
  return (
    <section aria-labelledby="master-title">
      <h2 id="master-title">Master key and seal</h2>
      <ErrorNote error={seal.error ?? error} />
      {s ? (
        <dl class="facts">
          <dt>State</dt>
          <dd>{s.sealed ? 'sealed' : 'unsealed'}</dd>
          <dt>Key provider</dt>
          <dd>{s.provider}</dd>
          <dt>Unseal quorum</dt>
          <dd>
            {s.threshold} of {s.shares}
          </dd>
          {s.master_key ? (
            <>
              <dt>Master key version</dt>
              <dd>{s.master_key.version}</dd>
              <dt>Imported (BYOK)</dt>
              <dd>{s.master_key.imported ? 'yes' : 'no'}</dd>
              <dt>Exportable</dt>
              <dd>{s.master_key.exportable ? 'yes' : 'no'}</dd>
              <dt>Valid to</dt>
              <dd>
                {s.master_key.valid_to ? <When at={s.master_key.valid_to} /> : 'no end'}
                {s.master_key.expired ? ' (expired)' : ''}
              </dd>
            </>
          ) : null}
        </dl>
      ) : null}
      <button
        type="button"
        onClick={() =>
          api.send<MasterRotation>('POST', '/v1/sys/rotate', {}).then((r) => {
            setRotated(r);
            setError(undefined);
            seal.reload();
          }, setError)
        }
      >
        Rotate the master key
      </button>
      <button type="button" class="danger" onClick={() => setConfirm(true)}>
        Seal the vault
      </button>
      {rotated ? (
        <p role="status">
          Master key version {rotated.master_version}; {rotated.keyrings_rewrapped} keyrings re-wrapped under it.
        </p>
      ) : null}
      {confirm ? (
        <Confirm
          title="Seal the vault"
          action="Seal"
          typed="seal"
          onCancel={() => setConfirm(false)}
          onConfirm={() => (setConfirm(false), api.send('POST', '/v1/sys/seal', {}).catch(setError))}
        >
          <p>Every key leaves memory. Nothing can be read until a quorum unseals it again.</p>
        </Confirm>
      ) : null}
    </section>
  );
}

/** The namespaces the caller can see: first segments of the paths it may list. */
async function namespaces(api: Api): Promise<string[]> {
  const page = await api.get<ListResult>('/v1/secrets', { limit: 1000 }).catch(() => ({ keys: [], next: null }));
  return [...new Set(page.keys.map(namespaceOf))];
}

function Keyrings({ api }: { api: Api }) {
  const known = useLoad(() => namespaces(api), []);
  const [typed, setTyped] = useState('');
  const [ns, setNs] = useState<string>();
  const shown = ns ?? known.data?.[0];
  return (
    <section aria-labelledby="keyrings-title">
      <h2 id="keyrings-title">Keyrings</h2>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (typed.trim()) setNs(typed.trim());
        }}
      >
        <Field label="Namespace">
          <input value={typed} onInput={(e) => setTyped(e.currentTarget.value)} list="namespaces" autoComplete="off" />
        </Field>
        <datalist id="namespaces">
          {known.data?.map((n) => (
            <option key={n} value={n} />
          ))}
        </datalist>
        <button type="submit">Show</button>
      </form>
      {known.data && known.data.length > 0 ? (
        <p>
          Namespaces:{' '}
          {known.data.map((n) => (
            <button key={n} type="button" aria-pressed={n === shown} onClick={() => setNs(n)}>
              {n}
            </button>
          ))}
        </p>
      ) : null}
      {shown ? <Keyring key={shown} api={api} ns={shown} /> : null}
    </section>
  );
}

function Keyring({ api, ns }: { api: Api; ns: string }) {
  const ring = useLoad(() => api.get<KeyringStatus>(`/v1/sys/keyrings/${encodeURIComponent(ns)}`), [ns]);
  const [error, setError] = useState<unknown>();
  const running = ring.data?.rewrap?.state === 'running';
  // Follow a running rewrap until it finishes.
  useEffect(() => {
    if (!running) return;
    const timer = setTimeout(ring.reload, 300);
    return () => clearTimeout(timer);
  }, [ring.data]);
  if (ring.error instanceof ApiError && ring.error.code === 'forbidden')
    return (
      <p class="noaccess" role="status">
        No access to the keyring of {ns}.
      </p>
    );
  if (ring.error) return <ErrorNote error={ring.error} />;
  const k = ring.data;
  if (!k) return <p class="muted">Loading…</p>;
  const rotate = () =>
    api
      .send<KeyringRotation>('POST', `/v1/sys/keyrings/${encodeURIComponent(ns)}/rotate`, { rewrap: true })
      .then(() => {
        setError(undefined);
        ring.reload();
      }, setError);
  return (
    <article aria-label={`Keyring ${ns}`}>
      <h3>
        {k.namespace}: version {k.current} (under master version {k.master_version})
      </h3>
      <table>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Created</th>
            <th scope="col">Wraps</th>
            <th scope="col">Master version</th>
          </tr>
        </thead>
        <tbody>
          {[...k.versions].reverse().map((v) => (
            <tr key={v.version}>
              <td>{v.version}</td>
              <td>
                <When at={v.created_at} />
              </td>
              <td>{v.wraps}</td>
              <td>{v.master_version}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" onClick={rotate} disabled={running}>
        Rotate and rewrap
      </button>
      <ErrorNote error={error} />
      {k.rewrap ? <Rewrap progress={k.rewrap} /> : null}
    </article>
  );
}

function Rewrap({ progress }: { progress: RewrapProgress }) {
  return (
    <div class="rewrap" role="status" aria-live="polite">
      <p>
        Rewrap to version {progress.target_version}: <strong>{progress.state}</strong> — {progress.scanned} of{' '}
        {progress.total} scanned, {progress.rewrapped} rewrapped
        {progress.finished_at ? (
          <>
            , finished <When at={progress.finished_at} />
          </>
        ) : null}
        {progress.error ? `: ${progress.error}` : ''}
      </p>
      <progress
        max={Math.max(progress.total, 1)}
        value={progress.state === 'done' ? Math.max(progress.total, 1) : progress.scanned}
        aria-label="Rewrap progress"
      />
    </div>
  );
}

function Transit({ api }: { api: Api }) {
  const [typed, setTyped] = useState('');
  const [name, setName] = useState<string>();
  const [usage, setUsage] = useState<string[]>([...KEY_USAGES]);
  const [error, setError] = useState<unknown>();
  const [key, setKey] = useState<TransitKeyInfo>();
  const [minVersion, setMinVersion] = useState('');
  const url = (n: string) => `/v1/keys/${encodeURIComponent(n)}`;
  const show = (n: string) =>
    api.get<TransitKeyInfo>(url(n)).then(
      (k) => (setKey(k), setError(undefined), setName(n)),
      (e: unknown) => (setKey(undefined), setError(e)),
    );
  const run = (p: Promise<unknown>) => p.then(() => (name === undefined ? undefined : show(name)), setError);
  return (
    <section aria-labelledby="transit-title">
      <h2 id="transit-title">Named keys (data-key API)</h2>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (typed.trim()) void show(typed.trim());
        }}
      >
        <Field label="Key name">
          <input value={typed} onInput={(e) => setTyped(e.currentTarget.value)} autoComplete="off" />
        </Field>
        <button type="submit">Open</button>
        <button
          type="button"
          onClick={() => {
            const n = typed.trim();
            if (n) api.send('POST', url(n), { usage }).then(() => show(n), setError);
          }}
        >
          Create
        </button>
      </form>
      <fieldset>
        <legend>Usage of a new key</legend>
        {KEY_USAGES.map((u) => (
          <label key={u} class="inline">
            <input
              type="checkbox"
              checked={usage.includes(u)}
              onChange={(e) => setUsage(e.currentTarget.checked ? [...usage, u] : usage.filter((x) => x !== u))}
            />{' '}
            {u}
          </label>
        ))}
      </fieldset>
      <ErrorNote error={error} />
      {key ? (
        <article aria-label={`Key ${key.name}`}>
          <h3>{key.name}</h3>
          <dl class="facts">
            <dt>Latest version</dt>
            <dd>{key.latest_version}</dd>
            <dt>Min decryption version</dt>
            <dd>{key.min_decryption_version}</dd>
            <dt>Usage</dt>
            <dd>{key.usage.join(', ')}</dd>
            <dt>Exportable</dt>
            <dd>{key.exportable ? 'yes' : 'no'}</dd>
          </dl>
          <button type="button" onClick={() => run(api.send('POST', `${url(key.name)}/rotate`, {}))}>
            Rotate
          </button>
          <form
            class="row"
            onSubmit={(e) => {
              e.preventDefault();
              void run(api.send('POST', `${url(key.name)}/config`, { min_decryption_version: Number(minVersion) }));
            }}
          >
            <Field label="Min decryption version">
              <input type="number" min={1} value={minVersion} onInput={(e) => setMinVersion(e.currentTarget.value)} />
            </Field>
            <button type="submit">Set</button>
          </form>
        </article>
      ) : null}
    </section>
  );
}

/**
 * Bring your own key (README "Bring your own key"): a wrapping key with the usage rights bound to
 * its import token, downloaded as a PEM file; then the customer's bundle (the master key wrapped
 * to it, base64) imported as the new master key version.
 */
function Byok({ api }: { api: Api }) {
  const [exportable, setExportable] = useState(false);
  const [validTo, setValidTo] = useState('');
  const [wrapping, setWrapping] = useState<ByokWrappingKey>();
  const [bundle, setBundle] = useState('');
  const [hash, setHash] = useState<string>('sha256');
  const [imported, setImported] = useState<ByokImportResult>();
  const [error, setError] = useState<unknown>();
  // A blob: URL, so the download needs no route of its own (and no inline data the CSP would refuse).
  const download = useMemo(
    () =>
      wrapping
        ? URL.createObjectURL(new Blob([wrapping.public_key_pem], { type: 'application/x-pem-file' }))
        : undefined,
    [wrapping],
  );
  useEffect(() => () => download && URL.revokeObjectURL(download), [download]);
  const ask = (e: Event) => {
    e.preventDefault();
    setImported(undefined);
    api
      .get<ByokWrappingKey>('/v1/sys/byok/wrapping-key', {
        exportable: String(exportable),
        valid_to: validTo ? new Date(validTo).toISOString() : undefined,
      })
      .then((w) => (setWrapping(w), setError(undefined)), setError);
  };
  const upload = (e: Event) => {
    e.preventDefault();
    if (!wrapping) return;
    const oaep = OAEP_HASHES.find((h) => h === hash) ?? 'sha256';
    api
      .send<ByokImportResult>('POST', '/v1/sys/byok/import', {
        import_token: wrapping.import_token,
        wrapped_key: bundle.trim(),
        oaep_hash: oaep,
        usage: ['wrap', 'unwrap'],
      })
      .then((r) => {
        setImported(r);
        setWrapping(undefined);
        setBundle('');
        setError(undefined);
      }, setError);
  };
  return (
    <section aria-labelledby="byok-title">
      <h2 id="byok-title">Bring your own key</h2>
      <form class="row" onSubmit={ask}>
        <label class="inline">
          <input type="checkbox" checked={exportable} onChange={(e) => setExportable(e.currentTarget.checked)} />{' '}
          Exportable by a quorum
        </label>
        <Field label="Valid to (optional)">
          <input type="datetime-local" value={validTo} onInput={(e) => setValidTo(e.currentTarget.value)} />
        </Field>
        <button type="submit">Get a wrapping key</button>
      </form>
      <ErrorNote error={error} />
      {wrapping ? (
        <div class="byok">
          <p>
            Import token valid until <When at={wrapping.expires_at} />. Rights bound to it:{' '}
            {wrapping.exportable ? 'exportable' : 'not exportable'}, valid to{' '}
            {wrapping.valid_to ? <When at={wrapping.valid_to} /> : 'no end'}. OAEP hashes:{' '}
            {wrapping.oaep_hashes.join(', ')}.
          </p>
          <pre class="value wrapping-key">{wrapping.public_key_pem}</pre>
          {download ? (
            <a href={download} download="coffer-wrapping-key.pem">
              Download the wrapping key
            </a>
          ) : null}
          <form onSubmit={upload}>
            <label class="field">
              <span>Bundle (the master key wrapped to this key, base64)</span>
              <textarea
                class="code bundle"
                value={bundle}
                onInput={(e) => setBundle(e.currentTarget.value)}
                spellcheck={false}
                required
              />
            </label>
            <Field label="OAEP hash">
              <select value={hash} onChange={(e) => setHash(e.currentTarget.value)}>
                {OAEP_HASHES.map((h) => (
                  <option key={h} value={h}>
                    {h}
                  </option>
                ))}
              </select>
            </Field>
            <button type="submit">Import as the new master key</button>
          </form>
        </div>
      ) : null}
      {imported ? (
        <p role="status">
          Imported: master key version {imported.master_version}, {imported.keyrings_rewrapped} keyrings re-wrapped;{' '}
          {imported.exportable ? 'exportable' : 'not exportable'}, valid to{' '}
          {imported.valid_to ? <When at={imported.valid_to} /> : 'no end'}.
        </p>
      ) : null}
    </section>
  );
}

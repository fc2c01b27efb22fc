import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import type { LoginResult, SealStatus, TokenSelf } from '../../sdk/wire/types.js';
import { createApi, errorText, type Api, type Trouble } from './api.js';
import { SignIn } from './pages/signin.js';
import { Secrets } from './pages/secrets.js';
import { Access } from './pages/access.js';
import { Keys } from './pages/keys.js';
import { Audit } from './pages/audit.js';
import { Replication } from './pages/replication.js';
import { href, useRoute } from './route.js';
import { forgetToken, identityOf, storedToken, storeToken, type Identity } from './session.js';
import { When } from './ui.js';
import type { PageProps } from './page.js';

/** The dashboard shell (docs/ui.md): session, sealed banner, navigation, one page at a time. */

const PAGES = [
  { id: 'secrets', label: 'Secrets' },
  { id: 'access', label: 'Access' },
  { id: 'keys', label: 'Keys' },
  { id: 'replication', label: 'Replication' },
  { id: 'audit', label: 'Audit' },
] as const;

function App() {
  const [token, setToken] = useState(storedToken);
  const [identity, setIdentity] = useState<Identity>();
  const [notice, setNotice] = useState<string>();
  const [sealed, setSealed] = useState(false);
  const route = useRoute();

  const signOutLocally = (message?: string) => {
    forgetToken();
    setToken(undefined);
    setIdentity(undefined);
    setNotice(message);
  };
  const api = useMemo(
    () =>
      createApi(
        () => storedToken(),
        (trouble: Trouble) =>
          trouble === 'expired'
            ? signOutLocally('Your session has ended (the token expired or was revoked). Sign in again.')
            : setSealed(true),
      ),
    [],
  );

  useEffect(() => {
    if (!token || identity) return;
    api.get<TokenSelf>('/v1/auth/token/self').then(
      (self) => setIdentity(identityOf(self)),
      () => undefined,
    );
  }, [token]);

  // While sealed, watch the public seal status so the banner leaves by itself after an unseal.
  useEffect(() => {
    if (!sealed) return;
    const timer = setInterval(() => {
      api.get<SealStatus>('/v1/sys/seal-status').then(
        (s) => !s.sealed && setSealed(false),
        () => undefined,
      );
    }, 2000);
    return () => clearInterval(timer);
  }, [sealed]);

  const signedIn = (login: LoginResult) => {
    storeToken(login.token);
    setToken(login.token);
    setIdentity(identityOf(login));
    setNotice(undefined);
    setSealed(false);
  };

  const banner = sealed ? (
    <div class="banner" role="alert">
      The vault is sealed: nothing can be read or changed until it is unsealed (<code>coffer operator unseal</code>).
      This page follows the seal status and carries on once it is unsealed.
    </div>
  ) : null;

  if (!token || !identity) {
    return (
      <>
        {banner}
        <main id="main">
          <SignIn api={api} notice={notice} onSignedIn={signedIn} restoring={Boolean(token)} />
        </main>
      </>
    );
  }
  const page = route[0] ?? 'secrets';
  const props: PageProps = { api, route: route.slice(1), identity };
  return (
    <>
      <header>
        <a class="brand" href={href('secrets')}>
          Coffer
        </a>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((p) => (
              <li key={p.id}>
                <a href={href(p.id)} aria-current={page === p.id ? 'page' : undefined}>
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <SessionPanel
          api={api}
          identity={identity}
          onRenewed={(l) => setIdentity(identityOf(l))}
          onSignedOut={() => signOutLocally('Signed out; the token is revoked.')}
        />
      </header>
      {banner}
      <main id="main">
        {sealed ? (
          <p>Sealed.</p>
        ) : page === 'access' ? (
          <Access {...props} />
        ) : page === 'keys' ? (
          <Keys {...props} />
        ) : page === 'replication' ? (
          <Replication {...props} />
        ) : page === 'audit' ? (
          <Audit {...props} />
        ) : (
          <Secrets {...props} />
        )}
      </main>
    </>
  );
}

function SessionPanel(props: {
  api: Api;
  identity: Identity;
  onRenewed: (l: LoginResult) => void;
  onSignedOut: () => void;
}) {
  const [error, setError] = useState<string>();
  const { identity } = props;
  const renew = () =>
    props.api.send<LoginResult>('POST', '/v1/auth/token/renew', {}).then(
      (l) => {
        setError(undefined);
        props.onRenewed(l);
      },
      (e: unknown) => setError(errorText(e)),
    );
  // Revoke first; a token the server no longer knows is signed out locally all the same.
  const signOut = () => props.api.send('POST', '/v1/auth/token/revoke', {}).finally(props.onSignedOut);
  return (
    <section class="session" aria-label="Session">
      <dl>
        <dt>Signed in as</dt>
        <dd class="identity">{identity.identity}</dd>
        <dt>Groups</dt>
        <dd>{identity.groups.join(', ') || '—'}</dd>
        <dt>Policies</dt>
        <dd>{identity.policies.join(', ') || '—'}</dd>
        <dt>Expires</dt>
        <dd>
          <When at={identity.expires_at} />
        </dd>
      </dl>
      <button type="button" onClick={renew}>
        Renew
      </button>
      <button type="button" onClick={signOut}>
        Sign out
      </button>
      {error ? (
        <p class="error" role="status">
          {error}
        </p>
      ) : null}
    </section>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);

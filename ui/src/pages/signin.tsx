import { useState } from 'preact/hooks';
import type { LoginResult, SealStatus, TokenSelf } from '../../../sdk/wire/types.js';
import type { Api } from '../api.js';
import { createApi } from '../api.js';
import { ErrorNote, Field, useLoad } from '../ui.js';

type Method = 'token' | 'userpass' | 'approle';

const METHODS: { id: Method; label: string }[] = [
  { id: 'token', label: 'A token' },
  { id: 'userpass', label: 'Username and password' },
  { id: 'approle', label: 'An AppRole' },
];

/**
 * Sign-in with a token (checked with `GET /v1/auth/token/self`), userpass or approle: the
 * same logins the CLI uses. Nothing typed here is kept but the resulting token.
 */
export function SignIn(props: {
  api: Api;
  notice: string | undefined;
  restoring: boolean;
  onSignedIn: (l: LoginResult) => void;
}) {
  const [method, setMethod] = useState<Method>('token');
  const [fields, setFields] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const seal = useLoad(() => props.api.get<SealStatus>('/v1/sys/seal-status'), []);
  const set = (name: string) => (e: { currentTarget: HTMLInputElement }) =>
    setFields({ ...fields, [name]: e.currentTarget.value });
  const value = (name: string) => fields[name] ?? '';

  async function login(): Promise<LoginResult> {
    if (method === 'userpass')
      return props.api.send<LoginResult>('POST', '/v1/auth/userpass/login', {
        username: value('username'),
        password: value('password'),
      });
    if (method === 'approle')
      return props.api.send<LoginResult>('POST', '/v1/auth/approle/login', {
        role_id: value('role_id'),
        secret_id: value('secret_id'),
      });
    const token = value('token').trim();
    // The pasted token is checked on its own, not through the session (a wrong one is no expiry).
    const self = await createApi(
      () => token,
      () => undefined,
    ).get<TokenSelf>('/v1/auth/token/self');
    return { token, ...self };
  }

  const submit = (e: Event) => {
    e.preventDefault();
    setBusy(true);
    login().then(
      (l) => {
        setFields({});
        props.onSignedIn(l);
      },
      (err: unknown) => {
        setError(err);
        setBusy(false);
      },
    );
  };

  return (
    <section class="signin" aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in to Coffer</h1>
      {props.notice ? (
        <p class="notice" role="status">
          {props.notice}
        </p>
      ) : null}
      {seal.data ? (
        <p class="muted">
          Vault {seal.data.initialized ? (seal.data.sealed ? 'sealed' : 'unsealed') : 'not initialized'} · key provider{' '}
          {seal.data.provider}
        </p>
      ) : null}
      <form onSubmit={submit} aria-describedby={error ? 'signin-error' : undefined}>
        <fieldset>
          <legend>Sign in with</legend>
          {METHODS.map((m) => (
            <label key={m.id} class="inline">
              <input
                type="radio"
                name="method"
                value={m.id}
                checked={method === m.id}
                onChange={() => (setMethod(m.id), setError(undefined))}
              />{' '}
              {m.label}
            </label>
          ))}
        </fieldset>
        {method === 'token' ? (
          <Field label="Token">
            <input
              type="password"
              name="token"
              autoComplete="off"
              value={value('token')}
              onInput={set('token')}
              required
            />
          </Field>
        ) : method === 'userpass' ? (
          <>
            <Field label="Username">
              <input
                name="username"
                autoComplete="username"
                value={value('username')}
                onInput={set('username')}
                required
              />
            </Field>
            <Field label="Password">
              <input
                type="password"
                name="password"
                autoComplete="current-password"
                value={value('password')}
                onInput={set('password')}
                required
              />
            </Field>
          </>
        ) : (
          <>
            <Field label="Role ID">
              <input name="role_id" autoComplete="off" value={value('role_id')} onInput={set('role_id')} required />
            </Field>
            <Field label="Secret ID">
              <input
                type="password"
                name="secret_id"
                autoComplete="off"
                value={value('secret_id')}
                onInput={set('secret_id')}
                required
              />
            </Field>
          </>
        )}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        <div id="signin-error">
          <ErrorNote error={error} />
        </div>
      </form>
    </section>
  );
}

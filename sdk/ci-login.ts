import { readFile } from 'node:fs/promises';
import type { Coffer } from './client.js';
import { CofferError } from './errors.js';
import type { LoginResult } from './wire/types.js';

/**
 * CI login helpers: each obtains the platform's identity token and logs in with a Coffer jwt
 * role. The identity token is used once and never logged.
 */

/** GitHub Actions (`permissions: id-token: write`): asks the runner for an OIDC token. */
export async function loginGithubActions(
  client: Coffer,
  options: { role: string; audience?: string; env?: NodeJS.ProcessEnv; fetch?: typeof fetch },
): Promise<LoginResult> {
  const env = options.env ?? process.env;
  const url = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!url || !bearer) {
    throw new CofferError(
      'invalid_request',
      'ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN are not set: give the job `permissions: id-token: write`',
      0,
    );
  }
  const request = new URL(url);
  request.searchParams.set('audience', options.audience ?? 'coffer');
  const res = await (options.fetch ?? fetch)(request, {
    headers: { Authorization: `Bearer ${bearer}`, Accept: 'application/json' },
    redirect: 'error',
  });
  const body = (await res.json().catch(() => undefined)) as { value?: unknown } | undefined;
  if (!res.ok || typeof body?.value !== 'string')
    throw new CofferError(
      'unauthenticated',
      `the GitHub Actions runner refused an ID token (HTTP ${res.status})`,
      res.status,
    );
  return client.loginJwt(options.role, body.value);
}

/** GitLab CI: the `id_tokens:` entry named by `tokenEnv` (e.g. COFFER_ID_TOKEN). */
export function loginGitlab(
  client: Coffer,
  options: { role: string; tokenEnv?: string | undefined; env?: NodeJS.ProcessEnv | undefined },
): Promise<LoginResult> {
  const name = options.tokenEnv ?? 'COFFER_ID_TOKEN';
  const jwt = (options.env ?? process.env)[name];
  if (!jwt)
    throw new CofferError(
      'invalid_request',
      `${name} is not set: declare it under id_tokens: in .gitlab-ci.yml with aud: coffer`,
      0,
    );
  return client.loginJwt(options.role, jwt);
}

/** Kubernetes: the projected service-account token file. */
export async function loginKubernetes(
  client: Coffer,
  options: { role: string; tokenPath?: string },
): Promise<LoginResult> {
  const path = options.tokenPath ?? '/var/run/secrets/kubernetes.io/serviceaccount/token';
  const jwt = (
    await readFile(path, 'utf8').catch(() => {
      throw new CofferError('invalid_request', `cannot read the service-account token at ${path}`, 0);
    })
  ).trim();
  return client.loginJwt(options.role, jwt);
}

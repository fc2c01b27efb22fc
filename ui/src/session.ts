import type { LoginResult, TokenSelf } from '../../sdk/wire/types.js';

/**
 * The signed-in token, in this tab's sessionStorage only: gone when the tab closes, never sent
 * by the browser on its own (no cookie), not shared with other tabs.
 */
const KEY = 'coffer.token';

export const storedToken = (): string | undefined => sessionStorage.getItem(KEY) ?? undefined;
export const storeToken = (token: string) => sessionStorage.setItem(KEY, token);
export const forgetToken = () => sessionStorage.removeItem(KEY);

/** Who is signed in, as `GET /v1/auth/token/self` or a login answers. */
export interface Identity {
  identity: string;
  groups: string[];
  policies: string[];
  expires_at: string;
}

export const identityOf = (answer: TokenSelf | LoginResult): Identity => ({
  identity: answer.identity,
  groups: answer.groups,
  policies: answer.policies,
  expires_at: answer.expires_at,
});

import type { Api } from './api.js';
import type { Identity } from './session.js';

/** What the shell hands every page: the API, the route below the page's name, who is signed in. */
export interface PageProps {
  api: Api;
  route: string[];
  identity: Identity;
}

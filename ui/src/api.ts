import * as z from 'zod/mini';

/**
 * The dashboard's one way to the server: the public HTTP API (docs/api.md), same origin, the
 * token as a bearer header on every call (never a cookie, so no request can be forged from
 * another site). Two answers concern the whole session, not the page that asked: a refused
 * token (expired or revoked) and a sealed vault; they go to `onTrouble`, which the app turns into
 * the sign-in page or the sealed banner.
 */

const errorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), request_id: z.optional(z.string()) }),
});

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type Trouble = 'expired' | 'sealed';

type Query = Record<string, string | number | undefined>;

export interface Api {
  get<T>(path: string, query?: Query): Promise<T>;
  send<T>(method: 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, query?: Query): Promise<T>;
}

export function createApi(token: () => string | undefined, onTrouble: (trouble: Trouble) => void): Api {
  async function call<T>(method: string, path: string, body: unknown, query: Query | undefined): Promise<T> {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { Accept: 'application/json' };
    const bearer = token();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
        redirect: 'error',
      });
    } catch {
      throw new ApiError(0, 'unreachable', 'the server cannot be reached');
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new ApiError(res.status, 'bad_response', `the server answered ${res.status} without JSON`);
    }
    if (!res.ok) {
      const parsed = errorBody.safeParse(json);
      const error = parsed.success
        ? parsed.data.error
        : { code: 'internal', message: `the server answered ${res.status}` };
      if (res.status === 401 && bearer) onTrouble('expired');
      if (error.code === 'sealed') onTrouble('sealed');
      throw new ApiError(res.status, error.code, error.message);
    }
    // The answer's shape is the wire contract (sdk/wire/types.ts), as the SDK trusts it too.
    return json as T;
  }
  return {
    get: (path, query) => call('GET', path, undefined, query),
    send: (method, path, body, query) => call(method, path, body, query),
  };
}

/** A secret path as a URL path: each segment encoded (segments are already [A-Za-z0-9._-]). */
/**
 * The URL of a secret's route. A `.` or `..` segment is refused: the URL parser would resolve it
 * and the request would go to another path than the one named (no valid path has one).
 */
export function secretUrl(base: string, path: string): string {
  const segments = path.split('/');
  if (segments.some((s) => s === '.' || s === '..')) throw new Error(`not a secret path: ${path}`);
  return `${base}/${segments.map(encodeURIComponent).join('/')}`;
}

export const errorText = (e: unknown) =>
  e instanceof ApiError ? e.message : e instanceof Error ? e.message : String(e);

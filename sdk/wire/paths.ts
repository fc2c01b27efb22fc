/**
 * The secret path rule (docs/api.md "Conventions"), once for the server (server/paths.ts wraps
 * it with its errors and the raw-URL parser) and the SDK (which refuses a path before sending).
 * 1 to 16 segments joined by '/', each matching SEGMENT, at most 512 characters in all, not in
 * a reserved namespace. Nothing is normalised: an input that is not already canonical is
 * refused, so authorisation and storage always see the same string.
 */
export const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const MAX_SEGMENTS = 16;
export const MAX_PATH_LENGTH = 512;

/**
 * First segments that name capability paths, not secrets: `sys/...` guards the admin routes and
 * `transit/<key>` the data-key API. No secret may live there (in any letter case), and only a
 * policy rule that names them literally reaches them (server/auth/policy.ts), so a broad secret
 * grant such as `**: read` never becomes transit decrypt or an admin right.
 */
export const RESERVED_NAMESPACES: ReadonlySet<string> = new Set(['sys', 'transit']);

/** The first segment of a path. */
export const namespaceOf = (path: string): string => path.slice(0, (path.indexOf('/') + 1 || path.length + 1) - 1);

/** Whether the path's first segment is a reserved namespace (in any letter case). */
export const isReservedPath = (path: string): boolean => RESERVED_NAMESPACES.has(namespaceOf(path).toLowerCase());

/** Why `path` is not a secret path: `invalid` (shape), `reserved` (namespace), or undefined when it is one. */
export function pathProblem(path: unknown): 'invalid' | 'reserved' | undefined {
  if (typeof path !== 'string' || path.length === 0 || path.length > MAX_PATH_LENGTH) return 'invalid';
  const segments = path.split('/');
  if (segments.length > MAX_SEGMENTS || !segments.every((s) => SEGMENT.test(s))) return 'invalid';
  return isReservedPath(path) ? 'reserved' : undefined;
}

export function isValidPath(path: unknown): path is string {
  return pathProblem(path) === undefined;
}

/** The message of an `invalid_path` refusal; `what` names the input (`path`, `prefix`, …). Never echoes the value. */
export function pathMessage(what: string, problem: 'invalid' | 'reserved'): string {
  return problem === 'reserved'
    ? `${what} is invalid: the namespaces ${[...RESERVED_NAMESPACES].join(' and ')} are reserved for system and transit capabilities`
    : `${what} is invalid: use 1 to ${MAX_SEGMENTS} segments of [A-Za-z0-9._-] separated by '/', each starting with a letter or digit, ${MAX_PATH_LENGTH} characters at most`;
}

import { CofferError } from './errors.js';

/**
 * Secret paths (docs/api.md "Conventions"): 1 to 16 segments joined by '/', each matching SEGMENT, at most 512
 * characters in all. Nothing is normalised: an input that is not already canonical is refused,
 * so authorisation and storage always see the same string.
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

const isReserved = (path: string) => RESERVED_NAMESPACES.has(path.slice(0, (path.indexOf('/') + 1 || path.length + 1) - 1).toLowerCase());

export function isValidPath(path: unknown): path is string {
  if (typeof path !== 'string' || path.length === 0 || path.length > MAX_PATH_LENGTH) return false;
  const segments = path.split('/');
  return segments.length <= MAX_SEGMENTS && segments.every((s) => SEGMENT.test(s)) && !isReserved(path);
}

/** Checks a path given in a JSON body or query (already decoded by the parser). */
export function checkPath(path: unknown, what = 'path'): string {
  if (!isValidPath(path)) throw typeof path === 'string' && isReserved(path) ? reservedPath(what) : invalidPath(what);
  return path;
}

/**
 * Parses the raw (still percent-encoded) path of a URL. Each '/'-separated raw segment is
 * decoded exactly once and must then be a valid segment, so an encoded separator, an encoded
 * dot segment or a double encoding never becomes part of a path.
 */
export function parseUrlPath(raw: string): string {
  if (raw.length === 0 || raw.length > MAX_PATH_LENGTH * 3) throw invalidPath('path');
  const segments = raw.split('/');
  if (segments.length > MAX_SEGMENTS) throw invalidPath('path');
  const decoded = segments.map((s) => {
    let d: string;
    try {
      d = decodeURIComponent(s);
    } catch {
      throw invalidPath('path');
    }
    if (!SEGMENT.test(d)) throw invalidPath('path');
    return d;
  });
  return checkPath(decoded.join('/'));
}

export const namespaceOf = (path: string): string => path.slice(0, (path.indexOf('/') + 1 || path.length + 1) - 1);

const reservedPath = (what: string) =>
  new CofferError('invalid_path', `${what} is invalid: the namespaces ${[...RESERVED_NAMESPACES].join(' and ')} are reserved for system and transit capabilities`);

const invalidPath = (what: string) =>
  new CofferError(
    'invalid_path',
    `${what} is invalid: use 1 to ${MAX_SEGMENTS} segments of [A-Za-z0-9._-] separated by '/', each starting with a letter or digit, ${MAX_PATH_LENGTH} characters at most`,
  );

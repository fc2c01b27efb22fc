import { CofferError } from './errors.js';
import { MAX_PATH_LENGTH, MAX_SEGMENTS, SEGMENT, pathMessage, pathProblem } from '../sdk/wire/paths.js';

// The rule itself is sdk/wire/paths.ts, shared with the SDK (which refuses a bad path before sending it).
export {
  MAX_PATH_LENGTH,
  MAX_SEGMENTS,
  RESERVED_NAMESPACES,
  SEGMENT,
  isValidPath,
  namespaceOf,
} from '../sdk/wire/paths.js';

/** Checks a path given in a JSON body or query (already decoded by the parser). */
export function checkPath(path: unknown, what = 'path'): string {
  const problem = pathProblem(path);
  if (problem) throw new CofferError('invalid_path', pathMessage(what, problem));
  return path as string;
}

/**
 * Parses the raw (still percent-encoded) path of a URL. Each '/'-separated raw segment is
 * decoded exactly once and must then be a valid segment, so an encoded separator, an encoded
 * dot segment or a double encoding never becomes part of a path.
 */
export function parseUrlPath(raw: string): string {
  const invalid = () => new CofferError('invalid_path', pathMessage('path', 'invalid'));
  // Stryker disable next-line ConditionalExpression,LogicalOperator,EqualityOperator: equivalent (docs/testing.md): the checks below refuse every such path too; this bound only makes the refusal cheap
  if (raw.length === 0 || raw.length > MAX_PATH_LENGTH * 3) throw invalid();
  const segments = raw.split('/');
  // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent (docs/testing.md): checkPath refuses 17 segments after decoding; this only avoids decoding them
  if (segments.length > MAX_SEGMENTS) throw invalid();
  const decoded = segments.map((s) => {
    let d: string;
    try {
      d = decodeURIComponent(s);
    } catch {
      throw invalid();
    }
    if (!SEGMENT.test(d)) throw invalid();
    return d;
  });
  return checkPath(decoded.join('/'));
}

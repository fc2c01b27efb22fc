import { CofferError } from './errors.js';

export const MAX_DEPTH = 32;
export const MAX_ENTRIES = 10_000;

const bad = (why: string) => new CofferError('invalid_request', `request body is not acceptable JSON: ${why}`);

/**
 * JSON.parse with the checks it lacks: nesting depth, entry count (`maxEntries`), duplicate keys (in any
 * escape spelling) and lone surrogates are refused. One linear pre-scan finds depth, count and
 * keys; JSON.parse then builds the value from the same bytes, so both see one document.
 */
export function parseStrictJson(text: string, maxEntries = MAX_ENTRIES): unknown {
  scan(text, maxEntries);
  let value: unknown;
  try {
    // A lone surrogate can only come from the text itself or from a \uD800-\uDFFF escape: with
    // neither, no string can be ill-formed and the per-value check is skipped (it doubles the parse).
    if (text.isWellFormed() && !SURROGATE_ESCAPE.test(text)) return JSON.parse(text) as unknown;
    value = JSON.parse(text, (key, v: unknown) => {
      if (!key.isWellFormed() || (typeof v === 'string' && !v.isWellFormed())) throw bad('invalid Unicode');
      return v;
    });
  } catch (e) {
    if (e instanceof CofferError) throw e;
    throw bad('malformed');
  }
  return value;
}

/** A \u escape of a UTF-16 surrogate (JSON's escapes are lower-case `u`; the hex digits are not). */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

function scan(text: string, maxEntries: number): void {
  // Per open container: a Set of keys for objects, null for arrays.
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  let entries = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      i = closingQuote(text, i);
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        let key: string;
        try {
          key = JSON.parse(text.slice(start, i + 1)) as string;
        } catch {
          throw bad('malformed');
        }
        if (top.has(key)) throw bad('duplicate key');
        // JSON.parse keeps "__proto__" as an own key, but any later copy into a plain object
        // (schemas, spreads) would set a prototype or drop it silently: refuse it outright.
        if (key === '__proto__') throw bad('reserved key "__proto__"');
        top.add(key);
        expectKey = false;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= MAX_DEPTH) throw bad(`nesting deeper than ${MAX_DEPTH}`);
      stack.push(c === 0x7b ? new Set() : null);
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      if (++entries > maxEntries) throw bad(`more than ${maxEntries} entries`);
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
}

/**
 * The index of the quote that closes the string opened at `open`: the next quote not escaped,
 * that is not preceded by an odd run of backslashes. indexOf finds candidates at native speed;
 * a 1 KiB value costs a few of them instead of a JavaScript step per character (3 us a body).
 */
function closingQuote(text: string, open: number): number {
  for (let at = open; ;) {
    at = text.indexOf('"', at + 1);
    if (at === -1) throw bad('malformed');
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === 0x5c /* \ */) backslashes++;
    if (backslashes % 2 === 0) return at;
  }
}

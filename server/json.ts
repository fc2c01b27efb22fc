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

function scan(text: string, maxEntries: number): void {
  // Per open container: a Set of keys for objects, null for arrays.
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  let entries = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
      if (i >= text.length) throw bad('malformed');
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

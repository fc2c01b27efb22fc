/**
 * The glob dialect of bound claims: `*` matches any run of characters except '/', `**` any run
 * at all; every other character is literal (so `?`, `[`, `{a,b}` and `!(x)` in a pattern or a
 * claim value mean themselves). Matching is exact and case-sensitive, over the whole value.
 */
export function globToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        source += '.*';
        i++;
      } else {
        source += '[^/]*';
      }
    } else {
      source += c.replace(/[\\^$.|?+()[\]{}]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`, 's');
}

export const globMatch = (pattern: string, value: string): boolean => globToRegExp(pattern).test(value);

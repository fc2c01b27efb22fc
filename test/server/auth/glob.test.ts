import assert from 'node:assert/strict';
import fc from 'fast-check';
import { globMatch, globToRegExp } from '../../../server/auth/glob.js';

/**
 * The glob dialect of JWT bound claims (server/auth/glob.ts, SECURITY-CASES A17 and invariant 6):
 * `*` is any run without '/', `**` any run at all, everything else literal; the whole value is
 * matched, case-sensitively. Checked case by case and against a reference matcher written here
 * without regular expressions.
 */

/** Reference: backtracking over the pattern, no RegExp. */
function reference(pattern: string, value: string): boolean {
  const go = (p: number, v: number): boolean => {
    if (p === pattern.length) return v === value.length;
    if (pattern[p] === '*' && pattern[p + 1] === '*') {
      for (let end = v; end <= value.length; end++) if (go(p + 2, end)) return true;
      return false;
    }
    if (pattern[p] === '*') {
      for (let end = v; end <= value.length; end++) {
        if (go(p + 1, end)) return true;
        if (value[end] === '/') return false;
      }
      return false;
    }
    return v < value.length && pattern[p] === value[v] && go(p + 1, v + 1);
  };
  return go(0, 0);
}

describe('glob bound claims: * and **', () => {
  it('`*` matches any run of characters within one path part, the empty run included', () => {
    assert.equal(globMatch('acme/*', 'acme/api'), true);
    assert.equal(globMatch('acme/*', 'acme/'), true);
    assert.equal(globMatch('acme/*', 'acme/a/b'), false);
    assert.equal(globMatch('*/api', 'acme/api'), true);
    assert.equal(globMatch('*/api', 'a/b/api'), false);
    assert.equal(globMatch('a*c', 'abbbc'), true);
    assert.equal(globMatch('a*c', 'ab/c'), false);
  });

  it('`**` matches any run at all, across path parts, the empty run included', () => {
    assert.equal(globMatch('refs/heads/**', 'refs/heads/release/1.2/x'), true);
    assert.equal(globMatch('refs/heads/**', 'refs/heads/'), true);
    assert.equal(globMatch('refs/heads/**', 'refs/heads'), false);
    assert.equal(globMatch('**/main', 'refs/heads/main'), true);
    assert.equal(globMatch('**/main', 'refs/heads/main2'), false);
    assert.equal(globMatch('a**b', 'a/x/y/b'), true);
    assert.equal(globMatch('**', ''), true);
    assert.equal(globMatch('**', 'anything/at/all'), true);
  });

  it('`**` and `*` match line breaks and every other character but what is documented', () => {
    assert.equal(globMatch('a/**', 'a/x\ny'), true);
    assert.equal(globMatch('a/**', 'a/x\r\n\u2028y'), true);
    assert.equal(globMatch('a*', 'a\nb'), true);
    assert.equal(globMatch('a*', 'a\n/b'), false);
  });

  it('`***` is `**` then `*`: it still crosses path parts', () => {
    assert.equal(globMatch('a***', 'a/b/c'), true);
    assert.equal(globMatch('***b', 'a/b'), true);
  });

  it('matches the whole value, never a part of it', () => {
    assert.equal(globMatch('api', 'acme/api'), false);
    assert.equal(globMatch('acme', 'acme/api'), false);
    assert.equal(globMatch('acme/*', 'x/acme/api'), false);
    assert.equal(globMatch('a/**', 'b/a/x'), false);
    assert.equal(globMatch('', ''), true);
    assert.equal(globMatch('', 'x'), false);
  });

  it('is case-sensitive and byte-exact', () => {
    assert.equal(globMatch('acme/*', 'ACME/api'), false);
    assert.equal(globMatch('acme/*', 'acm\u00e9/api'), false);
    assert.equal(globMatch('caf\u00e9', 'cafe\u0301'), false);
  });

  it('treats every other character literally: ? [ ] { } ( ) ! + . ^ $ | \\', () => {
    const literals: [string, string, string][] = [
      ['prod?', 'prod?', 'prod1'],
      ['prod[1-9]', 'prod[1-9]', 'prod1'],
      ['{a,b}', '{a,b}', 'a'],
      ['!(x)', '!(x)', 'y'],
      ['(a|b)', '(a|b)', 'a'],
      ['a+', 'a+', 'aa'],
      ['a.c', 'a.c', 'abc'],
      ['^a$', '^a$', 'a'],
      ['a|b', 'a|b', 'a'],
      ['a\\d', 'a\\d', 'a1'],
      ['a\\', 'a\\', 'a'],
      ['x{2}', 'x{2}', 'xx'],
      ['[', '[', 'x'],
      [']', ']', 'x'],
      ['a)', 'a)', 'a'],
      ['a}', 'a}', 'a'],
    ];
    for (const [pattern, same, other] of literals) {
      assert.equal(globMatch(pattern, same), true, `${pattern} matches itself`);
      assert.equal(globMatch(pattern, other), false, `${pattern} does not match ${other}`);
      assert.doesNotThrow(() => globToRegExp(pattern), pattern);
    }
  });

  it('agrees with a reference matcher on generated patterns and values (invariant 6)', () => {
    const alphabet = fc.constantFrom('a', 'b', '/', '*', '.', '?', '[', ']', '\\', '\n', '(', '|');
    const text = fc.array(alphabet, { maxLength: 10 }).map((c) => c.join(''));
    fc.assert(
      fc.property(
        text,
        fc
          .array(fc.constantFrom('a', 'b', '/', '.', '?', '[', '\\', '\n', '*', '|'), { maxLength: 10 })
          .map((c) => c.join('')),
        (pattern, value) => {
          assert.equal(
            globMatch(pattern, value),
            reference(pattern, value),
            `${JSON.stringify(pattern)} ~ ${JSON.stringify(value)}`,
          );
        },
      ),
      { numRuns: 3000 },
    );
    // Values built from the pattern, so that matches are common too.
    fc.assert(
      fc.property(text, fc.array(fc.constantFrom('', 'a', 'b/', '/', 'x\n'), { maxLength: 6 }), (pattern, fills) => {
        let i = 0;
        const value = pattern.replace(/\*+/g, () => fills[i++ % Math.max(fills.length, 1)] ?? '');
        assert.equal(
          globMatch(pattern, value),
          reference(pattern, value),
          `${JSON.stringify(pattern)} ~ ${JSON.stringify(value)}`,
        );
      }),
      { numRuns: 3000 },
    );
  });
});

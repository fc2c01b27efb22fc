import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CAPABILITIES, type Capability } from '../../../server/auth/access.js';
import { PolicySet, checkPattern, compileRules, type Policy, type Rule } from '../../../server/auth/policy.js';
import { CofferError } from '../../../server/errors.js';

/**
 * Unit and property tests of path policies (DESIGN.md "Access", SECURITY-CASES C2, C14 and
 * invariant 4): pattern checking at write time, segment matching, deny precedence, the union
 * of grants, `mayReachBelow` for listing, and a differential test against a reference
 * evaluator written independently here (regular expressions over the path string).
 */

const one = (path: string, capabilities: Capability[] = ['read']) =>
  new PolicySet([{ name: 'p', rules: [{ path, capabilities }] }]);
const rules = (...r: Rule[]) => new PolicySet([{ name: 'p', rules: r }]);
const GRANTS = CAPABILITIES.filter((c) => c !== 'deny');

function assertRefused(pattern: unknown): void {
  assert.throws(
    () => checkPattern(pattern),
    (e: unknown) => e instanceof CofferError && e.code === 'invalid_request' && e.status === 400,
    `pattern ${JSON.stringify(pattern)} was accepted`,
  );
}

describe('policy patterns: one-segment `*`', () => {
  const p = one('app/*');

  it('`app/*` allows exactly one further segment: app/x', () => {
    assert.equal(p.allows('read', 'app/x'), true);
    assert.equal(p.allows('read', 'app/X.y-z_1'), true);
  });

  it('`app/*` matches by segment, never by string prefix: application/x and app2/x are denied', () => {
    assert.equal(p.allows('read', 'application/x'), false);
    assert.equal(p.allows('read', 'app2/x'), false);
    assert.equal(p.allows('read', 'ap/x'), false);
    assert.equal(p.allows('read', 'xapp/x'), false);
  });

  it('`app/*` does not match `app` itself (C2: the bare parent is outside the pattern)', () => {
    assert.equal(p.allows('read', 'app'), false);
  });

  it('`app/*` does not cross a separator: app/x/y is denied', () => {
    assert.equal(p.allows('read', 'app/x/y'), false);
    assert.equal(p.allows('read', 'app/x/y/z'), false);
  });

  it('`*` in the middle matches one segment there: `*/db` allows a/db, not a/b/db or db', () => {
    const mid = one('*/db');
    assert.equal(mid.allows('read', 'a/db'), true);
    assert.equal(mid.allows('read', 'zz/db'), true);
    assert.equal(mid.allows('read', 'a/b/db'), false);
    assert.equal(mid.allows('read', 'db'), false);
    assert.equal(mid.allows('read', 'a/dbx'), false);
  });

  it('a lone `*` matches every one-segment path and nothing deeper', () => {
    assert.equal(one('*').allows('read', 'anything'), true);
    assert.equal(one('*').allows('read', 'a/b'), false);
  });

  it('literal segments match case-sensitively and byte for byte', () => {
    const lit = one('App/Db');
    assert.equal(lit.allows('read', 'App/Db'), true);
    assert.equal(lit.allows('read', 'app/db'), false);
    assert.equal(lit.allows('read', 'APP/DB'), false);
    assert.equal(lit.allows('read', 'App/Db2'), false);
  });

  it('a dot in a literal segment is a literal dot, not a regular-expression wildcard', () => {
    const dot = one('a.b/x');
    assert.equal(dot.allows('read', 'a.b/x'), true);
    assert.equal(dot.allows('read', 'aXb/x'), false);
  });
});

describe('policy patterns: trailing `**`', () => {
  const p = one('app/**');

  it('`app/**` allows any depth below app: app/x, app/x/y, app/x/y/z', () => {
    for (const path of ['app/x', 'app/x/y', 'app/x/y/z', 'app/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o'])
      assert.equal(p.allows('read', path), true, path);
  });

  it('`app/**` also matches `app` itself, because `**` is zero or more further segments', () => {
    assert.equal(p.allows('read', 'app'), true);
  });

  it('`app/**` still matches by segment: application, application/x and app2/x are denied', () => {
    for (const path of ['application', 'application/x', 'app2/x', 'ap', 'x/app/y'])
      assert.equal(p.allows('read', path), false, path);
  });

  it('a lone `**` matches every path', () => {
    const all = one('**');
    for (const path of ['a', 'a/b', 'a/b/c/d']) assert.equal(all.allows('read', path), true, path);
  });

  it('`*/**` matches every path of one segment or more, like `**`', () => {
    const p2 = one('*/**');
    for (const path of ['a', 'a/b', 'a/b/c']) assert.equal(p2.allows('read', path), true, path);
  });

  it('`a/*/**` needs at least two segments under a', () => {
    const p2 = one('a/*/**');
    assert.equal(p2.allows('read', 'a'), false);
    assert.equal(p2.allows('read', 'a/b'), true);
    assert.equal(p2.allows('read', 'a/b/c/d'), true);
    assert.equal(p2.allows('read', 'b/b'), false);
  });
});

describe('policy capabilities: deny wins, grants add up (C14)', () => {
  it('grants only the capabilities named: read does not imply list, update, create, delete, destroy or admin', () => {
    const p = one('app/x', ['read']);
    assert.equal(p.allows('read', 'app/x'), true);
    for (const c of GRANTS.filter((c) => c !== 'read')) assert.equal(p.allows(c, 'app/x'), false, c);
  });

  it('an empty policy set grants nothing anywhere', () => {
    const none = new PolicySet([]);
    for (const c of CAPABILITIES) assert.equal(none.allows(c, 'app/x'), false, c);
    assert.equal(none.mayReachBelow('list', ''), false);
  });

  it('`deny secret/app/admin/*` with `read secret/app/**` denies below admin, in either rule order', () => {
    const read: Rule = { path: 'secret/app/**', capabilities: ['read', 'list'] };
    const deny: Rule = { path: 'secret/app/admin/*', capabilities: ['deny'] };
    for (const set of [rules(read, deny), rules(deny, read)]) {
      assert.equal(set.allows('read', 'secret/app/admin/db'), false);
      assert.equal(set.allows('list', 'secret/app/admin/db'), false);
      assert.equal(set.allows('read', 'secret/app/x'), true);
      // The deny pattern names exactly one segment below admin: admin itself and deeper paths stay granted.
      assert.equal(set.allows('read', 'secret/app/admin'), true);
      assert.equal(set.allows('read', 'secret/app/admin/db/x'), true);
    }
  });

  it('`deny secret/app/admin/*` with `read secret/app/*` leaves `secret/app/admin` readable and denies below it', () => {
    const set = rules(
      { path: 'secret/app/*', capabilities: ['read'] },
      { path: 'secret/app/admin/*', capabilities: ['deny'] },
    );
    assert.equal(set.allows('read', 'secret/app/admin'), true);
    assert.equal(set.allows('read', 'secret/app/admin/x'), false);
  });

  it('an explicit deny in one attached policy wins over grants in any other, in every order of policies', () => {
    const a: Policy = { name: 'a', rules: [{ path: 'app/**', capabilities: [...GRANTS] }] };
    const b: Policy = { name: 'b', rules: [{ path: 'app/secret', capabilities: ['deny'] }] };
    const c: Policy = { name: 'c', rules: [{ path: 'app/*', capabilities: ['read', 'update'] }] };
    for (const order of [
      [a, b, c],
      [a, c, b],
      [b, a, c],
      [b, c, a],
      [c, a, b],
      [c, b, a],
    ]) {
      const set = new PolicySet(order);
      for (const cap of GRANTS)
        assert.equal(set.allows(cap, 'app/secret'), false, `${cap} with ${order.map((p) => p.name)}`);
      assert.equal(set.allows('update', 'app/other'), true);
    }
  });

  it('a rule that lists deny together with grants still denies', () => {
    const set = rules(
      { path: 'app/x', capabilities: ['read', 'deny', 'update'] },
      { path: 'app/*', capabilities: ['read'] },
    );
    assert.equal(set.allows('read', 'app/x'), false);
    assert.equal(set.allows('update', 'app/x'), false);
    assert.equal(set.allows('read', 'app/y'), true);
  });

  it('a deny rule matching a different path does not affect its neighbours', () => {
    const set = rules({ path: 'app/*', capabilities: ['read'] }, { path: 'app/x/y', capabilities: ['deny'] });
    assert.equal(set.allows('read', 'app/x'), true);
  });

  it('two policies, one read and one update, grant the union on the paths both match', () => {
    const set = new PolicySet([
      { name: 'readers', rules: [{ path: 'ci/*', capabilities: ['read'] }] },
      { name: 'writers', rules: [{ path: 'ci/**', capabilities: ['update'] }] },
    ]);
    assert.equal(set.allows('read', 'ci/x'), true);
    assert.equal(set.allows('update', 'ci/x'), true);
    assert.equal(set.allows('read', 'ci/x/y'), false, 'read covers one segment only');
    assert.equal(set.allows('update', 'ci/x/y'), true);
    assert.equal(set.allows('delete', 'ci/x'), false);
  });

  it('grants of several rules in one policy add up on a path they all match', () => {
    const set = rules(
      { path: 'a/*', capabilities: ['read'] },
      { path: 'a/b', capabilities: ['list'] },
      { path: 'a/**', capabilities: ['create'] },
    );
    assert.equal(set.allows('read', 'a/b'), true);
    assert.equal(set.allows('list', 'a/b'), true);
    assert.equal(set.allows('create', 'a/b'), true);
    assert.equal(set.allows('list', 'a/c'), false);
  });

  it('allows("deny", path) is never true, whatever the rules', () => {
    const set = rules({ path: '**', capabilities: [...CAPABILITIES] }, { path: 'a', capabilities: ['deny'] });
    assert.equal(set.allows('deny', 'a'), false);
    assert.equal(set.allows('deny', 'b'), false);
  });
});

describe('policy patterns are checked when written', () => {
  it('refuses dot segments and empty segments: `..`, `.`, `a/../b`, `a/./b`, `a//b`, `/a`, `a/`', () => {
    for (const bad of ['..', '.', 'a/../b', 'a/./b', 'a//b', '/a', 'a/', '//', 'a/..']) assertRefused(bad);
  });

  it('refuses `**` anywhere but last: `**/a`, `a/**/b`, `**/**`', () => {
    for (const bad of ['**/a', 'a/**/b', '**/**', 'a/**/**']) assertRefused(bad);
  });

  it('refuses partial wildcards: `a*`, `*x`, `a*b`, `***`, `a**`, `**a`', () => {
    for (const bad of ['a*', '*x', 'a*b', '***', 'a**', '**a', 'app/a*', 'app/*x']) assertRefused(bad);
  });

  it('refuses other glob and regular-expression syntax: `?`, `[a-z]`, `{a,b}`, `+`, `.*`', () => {
    for (const bad of ['a?', '[a-z]', '{a,b}', 'a+', '.*', 'a/.*', '!(x)']) assertRefused(bad);
  });

  it('refuses empty and non-string patterns', () => {
    for (const bad of ['', undefined, null, 12, ['a'], { path: 'a' }]) {
      assertRefused(bad);
      assert.throws(
        () => checkPattern(bad),
        (e: unknown) => e instanceof CofferError && e.message === 'rule path must be a pattern of 1 to 512 characters',
        String(bad),
      );
    }
  });

  it('refuses percent-encoding: `%2e`, `%2e%2e`, `a/%2e%2e/b`, `a%2Fb`', () => {
    for (const bad of ['%2e', '%2e%2e', 'a/%2e%2e/b', 'a%2Fb', '%2E', 'a%00']) assertRefused(bad);
  });

  it('refuses unicode, whitespace, control characters and backslashes', () => {
    for (const bad of [
      'caf\u00e9',
      'cafe\u0301',
      '\uff41pp',
      'app\u200b',
      '\u0455ecret',
      'a\u2215b',
      'a b',
      ' a',
      'a\t',
      'a\nb',
      'a\u0000',
      'a\\b',
    ])
      assertRefused(bad);
  });

  it('refuses segments starting with a dot, dash or underscore (not path segments)', () => {
    for (const bad of ['.a', '-a', '_a', 'a/.hidden']) assertRefused(bad);
  });

  it('refuses patterns longer than 512 characters or with more than 17 segments', () => {
    assertRefused('a'.repeat(513));
    assertRefused(Array(18).fill('a').join('/'));
    assert.throws(
      () => checkPattern(Array(18).fill('a').join('/')),
      (e: unknown) =>
        e instanceof CofferError && e.message === `rule path ${Array(18).fill('a').join('/')}: too many segments`,
    );
    assert.throws(
      () => checkPattern('a/b?/c'),
      (e: unknown) =>
        e instanceof CofferError &&
        e.message === "rule path a/b?/c: segment 2 must be a name of [A-Za-z0-9._-], '*' (one segment) or a final '**'",
    );
    assert.equal(checkPattern(`${Array(16).fill('a').join('/')}/**`), `${Array(16).fill('a').join('/')}/**`);
  });

  it('accepts a valid pattern of exactly 512 characters and refuses one of 513 for its length alone', () => {
    const of = (last: number) => ['a'.repeat(128), 'b'.repeat(128), 'c'.repeat(128), 'd'.repeat(last)].join('/');
    assert.equal(of(125).length, 512);
    assert.equal(checkPattern(of(125)), of(125));
    assert.equal(of(126).length, 513);
    assert.throws(
      () => checkPattern(of(126)),
      (e: unknown) => e instanceof CofferError && e.code === 'invalid_request' && /1 to 512 characters/.test(e.message),
    );
    const wild = ['*', ...Array(15).fill('x'.repeat(31)), '**'].join('/');
    assert.ok(wild.length < 512 && wild.split('/').length === 17);
    assert.equal(checkPattern(wild), wild, '17 segments, the last `**`');
  });

  it('accepts literal, `*` and final `**` patterns and returns them unchanged', () => {
    for (const good of ['a', 'a/*', 'a/**', '*/b', '*', '**', '*/**', 'a/*/b/**', 'A.b-c_d/x9', 'a..b'])
      assert.equal(checkPattern(good), good);
  });

  it('compileRules refuses a bad pattern anywhere in the list, so a policy is refused whole', () => {
    assert.throws(
      () =>
        compileRules([
          { path: 'ok/*', capabilities: ['read'] },
          { path: 'bad//x', capabilities: ['read'] },
        ]),
      CofferError,
    );
    assert.throws(
      () => new PolicySet([{ name: 'p', rules: [{ path: 'a/**/b', capabilities: ['read'] }] }]),
      CofferError,
    );
  });

  it('compileRules splits the pattern into segments, a trailing flag and a deny flag', () => {
    const [tail, literal, deny] = compileRules([
      { path: 'a/*/**', capabilities: ['read', 'list'] },
      { path: 'a/b', capabilities: ['update'] },
      { path: 'x', capabilities: ['deny'] },
    ]);
    assert.deepEqual(tail!.segments, ['a', '*']);
    assert.equal(tail!.trailing, true);
    assert.equal(tail!.deny, false);
    assert.notEqual(tail!.grants, 0);
    assert.deepEqual(literal!.segments, ['a', 'b']);
    assert.equal(literal!.trailing, false);
    assert.equal(deny!.deny, true);
    assert.deepEqual(compileRules([{ path: '**', capabilities: ['read'] }])[0]!.segments, []);
  });
});

describe('policy: the reserved namespaces sys and transit', () => {
  it('a wildcard grant never reaches sys/ or transit/: `**`, `*/**`, `*/x` and `*` grant nothing there', () => {
    const cases: [string, string, string][] = [
      ['**', 'sys/seal', 'app/seal'],
      ['**', 'transit/k', 'app/k'],
      ['**', 'sys', 'app'],
      ['*/**', 'sys/policies/x', 'app/policies/x'],
      ['*/seal', 'sys/seal', 'app/seal'],
      ['*/k', 'transit/k', 'app/k'],
      ['*', 'transit', 'app'],
    ];
    for (const [pattern, reserved, control] of cases) {
      const p = one(pattern, ['read', 'update', 'admin']);
      for (const c of ['read', 'update', 'admin'] as const)
        assert.equal(p.allows(c, reserved), false, `${pattern} grants ${c} on ${reserved}`);
      assert.equal(p.allows('read', control), true, `${pattern} grants read on ${control}`);
    }
  });

  it('a rule that names sys or transit literally grants there, and a wildcard deny still denies there', () => {
    assert.equal(one('sys/**', ['admin']).allows('admin', 'sys/policies/x'), true);
    assert.equal(one('transit/*', ['read']).allows('read', 'transit/k'), true);
    assert.equal(one('sys/seal', ['update']).allows('update', 'sys/seal'), true);
    const denied = rules({ path: 'sys/**', capabilities: ['admin'] }, { path: '**', capabilities: ['deny'] });
    assert.equal(denied.allows('admin', 'sys/policies/x'), false);
    const starDeny = rules({ path: 'transit/*', capabilities: ['read'] }, { path: '*/k', capabilities: ['deny'] });
    assert.equal(starDeny.allows('read', 'transit/k'), false);
    assert.equal(starDeny.allows('read', 'transit/j'), true);
  });

  it('mayReachBelow: a wildcard rule does not reach below sys or transit, a literal one does', () => {
    assert.equal(one('**', ['list']).mayReachBelow('list', 'sys'), false);
    assert.equal(one('*/**', ['list']).mayReachBelow('list', 'transit'), false);
    assert.equal(one('**', ['list']).mayReachBelow('list', 'app'), true);
    assert.equal(one('**', ['list']).mayReachBelow('list', ''), true);
    assert.equal(one('sys/**', ['list']).mayReachBelow('list', 'sys'), true);
    assert.equal(one('sys/**', ['list']).mayReachBelow('list', ''), true);
    assert.equal(one('transit/*', ['list']).mayReachBelow('list', 'transit'), true);
  });
});

describe('PolicySet.mayReachBelow (listing pre-check)', () => {
  it('is true at a prefix that a rule could grant at or below, false elsewhere', () => {
    const p = one('ci/api/*', ['list']);
    for (const prefix of ['', 'ci', 'ci/api', 'ci/api/db']) assert.equal(p.mayReachBelow('list', prefix), true, prefix);
    for (const prefix of ['ci/web', 'other', 'ci/api/db/x', 'cia'])
      assert.equal(p.mayReachBelow('list', prefix), false, prefix);
  });

  it('a trailing `**` reaches every prefix below its literal part', () => {
    const p = one('ci/**', ['list']);
    for (const prefix of ['', 'ci', 'ci/a', 'ci/a/b/c']) assert.equal(p.mayReachBelow('list', prefix), true, prefix);
    assert.equal(p.mayReachBelow('list', 'cd'), false);
  });

  it('considers only the capability asked for', () => {
    const p = one('ci/**', ['read']);
    assert.equal(p.mayReachBelow('list', 'ci'), false);
    assert.equal(p.mayReachBelow('read', 'ci'), true);
  });

  it('ignores deny rules: it over-approximates, and the per-key check filters', () => {
    const p = rules({ path: 'ci/**', capabilities: ['list'] }, { path: 'ci/**', capabilities: ['deny'] });
    assert.equal(p.mayReachBelow('list', 'ci'), true);
    assert.equal(p.allows('list', 'ci/x'), false);
    assert.equal(one('ci/**', ['deny']).mayReachBelow('deny', 'ci'), false);
  });
});

// --- Differential and property tests (invariant 4) ------------------------------------------------

/** Path segments that stress segment matching: shared prefixes and a regular-expression metacharacter. */
const SEGMENTS = ['a', 'ab', 'b', 'a.b', 'aXb'];
const segmentArb = fc.constantFrom(...SEGMENTS);
const pathArb = fc.array(segmentArb, { minLength: 1, maxLength: 5 }).map((s) => s.join('/'));
const patternArb = fc
  .tuple(fc.array(fc.constantFrom(...SEGMENTS, '*', '*'), { minLength: 0, maxLength: 4 }), fc.boolean())
  .filter(([s, tail]) => s.length > 0 || tail)
  .map(([s, tail]) => (tail ? [...s, '**'] : s).join('/'));
const capsArb = fc.subarray([...CAPABILITIES], { minLength: 1 });
const ruleArb: fc.Arbitrary<Rule> = fc.record({ path: patternArb, capabilities: capsArb });
const grantRuleArb: fc.Arbitrary<Rule> = fc.record({
  path: patternArb,
  capabilities: fc.subarray(GRANTS, { minLength: 1 }),
});
const denyRuleArb: fc.Arbitrary<Rule> = fc.record({
  path: patternArb,
  capabilities: fc.subarray([...CAPABILITIES], { minLength: 0 }).map((c) => [...new Set<Capability>([...c, 'deny'])]),
});
const policyArb = (rule: fc.Arbitrary<Rule> = ruleArb) =>
  fc.array(rule, { maxLength: 5 }).map((r): Policy => ({ name: 'p', rules: r }));
const policiesArb = fc.array(policyArb(), { maxLength: 4 });
const capArb = fc.constantFrom(...CAPABILITIES);

/**
 * The reference evaluator: each pattern becomes one regular expression over the whole path
 * string (`*` = `[^/]+`, a final `/**` = `(/[^/]+)*`, a lone `**` = anything), literals escaped.
 * It shares no code with the evaluator under test.
 */
function patternRegExp(pattern: string): RegExp {
  if (pattern === '**') return /^.+$/s;
  const tail = pattern.endsWith('/**');
  const body = (tail ? pattern.slice(0, -3) : pattern)
    .split('/')
    .map((s) => (s === '*' ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${body}${tail ? '(?:/[^/]+)*' : ''}$`, 's');
}

function referenceEvaluator(policies: Policy[]): (cap: Capability, path: string) => boolean {
  const compiled = policies.flatMap((p) => p.rules).map((r) => ({ re: patternRegExp(r.path), caps: r.capabilities }));
  return (cap, path) => {
    const hits = compiled.filter((r) => r.re.test(path));
    if (hits.some((r) => r.caps.includes('deny'))) return false;
    return cap !== 'deny' && hits.some((r) => r.caps.includes(cap));
  };
}

const referenceAllows = (policies: Policy[], cap: Capability, path: string): boolean =>
  referenceEvaluator(policies)(cap, path);

/** Every path over SEGMENTS with 1..maxDepth segments that starts with `prefix` (segment-wise). */
function pathsBelow(prefix: string, maxDepth: number): string[] {
  const start = prefix === '' ? [] : prefix.split('/');
  const out: string[] = [];
  const walk = (segs: string[]) => {
    if (segs.length > 0) out.push(segs.join('/'));
    if (segs.length < maxDepth) for (const s of [...SEGMENTS, 'zz']) walk([...segs, s]);
  };
  walk(start);
  return out;
}

describe('policy evaluation: differential test and monotonicity (invariant 4)', function () {
  this.timeout(30_000);

  it('the reference evaluator gives the hand-checked answers (sanity check of the oracle)', () => {
    const p = (path: string, rulePath: string) =>
      referenceAllows([{ name: 'x', rules: [{ path: rulePath, capabilities: ['read'] }] }], 'read', path);
    assert.equal(p('app/x', 'app/*'), true);
    assert.equal(p('application/x', 'app/*'), false);
    assert.equal(p('app/x/y', 'app/*'), false);
    assert.equal(p('app', 'app/**'), true);
    assert.equal(p('app/x/y', 'app/**'), true);
    assert.equal(p('aXb', 'a.b'), false);
  });

  it('agrees with the reference evaluator on random policies, capabilities and paths', () => {
    fc.assert(
      fc.property(policiesArb, capArb, pathArb, (policies, cap, path) => {
        assert.equal(
          new PolicySet(policies).allows(cap, path),
          referenceAllows(policies, cap, path),
          `${cap} ${path} ${JSON.stringify(policies)}`,
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('adding a deny rule to any policy never grants anything', () => {
    fc.assert(
      fc.property(policiesArb, denyRuleArb, fc.nat(), capArb, pathArb, (policies, deny, at, cap, path) => {
        const before = new PolicySet(policies).allows(cap, path);
        const target = policies.length === 0 ? 0 : at % policies.length;
        const changed =
          policies.length === 0
            ? [{ name: 'd', rules: [deny] }]
            : policies.map((p, i) => (i === target ? { ...p, rules: [...p.rules, deny] } : p));
        const after = new PolicySet(changed).allows(cap, path);
        assert.ok(!after || before, 'adding a deny granted access');
      }),
      { numRuns: 1000 },
    );
  });

  it('adding an allow rule (or a whole policy of allows) never revokes anything', () => {
    fc.assert(
      fc.property(
        policiesArb,
        grantRuleArb,
        policyArb(grantRuleArb),
        capArb,
        pathArb,
        (policies, grant, extra, cap, path) => {
          const before = new PolicySet(policies).allows(cap, path);
          const withRule = new PolicySet([...policies, { name: 'g', rules: [grant] }]).allows(cap, path);
          const withPolicy = new PolicySet([...policies, extra]).allows(cap, path);
          assert.ok(withRule || !before, 'adding an allow rule revoked access');
          assert.ok(withPolicy || !before, 'adding an allow-only policy revoked access');
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('removing a policy without deny rules never grants anything', () => {
    fc.assert(
      fc.property(policiesArb, policyArb(grantRuleArb), capArb, pathArb, (policies, removed, cap, path) => {
        const withIt = new PolicySet([...policies, removed]).allows(cap, path);
        const without = new PolicySet(policies).allows(cap, path);
        assert.ok(!without || withIt, 'removing a policy granted access');
      }),
      { numRuns: 1000 },
    );
  });

  it('a deny rule matching the path wins over every grant, for every capability', () => {
    fc.assert(
      fc.property(policiesArb, pathArb, capArb, fc.boolean(), (policies, path, cap, front) => {
        const deny: Policy = { name: 'deny', rules: [{ path, capabilities: ['deny'] }] };
        const set = new PolicySet(front ? [deny, ...policies] : [...policies, deny]);
        assert.equal(set.allows(cap, path), false);
      }),
      { numRuns: 500 },
    );
  });

  it('the order of rules and of policies does not change any decision', () => {
    fc.assert(
      fc.property(
        policiesArb.chain((ps) =>
          fc.tuple(fc.constant(ps), fc.shuffledSubarray(ps, { minLength: ps.length, maxLength: ps.length })),
        ),
        capArb,
        pathArb,
        ([policies, shuffled], cap, path) => {
          const reversedRules = shuffled.map((p) => ({ ...p, rules: [...p.rules].reverse() }));
          assert.equal(new PolicySet(reversedRules).allows(cap, path), new PolicySet(policies).allows(cap, path));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('mayReachBelow is sound: whenever a path at or below the prefix is allowed, it answers true', () => {
    fc.assert(
      fc.property(policiesArb, pathArb, fc.nat(), capArb, (policies, path, cut, cap) => {
        const segs = path.split('/');
        const prefix = segs.slice(0, cut % (segs.length + 1)).join('/');
        const set = new PolicySet(policies);
        if (set.allows(cap, path))
          assert.equal(set.mayReachBelow(cap, prefix), true, `${cap} ${path} allowed, prefix ${prefix}`);
      }),
      { numRuns: 1000 },
    );
  });

  it('without deny rules, mayReachBelow is exact: true iff some path at or below the prefix is allowed', () => {
    fc.assert(
      fc.property(
        fc.array(policyArb(grantRuleArb), { maxLength: 2 }),
        fc.array(segmentArb, { maxLength: 2 }),
        fc.constantFrom(...GRANTS),
        (policies, prefixSegs, cap) => {
          const prefix = prefixSegs.join('/');
          const set = new PolicySet(policies);
          // Patterns have at most 4 literal or `*` segments and prefixes at most 2, so a witness,
          // if there is one, has at most 4 segments (`zz` stands for any segment a `*` may take).
          const reference = referenceEvaluator(policies);
          const witness = pathsBelow(prefix, 4).some((p) => reference(cap, p));
          assert.equal(set.mayReachBelow(cap, prefix), witness, `${cap} below "${prefix}" ${JSON.stringify(policies)}`);
        },
      ),
      { numRuns: 300 },
    );
  });
});

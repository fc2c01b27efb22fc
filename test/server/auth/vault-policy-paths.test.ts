import assert from 'node:assert/strict';
import type { Capability } from '../../../server/auth/access.js';
import { cofferRule } from '../../../server/auth/vault-policy-paths.js';
import { CofferError } from '../../../server/errors.js';

/** The translation of Vault paths in policy rules (docs/vault-compatibility.md "Policies"), case by case. */
describe('Vault paths in policy rules: the translation table', () => {
  const mounts = new Map([
    ['secret', ''],
    ['team', 'ci/team'],
    ['deep', 'a/b/c/d'],
  ]);
  const translate = (path: string, capabilities: Capability[]) => cofferRule({ path, capabilities }, mounts);
  const refused = (path: string, message: RegExp) =>
    assert.throws(
      () => translate(path, ['read']),
      (e: unknown) => e instanceof CofferError && e.code === 'invalid_request' && message.test(e.message),
      path,
    );

  it('maps each action and capability as the table says, and nothing more', () => {
    const cases: [string, Capability[], Capability[] | undefined][] = [
      ['secret/data/ci/*', ['read', 'create', 'update', 'delete'], ['read', 'create', 'update', 'delete']],
      ['secret/data/ci/*', ['list'], undefined],
      ['secret/data/ci/*', ['read', 'list'], ['read']],
      ['secret/data/ci/*', ['destroy'], ['destroy']],
      ['secret/data/ci/*', ['admin'], undefined],
      ['secret/metadata/ci/*', ['list'], ['list']],
      ['secret/metadata/ci/*', ['delete'], ['destroy']],
      ['secret/metadata/ci/*', ['read', 'create', 'update'], undefined],
      ['secret/metadata/ci/*', ['list', 'read', 'delete'], ['list', 'destroy']],
      ['secret/delete/ci/*', ['update'], ['delete']],
      ['secret/delete/ci/*', ['read', 'create', 'delete'], undefined],
      ['secret/undelete/ci/*', ['update'], undefined],
      ['secret/destroy/ci/*', ['update'], ['destroy']],
      ['secret/destroy/ci/*', ['create'], undefined],
    ];
    for (const [path, given, expected] of cases) {
      const rule = translate(path, given);
      assert.deepEqual(rule?.capabilities, expected, `${path} ${given.join(',')}`);
      if (rule) assert.equal(rule.path, 'ci/*');
    }
  });

  it('a deny on any action denies the Coffer path', () => {
    for (const action of ['data', 'metadata', 'delete', 'undelete', 'destroy'])
      assert.deepEqual(translate(`secret/${action}/ci/**`, ['deny']), { path: 'ci/**', capabilities: ['deny'] });
    assert.deepEqual(translate('secret/metadata/ci/*', ['list', 'deny'])?.capabilities, ['list', 'deny']);
  });

  it("puts the pattern below the mount's prefix, wildcards as Coffer's", () => {
    assert.equal(translate('team/data/app/*', ['read'])?.path, 'ci/team/app/*');
    assert.equal(translate('team/data/**', ['read'])?.path, 'ci/team/**');
    assert.equal(translate('secret/data/**', ['read'])?.path, '**');
    assert.equal(translate('secret/data/*/db', ['read'])?.path, '*/db');
  });

  it('keeps Coffer rules, sys and transit rules, and every rule of a server without KV mounts', () => {
    for (const path of ['ci/**', 'app/db', 'sys/policies/*', 'transit/data', 'sys/metadata/x']) {
      const rule = { path, capabilities: ['read'] as Capability[] };
      assert.equal(cofferRule(rule, mounts), rule, path);
    }
    const rule = { path: 'app/data/x', capabilities: ['read'] as Capability[] };
    assert.equal(cofferRule(rule, new Map()), rule);
  });

  it('reads as Coffer’s own every rule that is not <mount>/<action>/<pattern> (a namespace named like a mount, a folder named like an action)', () => {
    for (const path of [
      'kv/data/ci/*',
      'app/metadata/x',
      'ml/data/**',
      'secret/data',
      'team/destroy',
      'secret/app/*',
      'secret',
    ]) {
      const rule = { path, capabilities: ['read'] as Capability[] };
      assert.equal(cofferRule(rule, mounts), rule, path);
    }
  });

  it('refuses a Vault path onto sys or transit, or one whose pattern breaks the rule, saying why', () => {
    refused('secret/data/sys/x', /no secret in the sys or transit namespaces/);
    refused('secret/data/Transit/k', /no secret in the sys or transit namespaces/);
    refused('secret/data/ci/../x', /segment 4 must be a name/);
    // 17 segments as written; 19 below the mount's prefix a/b/c/d.
    refused(`deep/data/${Array.from({ length: 15 }, (_, i) => `s${i}`).join('/')}`, /too many segments/);
  });
});

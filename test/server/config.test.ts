import assert from 'node:assert/strict';
import { configSchema } from '../../server/config.js';

/** The server configuration's bounds (server/config.ts), checked once at start. */
describe('server config: vault_kv_mounts', () => {
  const parse = (mounts: string[]) => configSchema.safeParse({ vault_kv_mounts: mounts });

  it('takes a mount name alone or with a Coffer path prefix of up to eight segments', () => {
    for (const mount of [
      'secret',
      'kv',
      'team=ci/team',
      'a=x/y.z/w-1',
      `m=${Array(8).fill('s').join('/')}`,
      'ops=system',
    ])
      assert.ok(parse([mount]).success, mount);
  });

  it('refuses the native API names, a prefix in the sys or transit namespace, and malformed entries', () => {
    for (const mount of [
      'sys',
      'auth',
      'secrets=x',
      'kv=sys',
      'kv=sys/a',
      'kv=transit',
      'kv=transit/keys',
      'kv=',
      'Kv',
      'kv=/x',
      'kv=x/',
      'kv=x//y',
      'kv=../x',
      `m=${Array(9).fill('s').join('/')}`,
    ]) {
      const result = parse([mount]);
      assert.equal(result.success, false, mount);
      assert.match(result.error!.issues[0]!.message, /^expected MOUNT or MOUNT=PREFIX$/, mount);
    }
  });
});

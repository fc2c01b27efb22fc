import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, exportJWK } from 'jose';
import { cliFixture, type CliFixture } from './cli-fixture.js';
import { keyPair } from '../key-pairs.js';

/** Issue 18 item 3: `coffer login` prints the server's reason and the request id. */
describe('coffer login: refusals say why (issue 18)', function () {
  this.timeout(60_000);
  let f: CliFixture;
  let admin: Record<string, string>;
  const api = (method: string, path: string, body?: object) =>
    fetch(`${f.server.url}${path}`, { method, headers: admin, ...(body ? { body: JSON.stringify(body) } : {}) }).then(
      async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }),
    );
  const anon = (extra: NodeJS.ProcessEnv = {}) => ({ env: { COFFER_TOKEN: '', ...extra } });

  before(async () => {
    f = await cliFixture('coffer-login-reasons-');
    admin = { authorization: `Bearer ${f.server.rootToken}`, 'content-type': 'application/json' };
    assert.equal(
      (await api('PUT', '/v1/auth/userpass/users/alice', { password: 'correct horse battery' })).status,
      200,
    );
  });
  after(() => f.close());

  it('takes the username as a positional argument (and still as --username)', async () => {
    const positional = await f.run(
      ['login', 'userpass', 'alice', '--no-store', '--json'],
      anon({ COFFER_PASSWORD: 'correct horse battery' }),
    );
    assert.equal(positional.code, 0, positional.stderr);
    assert.equal(JSON.parse(positional.stdout).identity, 'user:alice');
    const flag = await f.run(
      ['login', 'userpass', '--username', 'alice', '--no-store', '--json'],
      anon({ COFFER_PASSWORD: 'correct horse battery' }),
    );
    assert.equal(flag.code, 0, flag.stderr);
  });

  it('prints the reason and the request id, the same for a wrong password and an unknown user', async () => {
    const wrong = await f.run(['login', 'userpass', 'alice'], anon({ COFFER_PASSWORD: 'not the password' }));
    const unknown = await f.run(['login', 'userpass', 'mallory'], anon({ COFFER_PASSWORD: 'not the password' }));
    for (const r of [wrong, unknown]) {
      assert.equal(r.code, 3);
      assert.match(r.stderr, /^coffer: login failed: username or password not valid \(request id \S+\)\n$/);
      assert.doesNotMatch(r.stderr, /run `coffer login`|not the password/);
    }
    const strip = (s: string) => s.replace(/request id \S+/, '');
    assert.equal(strip(wrong.stderr), strip(unknown.stderr));
  });

  it('reads --password-file (mode checked, newline trimmed)', async () => {
    const file = join(f.dir, 'password');
    await writeFile(file, 'correct horse battery\n', { mode: 0o644 });
    const open = await f.run(['login', 'userpass', 'alice', '--password-file', file, '--no-store'], anon());
    assert.equal(open.code, 1);
    assert.match(open.stderr, /accessible by other users \(mode 644\): run chmod 600/);
    await writeFile(file, 'correct horse battery\n', { mode: 0o600 });
    const { chmod } = await import('node:fs/promises');
    await chmod(file, 0o600);
    const ok = await f.run(['login', 'userpass', 'alice', '--password-file', file, '--no-store', '--json'], anon());
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('approle: --secret-id-file exists, and a spent secret_id says so', async () => {
    assert.equal((await api('PUT', '/v1/auth/approle/roles/builder', { secret_id_num_uses: 1 })).status, 200);
    const roleId = (await api('GET', '/v1/auth/approle/roles/builder')).body.role_id as string;
    const sid = (await api('POST', '/v1/auth/approle/roles/builder/secret-id', {})).body.secret_id as string;
    const file = join(f.dir, 'sid');
    await writeFile(file, `${sid}\n`, { mode: 0o600 });
    const first = await f.run(
      ['login', 'approle', '--role', roleId, '--secret-id-file', file, '--no-store', '--json'],
      anon(),
    );
    assert.equal(first.code, 0, first.stderr);
    const again = await f.run(['login', 'approle', '--role', roleId, '--secret-id-file', file], anon());
    assert.equal(again.code, 3);
    assert.match(again.stderr, /^coffer: login failed: secret_id already used or expired \(request id \S+\)\n$/);
    assert.ok(!again.stderr.includes(sid));
    const missing = await f.run(['login', 'approle', '--role', roleId], anon());
    assert.match(missing.stderr, /pass --secret-id-file or set COFFER_SECRET_ID/);
    const help = await f.run(['login', '--help'], anon());
    assert.match(help.stdout, /--secret-id-file/);
    assert.match(help.stdout, /--password-file/);
  });

  it('jwt: names the claim that does not match', async () => {
    const { publicKey, privateKey } = keyPair('ec', { namedCurve: 'P-256' });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    const role = await api('PUT', '/v1/auth/jwt/roles/ci', {
      issuer: 'https://idp.example',
      jwks: { keys: [jwk] },
      bound_audiences: ['coffer'],
      bound_claims: { repository: 'acme/api' },
    });
    assert.equal(role.status, 200, JSON.stringify(role.body));
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({
      iss: 'https://idp.example',
      aud: 'coffer',
      sub: 'x',
      repository: 'acme/fork',
      iat: now,
      exp: now + 300,
    })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .sign(privateKey);
    const r = await f.run(['login', 'jwt', '--role', 'ci'], anon({ COFFER_JWT: jwt }));
    assert.equal(r.code, 3);
    assert.match(r.stderr, /^coffer: login failed: claim repository does not match the role \(request id \S+\)\n$/);
    assert.ok(!r.stderr.includes('acme/fork'));
  });
});

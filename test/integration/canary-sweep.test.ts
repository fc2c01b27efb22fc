import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import request from 'supertest';
import { openVault } from '../helpers.js';

/**
 * F3: write secrets with a unique canary, read them, make error paths happen (bad bodies that
 * carry the canary, wrong passwords, bad tokens, invalid shares), then grep the audit log and
 * the application log at trace level: no canary, no password, no token.
 */
describe('canary sweep: audit and application logs never hold values, passwords or tokens', function () {
  this.timeout(30_000);

  it('finds no canary in any log after every kind of request', async () => {
    const canary = `CANARY${Date.now().toString(36)}Z`;
    let appLog = '';
    const sink = new Writable({ write: (chunk, _enc, done) => ((appLog += chunk.toString()), done()) });
    const vault = await openVault({
      log: pino({ level: 'trace' }, sink),
      loginLimits: { failuresPerMinute: 1000, userFailuresPerMinute: 1000 },
    });
    const r = () => request(vault.app);
    const tokens: string[] = [vault.rootToken];
    try {
      await r()
        .put('/v1/secrets/app/db')
        .set(vault.auth)
        .send({ data: { password: canary }, metadata: { owner: 'team' } });
      await r()
        .put('/v1/secrets/app/gen')
        .set(vault.auth)
        .send({ data: { user: 'x' }, generate: { key: 'password' } });
      const generated = (await r().get('/v1/secrets/app/gen').set(vault.auth)).body.data.password as string;
      await r().get('/v1/secrets/app/db').set(vault.auth);
      await r()
        .post('/v1/secrets:batch')
        .set(vault.auth)
        .send({ paths: ['app/db', 'app/gen'] });
      await r().get('/v1/secrets?prefix=app').set(vault.auth);
      await r().get('/v1/metadata/app/db').set(vault.auth);
      // Error paths with the canary inside the request.
      await r()
        .put('/v1/secrets/app/db')
        .set(vault.auth)
        .send({ data: { password: { nested: canary } } });
      await r()
        .put('/v1/secrets/app/db')
        .set(vault.auth)
        .send({ data: { password: canary }, unknown: canary });
      await r()
        .put('/v1/secrets/app/db')
        .set(vault.auth)
        .type('application/json')
        .send(`{"data":{"password":"${canary}"`);
      await r()
        .put('/v1/secrets/app/db')
        .set(vault.auth)
        .send({ data: { password: canary }, cas: 99 });
      await r()
        .put('/v1/secrets/app/db')
        .set(vault.auth)
        .send({ data: { [`k${canary}`]: 'v', 'bad key!': canary } });
      await r()
        .put('/v1/secrets/app/big')
        .set(vault.auth)
        .send({ data: { v: canary.repeat(6000) } });
      await r().get(`/v1/secrets/app/${canary}%2Fx`).set(vault.auth);
      await r()
        .get('/v1/secrets/app/db')
        .set({ Authorization: `Bearer ${canary}` });
      // Logins, tokens, shares.
      await r()
        .put('/v1/auth/userpass/users/alice')
        .set(vault.auth)
        .send({ password: `${canary}-password` });
      const login = await r()
        .post('/v1/auth/userpass/login')
        .send({ username: 'alice', password: `${canary}-password` });
      tokens.push(login.body.token);
      await r()
        .post('/v1/auth/userpass/login')
        .send({ username: 'alice', password: `${canary}-wrong` });
      await r().put('/v1/auth/approle/roles/builder').set(vault.auth).send({});
      const sid = (await r().post('/v1/auth/approle/roles/builder/secret-id').set(vault.auth).send({})).body
        .secret_id as string;
      const roleId = (await r().get('/v1/auth/approle/roles/builder').set(vault.auth)).body.role_id as string;
      const approle = await r().post('/v1/auth/approle/login').send({ role_id: roleId, secret_id: sid });
      tokens.push(approle.body.token);
      await r()
        .post('/v1/auth/jwt/login')
        .send({ role: 'none', jwt: `${canary}.${canary}.${canary}` });
      const created = await r().post('/v1/auth/token/create').set(vault.auth).send({ identity: 'svc:x' });
      tokens.push(created.body.token);
      await r().post('/v1/auth/token/revoke').set(vault.auth).send({ token: created.body.token });
      await r().post('/v1/sys/unseal').send({ share: canary });
      await vault.audit.close();
      const audit = await readFile(vault.auditFile, 'utf8');
      assert.ok(audit.split('\n').length > 25, 'the requests were audited');
      for (const [name, text] of [
        ['audit log', audit],
        ['application log', appLog],
      ] as const) {
        assert.equal(text.includes(canary), false, `${name} holds the canary`);
        assert.equal(text.includes(generated), false, `${name} holds a generated password`);
        assert.equal(text.includes(sid), false, `${name} holds a secret_id`);
        for (const t of tokens) {
          assert.equal(text.includes(t), false, `${name} holds a token`);
          assert.equal(text.includes(t.split('.')[2]!), false, `${name} holds a token signature`);
        }
      }
    } finally {
      await vault.cleanup();
    }
  });
});

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import request from 'supertest';
import { openVault, type TestVault } from '../../helpers.js';
import type { AuditLines } from '../../../sdk/wire/types.js';

/** `GET /v1/sys/audit/lines` (server/audit/recent.ts): filters, refusals, and the chain check that notices an edit. */
describe('GET /v1/sys/audit/lines', () => {
  let vault: TestVault;
  let reader = '';
  before(async () => {
    vault = await openVault();
    const put = async (path: string, body: object) =>
      assert.equal((await request(vault.app).put(path).set(vault.auth).send(body)).status, 200, path);
    await put('/v1/policies/apps', { rules: [{ path: 'app/**', capabilities: ['read'] }] });
    await put('/v1/secrets/app/db', { data: { password: 'audit-lines-value' } });
    await put('/v1/secrets/other/x', { data: { k: 'v' } });
    reader = (
      await request(vault.app)
        .post('/v1/auth/token/create')
        .set(vault.auth)
        .send({ identity: 'svc:reader', policies: ['apps'] })
    ).body.token;
    assert.equal(
      (await request(vault.app).get('/v1/secrets/app/db').set('Authorization', `Bearer ${reader}`)).status,
      200,
    );
    assert.equal(
      (await request(vault.app).get('/v1/secrets/other/x').set('Authorization', `Bearer ${reader}`)).status,
      403,
    );
  });
  after(() => vault.cleanup());
  const lines = async (query: string) => {
    const res = await request(vault.app).get(`/v1/sys/audit/lines${query}`).set(vault.auth);
    assert.equal(res.status, 200, res.text);
    return res.body as AuditLines;
  };

  it('answers the newest request lines first, filtered by identity, path prefix, operation and outcome', async () => {
    const all = await lines('');
    assert.ok(all.lines.length >= 6);
    assert.ok(all.lines[0]!.seq > all.lines.at(-1)!.seq, 'newest first');
    assert.equal(all.file, vault.auditFile);
    const mine = await lines('?identity=svc:reader');
    assert.deepEqual(
      mine.lines.map((l) => [l.path, l.outcome]),
      [
        ['other/x', 'denied'],
        ['app/db', 'ok'],
      ],
    );
    const denied = await lines('?identity=svc:reader&outcome=denied');
    assert.deepEqual(
      denied.lines.map((l) => l.path),
      ['other/x'],
    );
    const reads = await lines(`?operation=${encodeURIComponent('GET /v1/secrets/*path')}&path=app/`);
    assert.deepEqual(
      reads.lines.map((l) => l.identity),
      ['svc:reader'],
    );
    assert.equal((await lines('?limit=2')).lines.length, 2);
    assert.ok(!JSON.stringify(all).includes('audit-lines-value'), 'no secret value in audit lines');
  });

  it('reports the chain verified, and broken once a line of the file is edited', async () => {
    const ok = await lines('');
    assert.equal(ok.verification?.ok, true);
    assert.equal(ok.verification?.first_bad, null);
    assert.ok((ok.verification?.lines ?? 0) > 5);
    const text = await readFile(vault.auditFile, 'utf8');
    await writeFile(vault.auditFile, text.replace('"svc:reader"', '"svc:someone"'));
    const bad = await lines('?identity=svc:someone');
    assert.equal(bad.verification?.ok, false);
    assert.match(bad.verification?.first_bad?.reason ?? '', /chain broken/);
    await writeFile(
      vault.auditFile,
      (await readFile(vault.auditFile, 'utf8')).replace('"svc:someone"', '"svc:reader"'),
    ); // restored, with the lines appended since
    assert.equal((await lines('')).verification?.ok, true);
  });

  it('refuses bad filters and callers without admin on sys/audit', async () => {
    for (const query of [
      '?outcome=maybe',
      '?limit=0',
      '?limit=1001',
      '?unknown=1',
      '?identity=',
      `?path=${'a'.repeat(513)}`,
    ]) {
      const res = await request(vault.app).get(`/v1/sys/audit/lines${query}`).set(vault.auth);
      assert.equal(res.status, 400, query);
      assert.equal(res.body.error.code, 'invalid_request');
    }
    const res = await request(vault.app).get('/v1/sys/audit/lines').set('Authorization', `Bearer ${reader}`);
    assert.equal(res.status, 403);
  });
});

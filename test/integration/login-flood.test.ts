import assert from 'node:assert/strict';
import request from 'supertest';
import { openVault, type TestVault } from '../helpers.js';

describe('a login flood does not stall secret reads', function () {
  this.timeout(60_000);
  let vault: TestVault;
  before(async () => {
    vault = await openVault();
    for (const name of ['alice', 'bob', 'carol', 'dave', 'erin']) {
      assert.equal(
        (
          await request(vault.app)
            .put(`/v1/auth/userpass/users/${name}`)
            .set(vault.auth)
            .send({ password: 'correct horse battery' })
        ).status,
        200,
      );
    }
    await request(vault.app)
      .put('/v1/secrets/app/db')
      .set(vault.auth)
      .send({ data: { password: 'p' } });
  });
  after(() => vault.cleanup());

  it('keeps read latency low while 40 password hashes are in flight', async () => {
    const quiet: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      assert.equal((await request(vault.app).get('/v1/secrets/app/db').set(vault.auth)).status, 200);
      quiet.push(performance.now() - t);
    }
    const flood = Array.from({ length: 40 }, (_, i) =>
      request(vault.app)
        .post('/v1/auth/userpass/login')
        .send({ username: ['alice', 'bob', 'carol', 'dave'][i % 4], password: `wrong-${i}-password` }),
    );
    const during: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      assert.equal((await request(vault.app).get('/v1/secrets/app/db').set(vault.auth)).status, 200);
      during.push(performance.now() - t);
    }
    // A legitimate user logs in during the flood: the flooded users' budgets are theirs alone.
    const erin = request(vault.app)
      .post('/v1/auth/userpass/login')
      .send({ username: 'erin', password: 'correct horse battery' });
    const statuses = (await Promise.all(flood)).map((r) => r.status);
    // Ten guesses per user is exactly each user's failure budget: every one is checked (401);
    // 429 only if the bounded hash queue is full.
    assert.ok(
      statuses.every((s) => s === 401 || s === 429),
      `unexpected statuses ${[...new Set(statuses)]}`,
    );
    assert.equal((await erin).status, 200);
    for (const name of ['alice', 'bob', 'carol', 'dave']) {
      const locked = await request(vault.app)
        .post('/v1/auth/userpass/login')
        .send({ username: name, password: 'correct horse battery' });
      assert.equal(locked.status, 429, `${name} is out of failure budget`);
      assert.match(String(locked.headers['retry-after']), /^[1-9][0-9]?$/);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    // One scrypt is ~50-150 ms here; a read stuck behind the flood would take seconds.
    assert.ok(
      median(during) < 250,
      `median read during the flood ${median(during).toFixed(1)} ms (quiet ${median(quiet).toFixed(1)} ms)`,
    );
  });
});

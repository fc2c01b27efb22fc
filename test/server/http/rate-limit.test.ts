import assert from 'node:assert/strict';
import express from 'express';
import request from 'supertest';
import { rateLimit } from '../../../server/http/rate-limit.js';
import { openVault } from '../../helpers.js';

describe('rate limits', () => {
  it('answers 429 past the budget of a window and accepts again in the next', async () => {
    let now = 0;
    const app = express();
    app.post('/x', rateLimit({ max: 3, windowMs: 1_000, now: () => now }), (_req, res) => void res.status(204).end());
    app.use(
      (err: { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) =>
        void res.status(err.status ?? 500).end(),
    );
    for (let i = 0; i < 3; i++) assert.equal((await request(app).post('/x')).status, 204);
    const limited = await request(app).post('/x');
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['retry-after'], '1');
    now = 1_000;
    assert.equal((await request(app).post('/x')).status, 204);
  });

  it('refuses an unseal flood before reading the shares, and the flood changes nothing', async () => {
    const vault = await openVault();
    try {
      await vault.seal.seal();
      const statuses: number[] = [];
      for (let i = 0; i < 40; i++) {
        const res = await request(vault.app).post('/v1/sys/unseal').send({ share: 'AAAA' });
        statuses.push(res.status);
      }
      assert.ok(statuses.includes(429), 'the flood is limited');
      assert.equal(statuses.filter((s) => s === 400).length, 30);
      assert.equal(vault.seal.status().progress, 0);
      assert.equal(vault.seal.sealed, true);
    } finally {
      await vault.cleanup();
    }
  });
});

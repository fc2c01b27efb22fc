import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import request from 'supertest';
import { openVault, type TestVault } from '../../helpers.js';
import { UI_CSP, UI_DIR } from '../../../server/http/ui.js';

/** Serving the dashboard (server/http/ui.ts, docs/ui.md): headers, files, refusals, CSP reports. */
describe('dashboard files at /ui/', () => {
  let vault: TestVault;
  before(async () => {
    assert.ok(existsSync(join(UI_DIR, 'index.html')), 'the dashboard is built (npm run build:ui)');
    vault = await openVault();
  });
  after(() => vault.cleanup());

  it('serves the page, script and stylesheet with the strict CSP and no-framing headers', async () => {
    for (const [path, type] of [
      ['/ui/', /text\/html/],
      ['/ui/app.js', /text\/javascript/],
      ['/ui/app.css', /text\/css/],
    ] as const) {
      const res = await request(vault.app).get(path);
      assert.equal(res.status, 200, path);
      assert.match(res.headers['content-type'] ?? '', type);
      assert.equal(res.headers['content-security-policy'], UI_CSP);
      assert.equal(res.headers['x-frame-options'], 'DENY');
      assert.equal(res.headers['referrer-policy'], 'no-referrer');
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.equal(res.headers['set-cookie'], undefined);
    }
    const page = await request(vault.app).get('/ui/');
    assert.doesNotMatch(
      page.text,
      /<script>|<style>|\sstyle=|\son[a-z]+=/i,
      'no inline script, style or handler in the page',
    );
  });

  it('redirects /ui to /ui/ and serves while sealed (the page shows the seal status)', async () => {
    const res = await request(vault.app).get('/ui');
    assert.equal(res.status, 301);
    assert.equal(res.headers.location, '/ui/');
    const queried = await request(vault.app).get('/ui?from=bookmark');
    assert.equal(queried.status, 301, 'a query does not make /ui the page (its relative assets would miss)');
    assert.equal(queried.headers.location, '/ui/');
    await vault.seal.seal();
    try {
      assert.equal((await request(vault.app).get('/ui/app.js')).status, 200);
    } finally {
      for (const share of vault.shares.slice(0, 3)) await vault.seal.submitShare(share);
    }
  });

  it('refuses unknown files, traversal and other methods with the catalogue errors', async () => {
    for (const path of [
      '/ui/nope.js',
      '/ui/../package.json',
      '/ui/%2e%2e/package.json',
      '/ui/sub/app.js',
      '/ui/index.html/',
    ]) {
      const res = await request(vault.app).get(path);
      assert.ok(res.status === 404, `${path}: ${res.status}`);
      assert.equal(res.body.error?.code ?? 'not_found', 'not_found');
    }
    const post = await request(vault.app).post('/ui/app.js').send({});
    assert.equal(post.status, 405);
    assert.equal(post.body.error.code, 'method_not_allowed');
  });

  it('counts CSP reports by directive and refuses what is not one', async () => {
    const metric = async () => {
      const text = (await request(vault.app).get('/v1/sys/metrics').set(vault.auth)).text;
      return text
        .split('\n')
        .filter((l) => l.startsWith('coffer_ui_csp_reports_total{'))
        .join('\n');
    };
    const report = {
      'csp-report': {
        'document-uri': 'http://x/ui/',
        'effective-directive': 'script-src-elem',
        'violated-directive': 'script-src',
        'blocked-uri': 'inline',
        'script-sample': 'secret value',
      },
    };
    const ok = await request(vault.app)
      .post('/ui/csp-report')
      .set('Content-Type', 'application/csp-report')
      .send(JSON.stringify(report));
    assert.equal(ok.status, 204);
    assert.match(await metric(), /directive="script-src-elem"} 1/);
    const bad = [
      ['not json', 'text/plain', 'hello', 400],
      ['another shape', 'application/csp-report', JSON.stringify({ report: 1 }), 400],
      ['too large', 'application/csp-report', JSON.stringify({ 'csp-report': { x: 'a'.repeat(20_000) } }), 413],
    ] as const;
    for (const [what, type, body, status] of bad) {
      const res = await request(vault.app).post('/ui/csp-report').set('Content-Type', type).send(body);
      assert.equal(res.status, status, what);
    }
    const odd = await request(vault.app)
      .post('/ui/csp-report')
      .set('Content-Type', 'application/csp-report')
      .send(JSON.stringify({ 'csp-report': { 'effective-directive': 'Script Src <x>' } }));
    assert.equal(odd.status, 204);
    assert.match(await metric(), /directive="unknown"} 1/, 'a strange directive is not a label');
    assert.doesNotMatch(await metric(), /directive="script-src-elem"} 2/, 'refused reports count nothing');
    // Anyone may post reports: made-up directive names of the allowed shape add no series either.
    for (let i = 0; i < 50; i++) {
      const made = await request(vault.app)
        .post('/ui/csp-report')
        .set('Content-Type', 'application/csp-report')
        .send(JSON.stringify({ 'csp-report': { 'effective-directive': `made-up-${'x'.repeat(i)}` } }));
      assert.equal(made.status, 204);
    }
    const series = (await metric()).split('\n');
    assert.deepEqual(
      series.map((l) => l.replace(/} \d+$/, '}')),
      ['coffer_ui_csp_reports_total{directive="script-src-elem"}', 'coffer_ui_csp_reports_total{directive="unknown"}'],
    );
    assert.match(await metric(), /directive="unknown"} 51/);
  });

  it('writes at most one log line per ten seconds of reports, saying how many it stands for', async () => {
    const lines: { msg: string; reports?: number }[] = [];
    const logged = await openVault({
      log: pino(
        { level: 'warn' },
        { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) },
      ),
    });
    try {
      for (let i = 0; i < 30; i++) {
        const res = await request(logged.app)
          .post('/ui/csp-report')
          .set('Content-Type', 'application/csp-report')
          .send(JSON.stringify({ 'csp-report': { 'effective-directive': 'img-src' } }));
        assert.equal(res.status, 204);
      }
      const reports = lines.filter((l) => l.msg === 'dashboard content-security-policy violation');
      assert.deepEqual(
        reports.map((l) => l.reports),
        [1],
      );
    } finally {
      await logged.cleanup();
    }
  });
});

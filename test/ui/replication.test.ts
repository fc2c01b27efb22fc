import assert from 'node:assert/strict';
import { removeDir, until } from '../server/replication/cluster.js';
import { call } from '../integration/load-helpers.js';
import { startProcessPair, type ServerProcess } from '../integration/server-process.js';
import {
  assertAccessible,
  cspReports,
  launchBrowser,
  screenshot,
  signInWithToken,
  watchedPage,
  type Browser,
} from './harness.js';

// A short lease: the promotion waits out the killed primary's lease, and the test should not.
const ENV = {
  COFFER_SERVER_REPLICATION_BATCH_MS: '20',
  COFFER_SERVER_REPLICATION_LEASE_S: '3',
  COFFER_SERVER_REPLICATION_CLOCK_SKEW_MS: '200',
  COFFER_SERVER_POLL_INTERVAL: '0.1',
};

/**
 * The replication page against two real server processes (a dev primary shipping to a file
 * bucket and its replica): the replica's role, epoch and lag, then its promotion from the
 * dashboard behind a typed confirmation, after the primary is killed.
 */
describe('dashboard: replication and promotion (chromium, two server processes)', function () {
  this.timeout(120_000);
  const procs: ServerProcess[] = [];
  const dirs: string[] = [];
  let browser: Browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    for (const p of procs) await p.kill('SIGKILL');
    for (const d of dirs) await removeDir(d);
  });

  it('shows the replica following the primary, then promotes it', async () => {
    const { token, primary, replica } = await startProcessPair(ENV, procs, dirs);
    assert.equal(
      (await call(primary.url, 'PUT', '/v1/secrets/app/db', token, { data: { password: 'p' } })).status,
      200,
    );
    await until(
      async () => (await call(replica.url, 'GET', '/v1/secrets/app/db', token)).status === 200,
      30_000,
      'the replica has the write',
    );

    const tab = await watchedPage(browser);
    const { page } = tab;
    await signInWithToken(page, replica.url, token);
    await page.goto(`${replica.url}/ui/#/replication`);
    await page.locator('dd.role').getByText('replica').waitFor();
    await page.getByRole('img', { name: /Replication lag over the last 10 minutes/ }).waitFor();
    await page.getByText(/Lag in records, last 10 minutes/).waitFor();
    await assertAccessible(page, 'replication (replica)');
    await screenshot(page, 'replication');

    await primary.kill('SIGKILL');
    await page.getByRole('button', { name: 'Promote this replica' }).click();
    const dialog = page.getByRole('dialog', { name: 'Promote this replica' });
    const confirm = dialog.getByRole('button', { name: 'Promote' });
    assert.equal(await confirm.isDisabled(), true, 'nothing happens before the word is typed');
    await dialog.getByLabel('to confirm').fill('promote');
    await confirm.click();
    await page
      .getByRole('status')
      .filter({ hasText: /Promoted: epoch 2/ })
      .waitFor({ timeout: 30_000 });
    await page.locator('dd.role').getByText('primary').waitFor({ timeout: 15_000 });
    const status = await call(replica.url, 'GET', '/v1/sys/replication', token);
    assert.equal((status.body as { role: string }).role, 'primary');
    await until(
      async () => (await call(replica.url, 'PUT', '/v1/secrets/app/after', token, { data: { v: '1' } })).status === 200,
      30_000,
      'the promoted server takes writes',
    );
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await cspReports(replica.url, token), 0);
    tab.assertClean();
    await page.close();
  });
});

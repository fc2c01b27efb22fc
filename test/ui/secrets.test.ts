import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { openVault, type TestVault } from '../helpers.js';
import { UI_CSP } from '../../server/http/ui.js';
import {
  assertAccessible,
  cspReports,
  launchBrowser,
  screenshot,
  serve,
  tabTo,
  watchedPage,
  type Browser,
  type Served,
  type Watched,
} from './harness.js';

/**
 * The dashboard in Debian's chromium against a real vault on loopback (docs/ui.md): sign-in by
 * token, userpass and approle; the secret tree, reveal, create and update with check-and-set,
 * delete, undelete and destroy; hostile values; a 403 node; a token expiring and the vault
 * sealing mid-session; and not one CSP violation report over the whole file.
 */

const XSS_VALUE = '<script>alert("value")</script><img src=x onerror="alert(\'img\')">';
const PASSWORD = 'correct horse battery staple';

describe('dashboard: sign-in and secrets (chromium)', function () {
  this.timeout(60_000);
  let vault: TestVault;
  let server: Served;
  let browser: Browser;
  let offset = 0; // the token clock runs ahead by this much (the expiry test moves it)
  let roleId = '';
  const root = (method: string, path: string, body?: unknown) =>
    fetch(`${server.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${vault.rootToken}`, 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const rootJson = async (method: string, path: string, body?: unknown) => {
    const res = await root(method, path, body);
    assert.ok(res.ok, `${method} ${path}: ${res.status} ${await res.clone().text()}`);
    return res.status === 204 ? undefined : ((await res.json()) as Record<string, unknown>);
  };
  const secretId = async () =>
    String((await rootJson('POST', '/v1/auth/approle/roles/builder/secret-id', {}))?.secret_id);

  before(async () => {
    vault = await openVault({ now: () => Date.now() + offset });
    server = await serve(vault.app);
    await rootJson('PUT', '/v1/policies/team-rw', {
      rules: [{ path: 'team/**', capabilities: ['read', 'list', 'create', 'update', 'delete', 'destroy'] }],
    });
    await rootJson('PUT', '/v1/auth/userpass/users/alice', {
      password: PASSWORD,
      policies: ['team-rw'],
      token_ttl: 600,
    });
    const role = await rootJson('PUT', '/v1/auth/approle/roles/builder', { policies: ['team-rw'] });
    roleId = String(role?.role_id);
    await rootJson('PUT', '/v1/secrets/team/app/db', { data: { password: 'first' } });
    await rootJson('PUT', '/v1/secrets/other/hidden', { data: { k: 'not for alice' } });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await vault?.cleanup();
  });

  let tab: Watched;
  beforeEach(async () => {
    tab = await watchedPage(browser);
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'passed') tab.assertClean();
    await tab.page.close();
  });

  async function signInUserpass(page = tab.page) {
    await page.goto(`${server.url}/ui/`);
    await page.getByLabel('Username and password').check();
    await page.getByLabel('Username', { exact: true }).fill('alice');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Signed in as').waitFor();
  }

  it('serves the page with a strict CSP, loads fast, and the sign-in page has no serious axe violation', async () => {
    const res = await fetch(`${server.url}/ui/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-security-policy'), UI_CSP);
    assert.match(UI_CSP, /default-src 'self'/);
    assert.match(UI_CSP, /frame-ancestors 'none'/);
    assert.doesNotMatch(UI_CSP, /unsafe-inline|unsafe-eval/);
    const { page } = tab;
    await page.goto(`${server.url}/ui/`);
    await page.getByRole('heading', { name: 'Sign in to Coffer' }).waitFor();
    const loaded = async () =>
      Number(await page.evaluate("performance.getEntriesByType('navigation')[0]?.loadEventEnd ?? -1"));
    const cold = await loaded();
    await page.goto(`${server.url}/ui/`); // again, the browser warm (nothing is cached: no-store)
    await page.getByRole('heading', { name: 'Sign in to Coffer' }).waitFor();
    const warm = await loaded();
    console.log(
      `      first load over loopback: ${warm.toFixed(0)} ms (navigation start to load event; ${cold.toFixed(0)} ms in a just-started browser)`,
    );
    assert.ok(warm > 0 && cold > 0);
    await assertAccessible(page, 'sign-in');
    await screenshot(page, 'sign-in');
  });

  it('signs in with userpass and shows identity, policies and expiry, renewed by the button; a wrong password shows the error and no session', async () => {
    const { page } = tab;
    await page.goto(`${server.url}/ui/`);
    await page.getByLabel('Username and password').check();
    await page.getByLabel('Username', { exact: true }).fill('alice');
    await page.getByLabel('Password', { exact: true }).fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'unauthenticated' }).waitFor();
    assert.equal(await page.evaluate('sessionStorage.length'), 0);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const session = page.getByRole('region', { name: 'Session' });
    await session.getByText('user:alice').waitFor();
    await session.getByText('team-rw').waitFor();
    const before = await session.locator('time').getAttribute('datetime');
    offset = 60_000; // a minute later, a renewal moves the expiry by a minute
    try {
      await session.getByRole('button', { name: 'Renew' }).click();
      await session.locator(`time:not([datetime="${before}"])`).waitFor();
    } finally {
      offset = 0;
    }
    // The token is in this tab's sessionStorage and nowhere a browser sends on its own.
    assert.deepEqual(await page.context().cookies(), []);
    assert.equal(await page.evaluate('localStorage.length'), 0);
  });

  it('signs in with an approle; the tree lists only what the policy allows and a forbidden prefix shows "no access"', async () => {
    const { page } = tab;
    await page.goto(`${server.url}/ui/`);
    await page.getByLabel('An AppRole').check();
    await page.getByLabel('Role ID').fill(roleId);
    await page.getByLabel('Secret ID').fill(await secretId());
    await page.getByRole('button', { name: 'Sign in' }).click();
    const tree = page.getByRole('navigation', { name: 'Secret tree' });
    await tree.getByRole('link', { name: 'db' }).waitFor();
    assert.equal(await tree.getByText('hidden').count(), 0, 'a path the policy does not list is not shown');
    await tree.getByLabel('Prefix').fill('other');
    await tree.getByRole('button', { name: 'Open' }).click();
    await tree.getByText('No access').waitFor();
    await page.goto(`${server.url}/ui/#/secrets/s/other/hidden`);
    await page.getByRole('status').filter({ hasText: 'No access to other/hidden' }).waitFor();
    assert.equal(await page.getByText('not for alice').count(), 0);
    await assertAccessible(page, 'a 403 node');
  });

  it('creates a secret whose value is markup, reveals it as text, copies it; no script runs', async () => {
    const { page } = tab;
    await signInUserpass();
    await page.getByRole('link', { name: 'New secret' }).click();
    await page.getByLabel('Path').fill('team/web/<script>');
    await page.getByLabel('Key 1', { exact: true }).fill('html');
    await page.getByLabel('Value 1', { exact: true }).fill(XSS_VALUE);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').filter({ hasText: 'path is invalid' }).waitFor();
    assert.equal((await root('GET', '/v1/metadata/team/web')).status, 404, 'nothing was written');
    await page.getByLabel('Path').fill('team/web/page');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: 'team/web/page' }).waitFor();
    await page.getByRole('button', { name: 'Reveal v1' }).click();
    const value = page.locator('pre.value[data-key="html"]');
    assert.equal(await value.textContent(), XSS_VALUE);
    assert.equal(await page.locator('pre.value img, pre.value script').count(), 0, 'the value is text, not elements');
    await page.getByRole('button', { name: 'Copy html' }).click();
    await page.getByRole('button', { name: 'Copied html' }).waitFor();
    assert.equal(await page.evaluate('navigator.clipboard.readText()'), XSS_VALUE);
    await assertAccessible(page, 'a revealed secret');
    await screenshot(page, 'secret');
    // The reveal is a read like any other: audited under alice's identity.
    const revealRead = async () =>
      (await readFile(vault.auditFile, 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { operation?: string; path?: string; identity?: string; outcome?: string })
        .some(
          (l) =>
            l.operation === 'GET /v1/secrets/*path' &&
            l.path === 'team/web/page' &&
            l.identity === 'user:alice' &&
            l.outcome === 'ok',
        );
    for (let i = 0; i < 50 && !(await revealRead()); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(await revealRead(), 'the reveal is in the audit log');
  });

  it('writes a new version with check-and-set; a conflict shows both versions and asks before overwriting', async () => {
    const { page } = tab;
    await signInUserpass();
    await page.goto(`${server.url}/ui/#/secrets/s/team/app/db`);
    await page.getByRole('button', { name: 'Reveal v1' }).click();
    await page.getByRole('button', { name: 'Write a new version' }).click();
    await page.getByLabel('Value 1', { exact: true }).fill('mine');
    // Someone else writes version 2 meanwhile.
    await rootJson('PUT', '/v1/secrets/team/app/db', { data: { password: 'theirs' } });
    await page.getByRole('button', { name: 'Save' }).click();
    const conflict = page.locator('.conflict');
    await conflict.getByText('You edited version 1').waitFor();
    await conflict.getByText('the current one is version 2').waitFor();
    assert.equal(await conflict.locator('time').count(), 2, 'both versions show their dates');
    assert.equal(
      (await rootJson('GET', '/v1/metadata/team/app/db'))?.current_version,
      2,
      'nothing written before the answer',
    );
    await conflict.getByRole('button', { name: 'Save over version 2' }).click();
    await page.getByRole('button', { name: 'Reveal v3' }).waitFor();
    const v3 = await rootJson('GET', '/v1/secrets/team/app/db');
    assert.deepEqual(v3?.data, { password: 'mine' });
    assert.equal(v3?.version, 3);
  });

  it('generates a password on the server from the form', async () => {
    const { page } = tab;
    await signInUserpass();
    await page.getByRole('link', { name: 'New secret' }).click();
    await page.getByLabel('Path').fill('team/gen/pw');
    await page.getByLabel('Type').selectOption('password');
    await page.getByLabel('Generate', { exact: true }).check();
    await page.getByLabel('Length').fill('40');
    await page.getByLabel('Characters').selectOption('hex');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: 'team/gen/pw' }).waitFor();
    const stored = await rootJson('GET', '/v1/secrets/team/gen/pw');
    const data = stored?.data as Record<string, string>;
    assert.match(data.password ?? '', /^[0-9a-f]{40}$/);
  });

  it('soft-deletes, undeletes and destroys a version; destroy needs the path typed', async () => {
    const { page } = tab;
    await rootJson('PUT', '/v1/secrets/team/del/x', { data: { a: '1' } });
    await signInUserpass();
    await page.goto(`${server.url}/ui/#/secrets/s/team/del/x`);
    await page.getByRole('button', { name: 'Delete v1' }).click();
    await page.getByRole('button', { name: 'Undelete v1' }).waitFor();
    assert.equal((await root('GET', '/v1/secrets/team/del/x')).status, 404);
    await page.getByRole('button', { name: 'Undelete v1' }).click();
    await page.getByRole('button', { name: 'Reveal v1' }).waitFor();
    await page.getByRole('button', { name: 'Destroy v1' }).click();
    const dialog = page.getByRole('dialog', { name: 'Destroy version 1' });
    const confirm = dialog.getByRole('button', { name: 'Destroy' });
    assert.equal(await confirm.isDisabled(), true);
    await dialog.getByLabel('to confirm').fill('team/del');
    assert.equal(await confirm.isDisabled(), true, 'a different path does not confirm');
    await assertAccessible(page, 'the destroy confirmation');
    await page.keyboard.press('Escape');
    assert.equal(await dialog.count(), 0, 'Escape cancels');
    assert.equal(
      ((await rootJson('GET', '/v1/metadata/team/del/x'))?.versions as { destroyed: boolean }[])[0]?.destroyed,
      false,
    );
    await page.getByRole('button', { name: 'Destroy v1' }).click();
    await dialog.getByLabel('to confirm').fill('team/del/x');
    await confirm.click();
    await page.locator('td', { hasText: 'destroyed' }).waitFor();
    assert.equal(
      ((await rootJson('GET', '/v1/metadata/team/del/x'))?.versions as { destroyed: boolean }[])[0]?.destroyed,
      true,
    );
  });

  it('a link whose path climbs with .. shows an error and sends no request for any secret', async () => {
    const { page } = tab;
    await rootJson('PUT', '/v1/secrets/team/prod/db', { data: { a: 'prod' } });
    await signInUserpass();
    const requested: string[] = [];
    page.on('request', (r) => requested.push(new URL(r.url()).pathname));
    await page.goto(`${server.url}/ui/#/secrets/s/team/staging/db/../../prod/db`);
    await page.getByRole('alert').getByText('This link names no valid secret path').waitFor();
    assert.equal(await page.getByRole('button', { name: /Delete v1|Reveal v1/ }).count(), 0);
    assert.deepEqual(
      requested.filter((p) => p.startsWith('/v1/metadata/') || p.startsWith('/v1/secrets/team')),
      [],
      'no request for the path the browser would have resolved',
    );
    assert.equal(
      ((await rootJson('GET', '/v1/metadata/team/prod/db'))?.versions as { deleted_at: string | null }[])[0]
        ?.deleted_at,
      null,
    );
  });

  it('signs in with a token and signing out revokes it', async () => {
    const { page } = tab;
    const child = await rootJson('POST', '/v1/auth/token/create', {
      identity: 'svc:dashboard',
      policies: ['team-rw'],
      ttl: '10m',
    });
    const token = String(child?.token);
    await page.goto(`${server.url}/ui/`);
    await page.getByLabel('Token', { exact: true }).fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'unauthenticated' }).waitFor();
    await page.getByLabel('Token', { exact: true }).fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const session = page.getByRole('region', { name: 'Session' });
    await session.getByText('svc:dashboard').waitFor();
    await session.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('Signed out; the token is revoked.').waitFor();
    assert.equal(await page.evaluate('sessionStorage.length'), 0);
    const after = await fetch(`${server.url}/v1/auth/token/self`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(after.status, 401, 'the signed-out token is revoked on the server');
  });

  it('works with the keyboard alone: sign in, open a secret from the tree, reveal it', async () => {
    const { page } = tab;
    const child = await rootJson('POST', '/v1/auth/token/create', {
      identity: 'svc:keyboard',
      policies: ['team-rw'],
      ttl: '10m',
    });
    await page.goto(`${server.url}/ui/`);
    await tabTo(page, /^Token$/);
    await page.keyboard.type(String(child?.token));
    await page.keyboard.press('Enter');
    await page.getByText('svc:keyboard').waitFor();
    await tabTo(page, /^db$/);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'team/app/db' }).waitFor();
    await tabTo(page, /^Reveal v\d+$/);
    await page.keyboard.press('Enter');
    await page.locator('pre.value').first().waitFor();
    await tabTo(page, /^Destroy v1$/);
    await page.keyboard.press('Enter');
    await page.getByRole('dialog').waitFor();
    await page.keyboard.press('Escape');
    assert.equal(await page.getByRole('dialog').count(), 0);
  });

  it('a token that expires mid-session returns to sign-in with a message and no data left on screen', async () => {
    const { page } = tab;
    await signInUserpass();
    await page.goto(`${server.url}/ui/#/secrets/s/team/app/db`);
    await page.getByRole('button', { name: 'Reveal v3' }).click();
    await page.locator('pre.value').getByText('mine').waitFor();
    offset = 700_000; // past alice's 600 s token ttl
    try {
      await page.getByRole('button', { name: 'Reveal v2' }).click();
      await page.getByRole('status').filter({ hasText: 'Your session has ended' }).waitFor();
      await page.getByRole('heading', { name: 'Sign in to Coffer' }).waitFor();
      const text = await page.locator('body').innerText();
      assert.ok(!text.includes('mine') && !text.includes('team/app/db'), 'nothing of the session is left on screen');
      assert.equal(await page.evaluate('sessionStorage.length'), 0);
    } finally {
      offset = 0;
    }
  });

  it('the vault sealing mid-session shows a clear banner, no stack trace, and clears once unsealed', async () => {
    const { page } = tab;
    await signInUserpass();
    await page.goto(`${server.url}/ui/#/secrets/s/team/app/db`);
    await page.getByRole('button', { name: 'Reveal v3' }).waitFor();
    await rootJson('POST', '/v1/sys/seal', {});
    await page.getByRole('button', { name: 'Reveal v3' }).click();
    const banner = page.getByRole('alert').filter({ hasText: 'The vault is sealed' });
    await banner.waitFor();
    const text = await page.locator('body').innerText();
    assert.doesNotMatch(text, /\bat \S+:\d+|Error:|TypeError|undefined/, 'no stack trace or internals');
    await assertAccessible(page, 'the sealed banner');
    await screenshot(page, 'sealed');
    for (const share of vault.shares.slice(0, 3)) await vault.seal.submitShare(share);
    await banner.waitFor({ state: 'detached', timeout: 10_000 });
  });

  it('no page of this file drew a CSP violation report, and the report counter does count one', async () => {
    // Reports are posted asynchronously: give any pending one a moment to arrive.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await cspReports(server.url, vault.rootToken), 0);
    // The control: an inline script injected into the page is refused and reported.
    const { page } = tab;
    await page.goto(`${server.url}/ui/`);
    await page.evaluate(
      "{ const s = document.createElement('script'); s.textContent = 'window.ran = true'; document.body.append(s); }",
    );
    assert.equal(await page.evaluate("'ran' in window"), false, 'the CSP refused the inline script');
    for (let i = 0; i < 50 && (await cspReports(server.url, vault.rootToken)) === 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.equal(await cspReports(server.url, vault.rootToken), 1);
    tab.errors.length = 0; // the refusal's console line is this control's point
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { openVault, type TestVault } from '../helpers.js';
import { wrapForImport } from '../../sdk/byok.js';
import { createCa, issueCert } from '../../server/tls/certs.js';
import {
  assertAccessible,
  cspReports,
  launchBrowser,
  screenshot,
  serve,
  signInWithToken,
  watchedPage,
  type Browser,
  type Served,
  type Watched,
} from './harness.js';

/**
 * The dashboard's access and keys pages in chromium against a real vault (docs/ui.md): the
 * policy editor with its inline errors, hostile names and paths, jwt presets, approle secret
 * ids shown once, keyring rotation with the rewrap followed to the end, named keys, the audit
 * state, and zero CSP reports.
 */
describe('dashboard: access, keys and audit (chromium)', function () {
  this.timeout(60_000);
  let vault: TestVault;
  let server: Served;
  let browser: Browser;
  let tab: Watched;
  const rootJson = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${vault.rootToken}`, 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    assert.ok(res.ok, `${method} ${path}: ${res.status}`);
    return res.status === 204 ? undefined : ((await res.json()) as Record<string, unknown>);
  };

  before(async () => {
    vault = await openVault();
    server = await serve(vault.app);
    await rootJson('PUT', '/v1/policies/readers', { rules: [{ path: 'team/**', capabilities: ['read', 'list'] }] });
    for (let i = 0; i < 40; i++)
      await rootJson('PUT', `/v1/secrets/team/s${String(i).padStart(2, '0')}`, { data: { v: String(i) } });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await vault?.cleanup();
  });
  beforeEach(async () => {
    tab = await watchedPage(browser);
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'passed') tab.assertClean();
    await tab.page.close();
  });

  it('edits a policy; a syntax error and a server refusal show inline and save nothing', async () => {
    const { page } = tab;
    await signInWithToken(page, server.url, vault.rootToken);
    await page.goto(`${server.url}/ui/#/access/policies/readers`);
    const editor = page.getByLabel('Policy (JSON)');
    await editor.waitFor();
    assert.deepEqual(JSON.parse(await editor.inputValue()), {
      rules: [{ path: 'team/**', capabilities: ['read', 'list'] }],
    });
    await assertAccessible(page, 'the policy editor');
    await screenshot(page, 'policy');

    await editor.fill('{ "rules": [ { "path": "team/**", "capabilities": ["read"] ');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#editor-problem').getByText('Not valid JSON').waitFor();
    assert.equal(await editor.getAttribute('aria-invalid'), 'true');

    await editor.fill('{ "rules": [ { "path": "team/**", "capabilities": ["write"] } ] }');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#editor-problem').getByText('invalid_request: rules.0.capabilities.0').waitFor();
    assert.deepEqual(
      (await rootJson('GET', '/v1/policies/readers'))?.rules,
      [{ path: 'team/**', capabilities: ['read', 'list'] }],
      'nothing saved',
    );

    // A rule path that is markup: the server's refusal quotes it, and the page shows it as text.
    await editor.fill(
      JSON.stringify({ rules: [{ path: 'team/<img src=x onerror=alert(1)>', capabilities: ['read'] }] }),
    );
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#editor-problem').getByText('team/<img src=x onerror=alert(1)>', { exact: false }).waitFor();
    assert.equal(await page.locator('#editor-problem img').count(), 0, 'the markup is text');
    assert.deepEqual(
      (await rootJson('GET', '/v1/policies/readers'))?.rules,
      [{ path: 'team/**', capabilities: ['read', 'list'] }],
      'nothing saved',
    );

    // A Vault path onto the sys namespace (docs/vault-compatibility.md "Policies"): refused inline.
    await editor.fill(JSON.stringify({ rules: [{ path: 'secret/data/sys/x', capabilities: ['read'] }] }));
    await page.getByRole('button', { name: 'Save' }).click();
    await page
      .locator('#editor-problem')
      .getByText('no secret in the sys or transit namespaces', { exact: false })
      .waitFor();
    assert.equal(((await rootJson('GET', '/v1/policies/readers'))?.rules as unknown[]).length, 1, 'nothing saved');

    const rules = [
      { path: 'team/**', capabilities: ['read', 'list'] },
      { path: 'shared/*', capabilities: ['read'] },
      { path: 'secret/data/ci/*', capabilities: ['read'] },
    ];
    await editor.fill(JSON.stringify({ rules }));
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('status').filter({ hasText: 'Saved readers.' }).waitFor();
    assert.deepEqual((await rootJson('GET', '/v1/policies/readers'))?.rules, rules);
    // Opened again, the editor shows the Vault path as written.
    await page.reload();
    await editor.waitFor();
    assert.deepEqual(JSON.parse(await editor.inputValue()), { rules });
  });

  it('creates a group and a userpass user in their editors; the user signs in and holds what the group grants', async () => {
    const { page } = tab;
    await signInWithToken(page, server.url, vault.rootToken);
    await page.goto(`${server.url}/ui/#/access/groups/+new`);
    await page.getByLabel('Name', { exact: true }).fill('ops');
    await page.getByLabel('Group (JSON)').fill(JSON.stringify({ policies: ['readers'], members: ['user:bob'] }));
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: 'ops' }).waitFor();
    await page.getByRole('navigation', { name: 'Access' }).getByRole('link', { name: 'Userpass users' }).click();
    // The groups page has a New link too: wait for the users list before following it. The list's
    // page already holds the new user's editor; following New keeps what was typed in it.
    await page.getByRole('heading', { name: 'Userpass users' }).waitFor();
    await page.getByRole('heading', { name: 'New Userpass user' }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('bob');
    await page.getByRole('link', { name: 'New' }).click();
    await page.waitForURL(/#\/access\/users\/%2Bnew$/);
    // Past the hashchange and the render it schedules.
    await page.evaluate('new Promise((resolve) => setTimeout(() => requestAnimationFrame(resolve), 50))');
    assert.equal(await page.getByLabel('Name', { exact: true }).inputValue(), 'bob', 'New kept the typed name');
    await page.getByLabel('Userpass user (JSON)').fill(JSON.stringify({ password: 'short' }));
    await page.getByRole('button', { name: 'Save' }).click();
    // Any problem shown is the answer to this save: say which one it was if it is not the password's.
    const problem = page.locator('#editor-problem');
    await problem.waitFor();
    assert.match(
      await problem.innerText(),
      /password/,
      `the editor held name ${JSON.stringify(await page.getByLabel('Name', { exact: true }).inputValue())}`,
    );
    assert.equal(
      (
        await fetch(`${server.url}/v1/auth/userpass/users/bob`, {
          headers: { Authorization: `Bearer ${vault.rootToken}` },
        })
      ).status,
      404,
      'nothing saved',
    );
    await page.getByLabel('Userpass user (JSON)').fill(JSON.stringify({ password: 'a long enough password' }));
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: 'bob' }).waitFor();
    assert.equal(
      await page
        .getByLabel('Userpass user (JSON)')
        .inputValue()
        .then((v) => v.includes('password')),
      false,
      'the answer never carries the password',
    );

    const other = await watchedPage(browser);
    await other.page.goto(`${server.url}/ui/`);
    await other.page.getByLabel('Username and password').check();
    await other.page.getByLabel('Username', { exact: true }).fill('bob');
    await other.page.getByLabel('Password', { exact: true }).fill('a long enough password');
    await other.page.getByRole('button', { name: 'Sign in' }).click();
    const session = other.page.getByRole('region', { name: 'Session' });
    await session.getByText('user:bob').waitFor();
    // The group's members get its policies whatever the token lists: bob may read team/ through ops.
    await other.page.goto(`${server.url}/ui/#/access`);
    await other.page.getByLabel('At path').fill('team/s01');
    await other.page.getByRole('button', { name: 'Check' }).click();
    await other.page.locator('p.capabilities').getByText('read, list').waitFor();
    other.assertClean();
    await other.page.close();
  });

  it('answers "what can this token do at PATH" for the signed-in token', async () => {
    const { page } = tab;
    const child = await rootJson('POST', '/v1/auth/token/create', {
      identity: 'svc:reader',
      policies: ['readers'],
      ttl: '10m',
    });
    await signInWithToken(page, server.url, String(child?.token));
    await page.goto(`${server.url}/ui/#/access`);
    await page.getByRole('status').filter({ hasText: 'needs admin' }).waitFor();
    const check = async (path: string) => {
      await page.getByLabel('At path').fill(path);
      await page.getByRole('button', { name: 'Check' }).click();
      return page.locator('p.capabilities', { hasText: path });
    };
    await (await check('team/s01')).getByText('read, list').waitFor();
    await (await check('other/x')).getByText('nothing').waitFor();
    await check('<img src=x onerror=alert(1)>');
    await page.getByRole('alert').filter({ hasText: 'expected a path' }).waitFor();
    assert.equal(await page.locator('img').count(), 0);
  });

  it('a policy name that is markup is refused by the server and the refusal shown as text', async () => {
    const { page } = tab;
    await signInWithToken(page, server.url, vault.rootToken);
    await page.goto(`${server.url}/ui/#/access/policies/+new`);
    await page.getByLabel('Name', { exact: true }).fill('<script>alert("name")</script>');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#editor-problem').waitFor();
    assert.equal(((await rootJson('GET', '/v1/policies'))?.keys as string[]).length, 1, 'nothing created');
    assert.equal(await page.locator('script:not([src])').count(), 0);
  });

  it('fills a jwt role from the GitHub Actions preset and saves it; an approle secret id is shown once and logs in', async () => {
    const { page } = tab;
    await signInWithToken(page, server.url, vault.rootToken);
    await page.goto(`${server.url}/ui/#/access/jwt/+new`);
    await page.getByLabel('Name', { exact: true }).fill('gha');
    await page.getByRole('button', { name: 'GitHub Actions' }).click();
    const editor = page.getByLabel('JWT role (JSON)');
    const filled = JSON.parse(await editor.inputValue()) as { bound_claims: Record<string, string>; issuer: string };
    assert.equal(filled.issuer, 'https://token.actions.githubusercontent.com');
    assert.deepEqual(Object.keys(filled.bound_claims).sort(), ['ref', 'repository', 'repository_id']);
    await editor.fill(
      JSON.stringify({
        ...filled,
        bound_claims: { repository: 'acme/api', repository_id: '42', ref: 'refs/heads/main' },
      }),
    );
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: 'gha' }).waitFor();
    const role = await rootJson('GET', '/v1/auth/jwt/roles/gha');
    assert.deepEqual(role?.bound_claims, { repository: 'acme/api', repository_id: '42', ref: 'refs/heads/main' });

    await page.goto(`${server.url}/ui/#/access/approle/+new`);
    await page.getByLabel('Name', { exact: true }).fill('builder');
    await page.getByLabel('AppRole role (JSON)').fill(JSON.stringify({ policies: ['readers'] }));
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('button', { name: 'Issue a secret ID' }).click();
    const secretId = (await page.locator('pre.secret-id').textContent()) ?? '';
    assert.match(secretId, /\S{16,}/);
    await page.getByRole('button', { name: 'Done' }).click();
    assert.equal(await page.getByText(secretId).count(), 0, 'gone once dismissed');
    const roleId = String((await rootJson('GET', '/v1/auth/approle/roles/builder'))?.role_id);
    const login = await fetch(`${server.url}/v1/auth/approle/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ role_id: roleId, secret_id: secretId }),
    });
    assert.equal(login.status, 200);
  });

  it('rotates a keyring and follows the rewrap to the end; rotates a named key and sets its min decryption version', async () => {
    const { page } = tab;
    await signInWithToken(page, server.url, vault.rootToken);
    await page.goto(`${server.url}/ui/#/keys`);
    await page.getByRole('heading', { name: /team: version 1/ }).waitFor();
    await page.getByRole('button', { name: 'Rotate and rewrap' }).click();
    await page.getByRole('heading', { name: /team: version 2/ }).waitFor();
    await page.locator('.rewrap').getByText('done').waitFor({ timeout: 20_000 });
    const ring = await rootJson('GET', '/v1/sys/keyrings/team');
    const rewrap = ring?.rewrap as { state: string; rewrapped: number; total: number };
    assert.equal(rewrap.state, 'done');
    assert.ok(rewrap.rewrapped >= 40, `rewrapped ${rewrap.rewrapped}`);
    assert.match(await page.locator('.rewrap').innerText(), new RegExp(`${rewrap.rewrapped} rewrapped`));
    await assertAccessible(page, 'keys');
    await screenshot(page, 'keys');

    await page.getByLabel('Key name').fill('payments');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { name: 'payments' }).waitFor();
    await page.getByRole('button', { name: 'Rotate', exact: true }).click();
    await page.getByRole('article', { name: 'Key payments' }).getByText('2', { exact: true }).first().waitFor();
    await page.getByLabel('Min decryption version').fill('2');
    await page.getByRole('button', { name: 'Set' }).click();
    await page.locator('dd', { hasText: /^2$/ }).nth(1).waitFor();
    const key = await rootJson('GET', '/v1/keys/payments');
    assert.equal(key?.latest_version, 2);
    assert.equal(key?.min_decryption_version, 2);
    await page.getByLabel('Min decryption version').fill('9');
    await page.getByRole('button', { name: 'Set' }).click();
    await page.getByRole('alert').waitFor();
    assert.equal(
      (await rootJson('GET', '/v1/keys/payments'))?.min_decryption_version,
      2,
      'a refused setting changes nothing',
    );
  });

  it('imports a customer master key: wrapping key shown and downloadable, a bad bundle refused, a good one imported', async () => {
    const { page } = tab;
    await signInWithToken(page, server.url, vault.rootToken);
    await page.goto(`${server.url}/ui/#/keys`);
    const masterVersion = async () =>
      ((await rootJson('GET', '/v1/sys/seal-status'))?.master_key as { version: number }).version;
    const before = await masterVersion();
    await page.getByRole('button', { name: 'Get a wrapping key' }).click();
    const pem = (await page.locator('pre.wrapping-key').textContent()) ?? '';
    assert.match(pem, /^-----BEGIN PUBLIC KEY-----/);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download the wrapping key' }).click(),
    ]);
    assert.equal(await readFile(await download.path(), 'utf8'), pem);
    await page.getByLabel(/^Bundle/).fill('not a bundle');
    await page.getByRole('button', { name: 'Import as the new master key' }).click();
    await page.locator('section[aria-labelledby="byok-title"]').getByRole('alert').waitFor();
    assert.equal(await masterVersion(), before, 'a refused bundle changes nothing');

    await page.getByRole('button', { name: 'Get a wrapping key' }).click();
    await page.locator('pre.wrapping-key').waitFor();
    const fresh = (await page.locator('pre.wrapping-key').textContent()) ?? '';
    await page.getByLabel(/^Bundle/).fill(wrapForImport(fresh, randomBytes(32)));
    await page.getByRole('button', { name: 'Import as the new master key' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: `Imported: master key version ${before + 1}` })
      .waitFor();
    const after = (await rootJson('GET', '/v1/sys/seal-status'))?.master_key as { version: number; imported: boolean };
    assert.equal(after.version, before + 1);
    assert.equal(after.imported, true);
  });

  it('a certificate secret shows its subject, SANs and days to expiry, and lists under "expiring soon"', async () => {
    const ca = await createCa({ commonName: 'Dashboard test CA' });
    const notAfter = new Date(Date.now() + 10.5 * 86_400_000);
    const cert = await issueCert(ca, {
      commonName: 'web.internal',
      usage: 'server',
      dns: ['web.internal'],
      ips: ['127.0.0.1'],
      notAfter,
    });
    await rootJson('PUT', '/v1/secrets/team/tls/web', {
      type: 'certificate',
      data: { certificate: cert.certPem },
      expires_at: notAfter.toISOString(),
    });
    const { page } = tab;
    await signInWithToken(page, server.url, vault.rootToken);
    await page.goto(`${server.url}/ui/#/secrets/s/team/tls/web`);
    const facts = page.locator('dl.facts');
    await facts.getByText('CN=web.internal').waitFor();
    await facts.getByText(/DNS:web\.internal/).waitFor();
    const days = await facts.locator('dt:text-is("Days to expiry") + dd').textContent();
    assert.equal(days, '10');
    await page.getByRole('link', { name: 'Expiring soon' }).click();
    await page.getByLabel('Within').fill('30d');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('link', { name: 'team/tls/web' }).waitFor();
    await page.getByLabel('Within').fill('5d');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByText('Nothing you may list expires in that time.').waitFor();
    await page.getByLabel('Within').fill('soon');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByRole('alert').filter({ hasText: 'expected a duration' }).waitFor();
  });

  it('a reveal in the dashboard shows in the audit view, filtered, with the chain verified', async () => {
    const { page } = tab;
    await signInWithToken(page, server.url, vault.rootToken);
    await page.goto(`${server.url}/ui/#/secrets/s/team/s07`);
    await page.getByRole('button', { name: 'Reveal v1' }).click();
    await page.locator('pre.value').getByText('7', { exact: true }).waitFor();
    await page.getByRole('link', { name: 'Audit' }).click();
    await page.getByLabel('Path prefix').fill('team/s07');
    await page.getByLabel('Operation').fill('GET /v1/secrets/*path');
    await page.getByLabel('Outcome').selectOption('ok');
    await page.getByRole('button', { name: 'Filter' }).click();
    const rows = page.locator('table.lines tbody tr');
    await page.getByText(/^1 matching of the \d+ newest/).waitFor();
    assert.equal(await rows.count(), 1, 'one read of team/s07');
    const cells = await rows.first().locator('td').allInnerTexts();
    assert.deepEqual([cells[2], cells[3], cells[4]], ['root', 'GET /v1/secrets/*path', 'team/s07']);
    await page
      .locator('p.verification')
      .getByText(/^Chain verified: \d+ lines/)
      .waitFor();
    await assertAccessible(page, 'audit');
    await screenshot(page, 'audit');
    await page.getByLabel('Outcome').selectOption('denied');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText('0 matching of the').waitFor();
  });

  it('no page of this file drew a CSP violation report', async () => {
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await cspReports(server.url, vault.rootToken), 0);
  });
});

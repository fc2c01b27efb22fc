import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { RequestListener } from 'node:http';
import { repoRoot } from '../server/http/route-list.js';

/**
 * The dashboard's browser tests (docs/ui.md): Debian's chromium driven by playwright-core
 * against a real server on loopback. One browser per test file; every page is watched for
 * dialogs, script errors and CSP refusals, any of which fails the test that caused it.
 */

export const CHROMIUM = process.env.COFFER_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = join(repoRoot(), 'test', 'artifacts');

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)`);
  const profile = await mkdtemp(join(tmpdir(), 'coffer-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 860 },
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

export interface Served {
  url: string;
  close(): Promise<void>;
}

/** An app on 127.0.0.1, a random port. */
export async function serve(app: RequestListener): Promise<Served> {
  const server: Server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

export interface Watched {
  page: Page;
  /** Dialogs opened (alert, confirm, prompt): none may (an injected script would). */
  dialogs: string[];
  /** Uncaught exceptions and console errors other than the browser's own line for a refused HTTP status. */
  errors: string[];
  assertClean(): void;
}

/** A new tab (its own sessionStorage) that records what no dashboard page may do. */
export async function watchedPage(browser: Browser): Promise<Watched> {
  const page = await browser.context.newPage();
  const dialogs: string[] = [];
  const errors: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // Chromium logs every 4xx/5xx answer to fetch as "Failed to load resource"; the 403s and
    // 409s the tests provoke are expected answers, not script errors.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(`console: ${m.text()}`);
  });
  return {
    page,
    dialogs,
    errors,
    assertClean() {
      assert.deepEqual(dialogs, [], 'no dialog may open');
      assert.deepEqual(errors, [], 'no script error');
    },
  };
}

/** No serious or critical axe-core violation on what the page shows now. */
export async function assertAccessible(page: Page, what: string): Promise<void> {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(
    bad.map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`),
    [],
    `axe-core on ${what}`,
  );
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** `coffer_ui_csp_reports_total` summed over directives, read from the server's metrics. */
export async function cspReports(url: string, rootToken: string): Promise<number> {
  const res = await fetch(`${url}/v1/sys/metrics`, { headers: { Authorization: `Bearer ${rootToken}` } });
  assert.equal(res.status, 200);
  const text = await res.text();
  let total = 0;
  for (const line of text.split('\n'))
    if (line.startsWith('coffer_ui_csp_reports_total')) total += Number(line.split(' ').at(-1));
  return total;
}

/** Signs in on the sign-in page with a token and waits for the session panel. */
export async function signInWithToken(page: Page, url: string, token: string): Promise<void> {
  await page.goto(`${url}/ui/`);
  await page.getByLabel('Token', { exact: true }).fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('Signed in as').waitFor();
}

/**
 * Presses Tab until the focused element's accessible text (its text, or its label for a form
 * field) matches `name`, as a keyboard user moves; fails after `max` presses.
 */
export async function tabTo(page: Page, name: RegExp, max = 60): Promise<void> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const focused = String(
      await page.evaluate(
        "(() => { const e = document.activeElement; if (!e) return ''; const l = e.labels && e.labels[0]; return (l ? l.textContent : e.textContent) || e.getAttribute('aria-label') || ''; })()",
      ),
    );
    if (name.test(focused.trim())) return;
  }
  assert.fail(`no element named ${name} within ${max} Tab presses`);
}

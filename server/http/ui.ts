import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NextFunction, Request, Response, Router } from 'express';
import { Counter } from 'prom-client';
import { z } from 'zod';
import { CofferError } from '../errors.js';
import type { AppDeps } from './deps.js';
import { pathnameOf } from './respond.js';

/**
 * The web dashboard (docs/ui.md): the static files ui/build.mjs writes to dist/ui, served at
 * /ui/ before the seal gate (the dashboard shows a sealed vault too). It is a client of the
 * public API only: no route here reads or writes vault state. The token lives in the page's
 * sessionStorage and travels as a bearer header, never as a cookie, so a cross-site request
 * carries no credential (nothing to forge).
 */

export const UI_PREFIX = '/ui';
export const CSP_REPORT_PATH = `${UI_PREFIX}/csp-report`;

/**
 * No inline script or style anywhere (the build emits files only), no framing, no other origin:
 * a value that slips through as markup can neither run nor load anything.
 */
export const UI_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  `report-uri ${CSP_REPORT_PATH}`,
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

interface Asset {
  type: string;
  body: Buffer;
}

/** The built files, read once: a handful of small files, and a missing build is known at start. */
function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return assets;
  }
  for (const name of names) {
    const type = TYPES[name.slice(name.lastIndexOf('.'))];
    if (type) assets.set(name, { type, body: readFileSync(join(dir, name)) });
  }
  return assets;
}

/** What the dashboard's build directory is, next to the compiled server (dist/server/http -> dist/ui). */
export const UI_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

// Browsers post `application/csp-report` (report-uri); only the directive is kept, since the
// blocked URI or sample may quote page content.
const cspReport = z.object({
  'csp-report': z.object({
    'effective-directive': z.string().max(64).optional(),
    'violated-directive': z.string().max(256).optional(),
  }),
});
const REPORT_LIMIT = 16 * 1024;

/**
 * The directives a report may name as a label (CSP Level 3); anything else is `unknown`. The
 * endpoint takes reports from anyone (a browser sends no token), so neither its labels nor its
 * log lines may grow with what a sender makes up.
 */
const DIRECTIVES = new Set([
  'default-src',
  'script-src',
  'script-src-elem',
  'script-src-attr',
  'style-src',
  'style-src-elem',
  'style-src-attr',
  'img-src',
  'font-src',
  'connect-src',
  'media-src',
  'object-src',
  'frame-src',
  'child-src',
  'worker-src',
  'manifest-src',
  'prefetch-src',
  'fenced-frame-src',
  'base-uri',
  'form-action',
  'frame-ancestors',
  'navigate-to',
  'sandbox',
  'require-trusted-types-for',
  'trusted-types',
  'webrtc',
]);
/** At most one log line per this many milliseconds, saying how many reports it stands for. */
const REPORT_LOG_INTERVAL_MS = 10_000;

export function uiRoutes(router: Router, deps: Pick<AppDeps, 'log' | 'metrics'> & { uiDir?: string }): void {
  const assets = loadAssets(deps.uiDir ?? UI_DIR);
  const reports = new Counter({
    name: 'coffer_ui_csp_reports_total',
    help: 'Content-Security-Policy violation reports from the dashboard',
    labelNames: ['directive'],
    registers: [deps.metrics],
  });
  let lastLogged = -Infinity;
  let unlogged = 0;

  // A plain middleware, not routes: the route catalogue (route-catalogue.ts) is the API, and this is no API.
  router.use(UI_PREFIX, (req: Request, res: Response, next: NextFunction) => {
    const name = req.path === '/' ? 'index.html' : req.path.slice(1);
    // `/ui` alone, with or without a query: the page's relative asset URLs need the slash.
    if (pathnameOf(req.originalUrl) === UI_PREFIX) {
      res.redirect(301, `${UI_PREFIX}/`);
      return;
    }
    if (`${UI_PREFIX}${req.path}` === CSP_REPORT_PATH && req.method === 'POST') {
      readReport(req)
        .then((directive) => {
          reports.labels(directive).inc();
          unlogged++;
          if (Date.now() - lastLogged >= REPORT_LOG_INTERVAL_MS) {
            deps.log.warn({ directive, reports: unlogged }, 'dashboard content-security-policy violation');
            lastLogged = Date.now();
            unlogged = 0;
          }
          res.status(204).end();
        })
        .catch(next);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      throw new CofferError('method_not_allowed', 'method not allowed on this route');
    }
    const asset = assets.get(name);
    if (!asset) {
      throw new CofferError(
        'not_found',
        assets.size === 0 ? 'the dashboard is not built (npm run build:ui)' : 'no such file',
      );
    }
    res.setHeaders(
      new Map([
        ['Content-Type', asset.type],
        ['Content-Security-Policy', UI_CSP],
        ['X-Frame-Options', 'DENY'],
        ['Referrer-Policy', 'no-referrer'],
        ['Cross-Origin-Opener-Policy', 'same-origin'],
        ['Cross-Origin-Resource-Policy', 'same-origin'],
      ]),
    );
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  });
}

async function readReport(req: Request): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > REPORT_LIMIT) throw new CofferError('too_large', 'report too large');
    chunks.push(buffer);
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new CofferError('invalid_request', 'a report is a JSON document');
  }
  const parsed = cspReport.safeParse(json);
  if (!parsed.success) throw new CofferError('invalid_request', 'not a csp-report');
  const report = parsed.data['csp-report'];
  const directive = report['effective-directive'] ?? report['violated-directive']?.split(' ')[0] ?? 'unknown';
  return DIRECTIVES.has(directive) ? directive : 'unknown';
}

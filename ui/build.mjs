// Builds the dashboard (docs/ui.md) into dist/ui: one script, one stylesheet, one page, no
// inline code (the server's Content-Security-Policy allows none). Runs at `npm ci` (prepare),
// offline: esbuild and preact come from node_modules. Prints each file's gzipped size and the
// first-load total, and fails above the budget.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'dist', 'ui');
const BUDGET = 150 * 1024;

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(here, 'src', 'main.tsx') },
  outdir: out,
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  tsconfig: join(here, 'tsconfig.json'),
  logLevel: 'warning',
});
await build({
  entryPoints: { app: join(here, 'app.css') },
  outdir: out,
  bundle: true,
  minify: true,
  logLevel: 'warning',
});
copyFileSync(join(here, 'index.html'), join(out, 'index.html'));

let total = 0;
for (const name of ['index.html', 'app.js', 'app.css']) {
  const body = readFileSync(join(out, name));
  const gz = gzipSync(body, { level: 9 }).length;
  total += gz;
  console.log(
    `ui  ${name.padEnd(11)} ${String(body.length).padStart(7)} B  ${(gz / 1024).toFixed(1).padStart(6)} KiB gzipped`,
  );
}
console.log(`ui  first load ${(total / 1024).toFixed(1)} KiB gzipped (budget ${BUDGET / 1024} KiB)`);
if (total > BUDGET) {
  console.error('ui: the first load is over budget');
  process.exit(1);
}

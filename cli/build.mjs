// Bundles the `coffer` binary (cli/bin.ts and the `coffer run` path it imports) into one
// CommonJS file, dist/cli/coffer.cjs, the package's "bin": node starts no ES module loader for
// `coffer run`. Every other command stays in the ES modules tsc writes to dist/cli, which the
// bundle imports at run time. `npm install`, `npm run build` and `npm test` run this; test/cli
// checks that the binary is what this produces from the current sources.
import { build } from 'esbuild';
import { chmod, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const binaryPath = join(here, '..', 'dist', 'cli', 'coffer.cjs');

/** The binary's text; deterministic for the same sources and esbuild version (pinned in package.json). */
export async function bundle() {
  const result = await build({
    absWorkingDir: join(here, '..'),
    entryPoints: [join(here, 'bin.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // The full CLI is loaded as tsc built it; the SDK loads undici only for fetch with a custom CA.
    external: ['./main.js', 'undici'],
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
  });
  // Any warning (import.meta in CommonJS, say) would be a binary that breaks when it runs.
  if (result.warnings.length > 0) throw new Error(`cli/build.mjs: ${result.warnings.map((w) => w.text).join('; ')}`);
  return result.outputFiles[0].text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(binaryPath, await bundle());
  await chmod(binaryPath, 0o755);
}

// Bundles the action (src/index.ts and the SDK it imports) into dist/index.mjs, the one file
// action.yml runs. `npm install` and `npm run build` run this; test/deploy checks that the
// committed bundle is what this produces from the current sources.
import { build } from 'esbuild';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const bundlePath = join(here, 'dist', 'index.mjs');

/** The bundle's text; deterministic for the same sources and esbuild version (pinned in package.json). */
export async function bundle() {
  const result = await build({
    // Paths in the bundle's comments are relative to the repository root, wherever this runs from.
    absWorkingDir: join(here, '..', '..'),
    entryPoints: [join(here, 'src', 'index.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    // The SDK loads undici only for fetch with a custom CA; the action uses node:https instead.
    external: ['undici'],
    legalComments: 'none',
    banner: { js: '// Built by deploy/github-action/build.mjs from src/ and the Coffer SDK: do not edit.' },
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0].text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await writeFile(bundlePath, await bundle());

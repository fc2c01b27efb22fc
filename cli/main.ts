#!/usr/bin/env node
/**
 * The `coffer` entry point. `coffer run` is a container entrypoint, so it takes a fast path
 * (node:util parseArgs, no yargs, no server code); everything else loads the full CLI.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The version in package.json, found from the compiled file upwards (dist/cli/main.js, a build
 * directory, or node_modules/coffer/dist/cli/main.js after an install): the package's own copy.
 */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'coffer' && pkg.version) return pkg.version;
    } catch {
      // no package.json here: look further up
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  process.stdout.write(`${packageVersion()}\n`);
} else if (args[0] === 'run' && !args.slice(0, args.indexOf('--') >>> 0).some((a) => a === '--help' || a === '-h')) {
  const { runFromArgs } = await import('./run-entry.js');
  await runFromArgs(args.slice(1));
} else {
  await import('./app.js');
}

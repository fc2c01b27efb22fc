#!/usr/bin/env node
/**
 * The full CLI as ES modules. The `coffer` binary is dist/cli/coffer.cjs (cli/bin.ts), which
 * answers `coffer run` from one bundled file and loads this for everything else; run directly,
 * this takes the same fast path for `coffer run` (node:util parseArgs, no yargs, no server code).
 */
import { takesRunFastPath } from './fast-path.js';
import { packageVersion } from '../sdk/version.js';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  process.stdout.write(`${packageVersion()}\n`);
} else if (takesRunFastPath(args)) {
  const { runFromArgs } = await import('./run-entry.js');
  await runFromArgs(args.slice(1));
} else {
  const { runCoffer } = await import('./app.js');
  process.exitCode = await runCoffer(args);
}

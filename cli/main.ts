#!/usr/bin/env node
/**
 * The `coffer` entry point. `coffer run` is a container entrypoint, so it takes a fast path
 * (node:util parseArgs, no yargs, no server code); everything else loads the full CLI.
 */
import { packageVersion } from '../sdk/version.js';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  process.stdout.write(`${packageVersion()}\n`);
} else if (args[0] === 'run' && !args.slice(0, args.indexOf('--') >>> 0).some((a) => a === '--help' || a === '-h')) {
  const { runFromArgs } = await import('./run-entry.js');
  await runFromArgs(args.slice(1));
} else {
  const { runCoffer } = await import('./app.js');
  process.exitCode = await runCoffer(args);
}

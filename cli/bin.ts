#!/usr/bin/env node
/**
 * The `coffer` binary, bundled by cli/build.mjs into one CommonJS file, dist/cli/coffer.cjs.
 * `coffer run` is a container entrypoint that starts on every deploy: its code is in this one
 * file, so node starts no ES module loader for it (docs/performance.md, "coffer run start-up").
 * Every other command loads the full CLI, dist/cli/main.js.
 */
import { takesRunFastPath } from './fast-path.js';
import { runFromArgs } from './run-entry.js';

const args = process.argv.slice(2);
if (takesRunFastPath(args)) void runFromArgs(args.slice(1));
else void import('./main.js');

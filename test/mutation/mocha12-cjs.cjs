// Loaded by test/mutation/run.mjs (NODE_OPTIONS=--require) into Stryker and its workers only.
// @stryker-mutator/mocha-runner (9.6.1, and 10.x alike) loads mocha's CLI helpers by paths
// without an extension (`mocha/lib/cli/options`, `run-helpers`, `collect-files`); mocha 12.0.3
// ships them as `.cjs`, which CommonJS resolution does not try. Registering `.cjs` as a
// CommonJS extension makes those paths resolve; nothing else changes.
const { Module } = require('node:module');
Module._extensions['.cjs'] ??= Module._extensions['.js'];

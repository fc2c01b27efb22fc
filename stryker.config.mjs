import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

// Mutation testing of the security-critical modules (docs/testing.md). Not part of `npm test`.
//
//   npm run test:mutation                 every target, one after the other
//   npm run test:mutation -- tokens body  only these targets
//
// test/mutation/run.mjs runs `stryker run` once per target with STRYKER_TARGET set; this file
// turns that name into Stryker's options. To add a module, add an entry to TARGETS: the files
// (or `file:from-to` line ranges) to mutate, and the tests that cover them, as their .ts paths.
// Only those tests run, so a run stays minutes; a mutant a listed test does not reach counts
// as a survivor ("no coverage"), never as killed.

/** `file:from-to`: the lines from the first containing `from` to the next containing `to` (ranges follow edits). */
function span(file, from, to) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const start = lines.findIndex((l) => l.includes(from));
  const end = lines.findIndex((l, i) => i >= start && l.includes(to));
  if (start < 0 || end < 0) throw new Error(`stryker.config.mjs: ${file} has no lines ${from} … ${to}`);
  return `${file}:${start + 1}-${end + 1}`;
}

/** @type {Record<string, { mutate: string[]; tests: string[]; build?: string[] }>} */
export const TARGETS = {
  policy: {
    mutate: ['server/auth/policy.ts'],
    tests: ['test/server/auth/policy.test.ts', 'test/server/auth/access.test.ts'],
  },
  glob: {
    mutate: ['server/auth/glob.ts'],
    tests: ['test/server/auth/glob.test.ts', 'test/server/auth/jwt-login.test.ts'],
  },
  tokens: {
    // The claims schema and verify (issue 19); the rest of the token service (revocation,
    // renewal, the tree and its sweep) is covered by token-state and token-tree but not a target yet.
    mutate: [
      span('server/auth/tokens.ts', 'const JTI =', '.refine((c) =>'),
      span('server/auth/tokens.ts', 'async verify(token', 'return { ...claims, expires };'),
    ],
    tests: ['test/server/auth/tokens.test.ts', 'test/server/auth/token-claims.test.ts'],
  },
  paths: {
    // The rule itself is shared with the SDK (sdk/wire/paths.ts); server/paths.ts adds the errors and the raw-URL parser.
    mutate: ['server/paths.ts', 'sdk/wire/paths.ts'],
    tests: [
      'test/server/paths.test.ts',
      'test/sdk/paths.test.ts',
      'test/sdk/path-rule.test.ts',
      'test/server/http/bad-input.test.ts',
    ],
  },
  crypto: {
    mutate: ['server/crypto/envelope.ts', 'server/crypto/aead.ts', 'server/crypto/bytes.ts'],
    tests: [
      'test/server/crypto/envelope.test.ts',
      'test/server/crypto/aead-reference.test.ts',
      'test/server/crypto/bytes.test.ts',
      'test/server/crypto/key-copies.test.ts',
      'test/server/secrets/integrity.test.ts',
    ],
  },
  shamir: {
    mutate: ['server/crypto/shamir.ts'],
    tests: ['test/server/crypto/shamir-core.test.ts', 'test/server/crypto/shamir-bounds.test.ts'],
  },
  body: {
    mutate: ['server/http/body.ts'],
    tests: [
      'test/server/http/body-bounds.test.ts',
      'test/server/http/bad-input.test.ts',
      'test/server/http/batch-write.test.ts', // the route with its own limits (jsonBodyWithin)
    ],
  },
  format: {
    mutate: ['server/replication/format.ts'],
    // faults.test.ts (21 s) drives the same checks through a real primary and replica; it is left
    // out because every static mutant (the schemas) reruns all listed tests. Add it for a deep run.
    tests: [
      'test/server/replication/format.test.ts',
      'test/server/replication/smoke.test.ts',
      'test/server/replication/identity.test.ts',
    ],
  },
  env: {
    mutate: ['cli/env.ts'],
    // Not cli.test.ts: it runs the built CLI as a child process, whose coverage Stryker does not see.
    tests: ['test/cli/env.test.ts'],
  },
  'login-limits': {
    mutate: ['server/http/login-limits.ts'],
    tests: [
      'test/server/http/login-limits-bounds.test.ts',
      'test/server/http/failure-limiter.test.ts',
      'test/server/http/login-limits.test.ts',
    ],
    build: ['cli/main.ts'], // login-limits.test runs `coffer login approle`
  },
  barrier: {
    mutate: ['server/store/barrier.ts'],
    tests: [
      'test/server/store/barrier.test.ts',
      'test/server/store/barrier-edges.test.ts',
      'test/integration/migration.test.ts',
      'test/server/secrets/integrity.test.ts',
    ],
    build: ['cli/main.ts'], // migration.test runs `coffer server` on an old data directory
  },
  vault: {
    // The Vault adapter: KV v2 routes, logins and token self-service, errors, sys routes, the LIST
    // hand-over and its framing reader, and Vault paths in Coffer policies.
    mutate: [
      'server/http/vault/kv.ts',
      'server/http/vault/auth.ts',
      'server/http/vault/route.ts',
      'server/http/vault/errors.ts',
      'server/http/vault/sys.ts',
      'server/http/vault/mounts.ts',
      'server/http/vault/index.ts',
      'server/http/vault/list-verb.ts',
      'server/auth/vault-policy-paths.ts',
    ],
    tests: [
      'test/server/http/vault/kv.test.ts',
      'test/server/http/vault/kv-edges.test.ts',
      'test/server/http/vault/auth.test.ts',
      'test/server/http/vault/policies.test.ts',
      'test/server/http/vault/list-verb.test.ts',
      'test/server/http/vault/list-framing.test.ts',
      'test/server/http/vault/node-vault.test.ts',
      'test/server/http/vault/vault-action.test.ts',
      'test/server/http/vault/go-clients.test.ts',
      'test/server/http/vault/replica.test.ts',
      'test/server/http/vault/wire-shapes.test.ts',
      'test/server/auth/vault-policy-paths.test.ts',
    ],
  },
  'audit-head': {
    mutate: ['server/audit/head.ts'],
    tests: [
      'test/server/audit/head-file.test.ts',
      'test/server/audit/head-integrity.test.ts',
      'test/server/audit/head-removed.test.ts',
    ],
    build: ['cli/main.ts'], // head-integrity runs `coffer audit verify`
  },
};

const name = process.env.STRYKER_TARGET ?? '';
const target = TARGETS[name];
if (!target)
  throw new Error(`set STRYKER_TARGET to one of: ${Object.keys(TARGETS).join(', ')} (or run npm run test:mutation)`);

const compiled = (ts) => `dist/${ts.replace(/\.ts$/, '.js')}`;

// The TypeScript checker's program: the mutated files and what they import, nothing else, so a
// check is quick and another module's type error (work in progress elsewhere) cannot stop a run;
// plus the ambient declarations of untyped packages (server/types), which nothing imports.
const AMBIENT = readdirSync('server/types')
  .filter((f) => f.endsWith('.d.ts'))
  .map((f) => `server/types/${f}`);
const tsconfigFile = `test/mutation/generated/tsconfig.${name}.json`;
mkdirSync(dirname(tsconfigFile), { recursive: true });
// The build: the listed tests and what they import (plus a target's `build` entries, e.g. a
// binary a test spawns), type-checking off, into the sandbox's dist/.
const buildConfig = `test/mutation/generated/tsconfig.build.${name}.json`;
writeFileSync(
  buildConfig,
  `${JSON.stringify({ extends: '../../../tsconfig.json', compilerOptions: { outDir: '../../../dist', rootDir: '../../..', noCheck: true }, include: [], files: [...target.tests, ...(target.build ?? [])].map((f) => `../../../${f}`) }, null, 2)}\n`,
);
writeFileSync(
  tsconfigFile,
  `${JSON.stringify({ extends: '../../../tsconfig.json', compilerOptions: { noEmit: true, types: ['node'] }, include: [], files: [...new Set([...target.mutate.map((m) => m.replace(/:[0-9-]+$/, '')), ...AMBIENT])].map((f) => `../../../${f}`) }, null, 2)}\n`,
);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  testRunner: 'mocha',
  checkers: process.env.STRYKER_CHECK === '0' ? [] : ['typescript'],
  tsconfigFile,
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  // The sandbox is a copy of the work tree: compile it there (type errors are the checker's job).
  buildCommand: `tsc -p ${buildConfig}`,
  disableTypeChecks: '{server,cli,sdk,test}/**/*.ts',
  mutate: target.mutate,
  mochaOptions: { spec: target.tests.map(compiled) },
  coverageAnalysis: 'perTest',
  concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 2),
  timeoutMS: 5_000,
  incremental: true,
  incrementalFile: `reports/mutation/${name}.incremental.json`,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: `reports/mutation/${name}.html` },
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true, reportMutants: true },
  tempDirName: '.stryker-tmp',
  ignorePatterns: ['/dist', '/.build', '/.coffer', '/reports', '/.stryker-tmp'],
  thresholds: { high: 90, low: 80, break: null },
  logLevel: 'info',
  fileLogLevel: 'off',
};

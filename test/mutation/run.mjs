#!/usr/bin/env node
// Runs Stryker once per mutation target (stryker.config.mjs TARGETS), one after the other, and
// prints the score of every mutated file. Exits 1 if a run fails or a file scores below 80%.
//
//   node test/mutation/run.mjs [target ...]     (npm run test:mutation -- [target ...])
//
// Scores count killed and timed-out mutants as detected, survivors and mutants no listed test
// reaches as undetected; mutants that do not compile (the TypeScript checker) do not count.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MIN_SCORE = 80;

// The config throws without a target; import it with one set to read the list.
process.env.STRYKER_TARGET ??= 'policy';
const { TARGETS } = await import(join(root, 'stryker.config.mjs'));
delete process.env.STRYKER_TARGET;

const asked = process.argv.slice(2);
const unknown = asked.filter((t) => !(t in TARGETS));
if (unknown.length > 0) {
  console.error(`unknown target(s): ${unknown.join(', ')}; targets: ${Object.keys(TARGETS).join(', ')}`);
  process.exit(2);
}
const targets = asked.length > 0 ? asked : Object.keys(TARGETS);

// mocha 12 compatibility of the mocha runner (see mocha12-cjs.cjs), for Stryker and its workers.
const hook = join(root, 'test', 'mutation', 'mocha12-cjs.cjs');
const nodeOptions = [process.env.NODE_OPTIONS, `--require ${JSON.stringify(hook)}`].filter(Boolean).join(' ');

const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);

const rows = [];
let failed = false;
for (const name of targets) {
  const started = Date.now();
  console.log(`\n=== mutation target ${name}: ${TARGETS[name].mutate.join(', ')}`);
  const run = spawnSync('npx', ['stryker', 'run', 'stryker.config.mjs'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, NODE_OPTIONS: nodeOptions, STRYKER_TARGET: name },
  });
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  if (run.status !== 0) {
    console.error(`stryker failed for target ${name} (exit ${run.status ?? run.signal})`);
    failed = true;
    rows.push({ target: name, file: '(run failed)', detected: 0, undetected: 0, score: NaN, minutes });
    continue;
  }
  const report = JSON.parse(readFileSync(join(root, 'reports', 'mutation', `${name}.json`), 'utf8'));
  for (const [file, { mutants }] of Object.entries(report.files)) {
    const detected = mutants.filter((m) => DETECTED.has(m.status)).length;
    const undetected = mutants.filter((m) => UNDETECTED.has(m.status)).length;
    const score = detected + undetected === 0 ? 100 : (100 * detected) / (detected + undetected);
    if (score < MIN_SCORE) failed = true;
    rows.push({ target: name, file, detected, undetected, score, minutes });
  }
}

const lines = [
  '| target | file | detected | undetected | score | minutes |',
  '| --- | --- | ---: | ---: | ---: | ---: |',
];
for (const r of rows)
  lines.push(
    `| ${r.target} | ${r.file} | ${r.detected} | ${r.undetected} | ${Number.isNaN(r.score) ? '-' : r.score.toFixed(1) + '%'} | ${r.minutes} |`,
  );
const table = lines.join('\n');
mkdirSync(join(root, 'reports', 'mutation'), { recursive: true });
writeFileSync(join(root, 'reports', 'mutation', 'summary.md'), `${table}\n`);
console.log(`\n${table}\n\n(also in reports/mutation/summary.md; HTML reports in reports/mutation/<target>.html)`);
if (failed) {
  console.error(`\nmutation testing: a run failed or a file scored below ${MIN_SCORE}%`);
  process.exit(1);
}

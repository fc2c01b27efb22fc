import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { copyFile, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tempDir } from '../helpers.js';
import { CLI } from '../integration/server-process.js';
import { cliFixture, type CliFixture, type CliResult } from './cli-fixture.js';

/**
 * The `coffer` binary, dist/cli/coffer.cjs (cli/bin.ts bundled by cli/build.mjs): `coffer run`
 * answered from that one CommonJS file, everything else by the ES modules of dist/cli/main.js.
 */
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MAIN = join(dirname(CLI), 'main.js');
const PKG = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as {
  version: string;
  bin: { coffer: string };
};

function runNode(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => done({ code, stdout, stderr }));
  });
}

describe('the coffer binary (dist/cli/coffer.cjs)', function () {
  this.timeout(30_000);
  let vault: CliFixture;

  before(async () => {
    vault = await cliFixture('coffer-binary-');
    await vault.run(['put', 'app/db', 'password=s3cret', 'username=app']);
  });
  after(async () => vault?.close());

  it('is the package bin, executable, and what cli/build.mjs makes from the current sources', async () => {
    assert.equal(join(REPO, PKG.bin.coffer), CLI);
    assert.ok(((await stat(CLI)).mode & 0o111) !== 0, 'executable');
    const built: Record<string, unknown> = await import(pathToFileURL(join(REPO, 'cli', 'build.mjs')).href);
    if (typeof built.bundle !== 'function') throw new Error('cli/build.mjs exports bundle()');
    const fresh: unknown = await built.bundle();
    assert.ok(fresh === (await readFile(CLI, 'utf8')), 'dist/cli/coffer.cjs is stale: run npm run build:cli');
  });

  it('bundles the run path and nothing of the server or the full CLI', async () => {
    const text = await readFile(CLI, 'utf8');
    const sources = new Set([...text.matchAll(/^\/\/ (\S+\.ts)$/gm)].map((m) => m[1] ?? ''));
    assert.ok(sources.has('cli/run-entry.ts') && sources.has('sdk/client.ts'), [...sources].join(' '));
    for (const s of sources) assert.match(s, /^(cli|sdk)\//, s);
    for (const s of ['cli/app.ts', 'cli/main.ts']) assert.ok(!sources.has(s), `${s} is not bundled`);
    assert.doesNotMatch(text, /require\("(yargs|express|level|zod)"\)/);
  });

  it('coffer run works from the binary alone: no other file of dist/ is loaded', async () => {
    // A copy with nothing next to it: `run` still answers, any other command cannot find main.js.
    const lone = join(await tempDir('coffer-lone-bin-'), 'coffer.cjs');
    await copyFile(CLI, lone);
    const run = await runNode([lone, 'run', '--path', 'app/db', '--', 'sh', '-c', 'printf %s "$PASSWORD"'], vault.env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 's3cret');
    const other = await runNode([lone, 'get', 'app/db'], vault.env);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /Cannot find module .*main\.js/);
  });

  it('coffer run opens no process stream and loads no file API when all goes well; stderr to say what did not', async () => {
    // A preload that notes each process stream the CLI creates (node makes them on first use),
    // and whether node:fs/promises was loaded (0.7 ms of start-up: docs/performance.md).
    const dir = await tempDir('coffer-streams-');
    const preload = join(dir, 'streams.cjs');
    const noted = join(dir, 'streams.json');
    await writeFile(
      preload,
      `const { writeFileSync } = require('node:fs');
const opened = new Set();
for (const name of ['stdin', 'stdout', 'stderr']) {
  const real = Object.getOwnPropertyDescriptor(process, name);
  Object.defineProperty(process, name, {
    configurable: true,
    enumerable: real.enumerable,
    get() { opened.add(name); return real.get.call(process); },
  });
}
process.on('exit', () => {
  if (process.moduleLoadList.includes('NativeModule internal/fs/promises')) opened.add('fs/promises');
  writeFileSync(${JSON.stringify(noted)}, JSON.stringify([...opened]));
});
`,
    );
    const opened = async () => JSON.parse(await readFile(noted, 'utf8')) as string[];
    const ok = await runNode(['-r', preload, CLI, 'run', '--path', 'app/db', '--', 'true'], vault.env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(await opened(), []);
    const missing = await runNode(
      ['-r', preload, CLI, 'run', '--path', 'app/db', '--', join(dir, 'no-such-command')],
      vault.env,
    );
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /cannot run .*no-such-command: command not found/);
    assert.deepEqual(await opened(), ['stderr']);
    // --file writes a file: that run loads the promise API, as it should.
    const withFile = await runNode(
      ['-r', preload, CLI, 'run', '--path', 'app/db', '--file', 'password=PW_FILE', '--', 'true'],
      vault.env,
    );
    assert.equal(withFile.code, 0, withFile.stderr);
    assert.deepEqual(await opened(), ['fs/promises']);
  });

  it('answers as dist/cli/main.js does: run, a run usage error, run --help, --version, get', async () => {
    const cases: string[][] = [
      ['run', '--path', 'app/db', '--', 'sh', '-c', 'printf "%s %s" "$USERNAME" "$PASSWORD"'],
      ['run', '--path', 'app/db', '--bogus', '--', 'true'],
      ['run', '--path', 'app/missing', '--', 'true'],
      ['run', '--help'],
      ['--version'],
      ['get', 'app/db', '--field', 'username'],
    ];
    for (const args of cases) {
      const [viaBin, viaMain] = await Promise.all([
        runNode([CLI, ...args], vault.env),
        runNode([MAIN, ...args], vault.env),
      ]);
      assert.deepEqual(viaBin, viaMain, args.join(' '));
      assert.ok(viaBin.stdout.length + viaBin.stderr.length > 0, `${args.join(' ')} says something`);
    }
    const version = await runNode([CLI, '--version'], vault.env);
    assert.equal(version.stdout, `${PKG.version}\n`);
    const run = await runNode([CLI, ...cases[0]!], vault.env);
    assert.equal(run.stdout, 'app s3cret');
  });
});

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliFixture, type CliFixture } from '../cli/cli-fixture.js';
import { tempDir } from '../helpers.js';

/**
 * The install path a CI job uses (issue 18 item 1): `npm pack` the repository, then
 * `npm install -g ./coffer-<version>.tgz` and `npm install ./coffer-<version>.tgz` for the SDK.
 *
 * The pack runs on a copy of the sources (its own `prepack`/`prepare` build, node_modules
 * linked), so it never rewrites the shared dist/. The installs resolve the dependencies from the
 * npm cache (--prefer-offline), falling back to the registry. Measured on the dev machine: pack
 * ~12 s (tsc), global install ~10-14 s (including the pkcs11js node-gyp build), SDK install ~10 s;
 * the whole suite stays well under the 3-minute bound below.
 */

/** The repository root: the nearest package.json named coffer above this file. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === 'coffer') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json of coffer not found above the test');
    dir = up;
  }
}

const ROOT = repoRoot();
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
};
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** The caller's environment minus npm's lifecycle variables (a parent `npm test` must not steer the inner npm). */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && !k.startsWith('COFFER_')) env[k] = v;
  env.PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`;
  return { ...env, ...extra };
}

function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd: options.cwd, env: options.env ?? cleanEnv(), timeout: options.timeoutMs ?? 90_000, maxBuffer: 32 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
        else resolve({ stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

/** Runs the installed binary itself (its shebang, its node_modules), with exactly `env`. */
function runBin(
  bin: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => done({ code, stdout, stderr }));
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

const NPM_FLAGS = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];

describe('install from the packed tarball (npm pack, npm install -g)', function () {
  this.timeout(60_000);
  let work: string;
  let tgz: string;
  let prefix: string;
  let vault: CliFixture;
  let packedFiles: string[] = [];
  const timings: Record<string, number> = {};

  before(async function () {
    this.timeout(180_000);
    work = await tempDir('coffer-install-');
    // A copy of what `npm pack` needs, so that its build does not touch the shared dist/.
    const stage = join(work, 'src');
    await mkdir(stage);
    // ui/ and deploy/github-action/: `prepare` builds the dashboard and the action's bundle too.
    for (const name of [
      'package.json',
      'tsconfig.json',
      'README.md',
      'LICENSE',
      'server',
      'cli',
      'sdk',
      'ui',
      'deploy/github-action',
    ]) {
      if (existsSync(join(ROOT, name))) await cp(join(ROOT, name), join(stage, name), { recursive: true });
    }
    await symlink(join(ROOT, 'node_modules'), join(stage, 'node_modules'), 'dir');
    const packed = await run(NPM, ['pack', '--json', '--pack-destination', work, '--loglevel=error'], {
      cwd: stage,
      timeoutMs: 120_000,
    });
    timings.pack = packed.ms;
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
      filename: string;
      files: { path: string }[];
    }[];
    tgz = join(work, info[0]!.filename);
    packedFiles = info[0]!.files.map((f) => f.path);

    prefix = join(work, 'prefix');
    const installed = await run(
      NPM,
      ['install', '-g', '--prefix', prefix, '--allow-scripts=pkcs11js,classic-level', ...NPM_FLAGS, tgz],
      { timeoutMs: 120_000 },
    );
    timings.globalInstall = installed.ms;
    vault = await cliFixture('coffer-install-vault-');
  });

  after(async () => {
    await vault?.close();
    if (work) await rm(work, { recursive: true, force: true });
    if (Object.keys(timings).length) console.log(`      install timings (ms): ${JSON.stringify(timings)}`);
  });

  it('packs dist/ (not dist/test), README, LICENSE and package.json, and no sources', () => {
    assert.equal(tgz.endsWith(`coffer-${PKG.version}.tgz`), true, tgz);
    for (const f of [
      'package.json',
      'README.md',
      'LICENSE',
      'dist/cli/coffer.cjs',
      'dist/cli/main.js',
      'dist/sdk/index.js',
      'dist/sdk/index.d.ts',
      'dist/server/main.js',
    ]) {
      assert.ok(packedFiles.includes(f), `${f} is in the tarball`);
    }
    const stray = packedFiles.filter((f) => !/^(package\.json|README\.md|LICENSE)$/.test(f) && !f.startsWith('dist/'));
    assert.deepEqual(stray, [], 'only dist/ and the three top-level files');
    assert.deepEqual(
      packedFiles.filter((f) => f.startsWith('dist/test/') || f.startsWith('.build/')),
      [],
    );
    assert.deepEqual(
      packedFiles.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')),
      [],
      'no TypeScript sources',
    );
  });

  it('every package the installed code imports is a dependency, and installed', async () => {
    const pkgDir = join(prefix, 'lib', 'node_modules', 'coffer');
    const builtins = new Set(builtinModules);
    const missing = new Set<string>();
    // dist/ui is the dashboard's browser bundle: self-contained and minified, it imports nothing at run time.
    for (const file of (await filesUnder(join(pkgDir, 'dist'))).filter(
      (f) => (f.endsWith('.js') || f.endsWith('.cjs')) && !f.includes('/dist/ui/'),
    )) {
      const text = await readFile(file, 'utf8');
      for (const m of text.matchAll(
        /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)['"]([^'"./][^'"]*)['"]/g,
      )) {
        const spec = m[1]!;
        if (spec.startsWith('node:') || builtins.has(spec)) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!(name in PKG.dependencies) || !existsSync(join(pkgDir, 'node_modules', name)))
          missing.add(`${name} (${file.slice(pkgDir.length + 1)})`);
      }
    }
    assert.deepEqual([...missing], [], 'imported by dist/ but not an installed dependency');
    // Native parts: classic-level ships prebuilds; pkcs11js (HSM) is built by node-gyp when allowed.
    assert.ok(
      existsSync(join(pkgDir, 'node_modules', 'pkcs11js', 'build', 'Release', 'pkcs11.node')),
      'pkcs11js built (--allow-scripts=pkcs11js)',
    );
    assert.ok(
      existsSync(join(pkgDir, 'node_modules', 'classic-level', 'prebuilds', `${process.platform}-${process.arch}`)),
      'classic-level prebuild for this platform',
    );
  });

  it('the installed coffer runs: --version, put, get and run (the bundled fast path) against a dev server', async () => {
    const bin = join(prefix, 'bin', 'coffer');
    const env = cleanEnv({
      HOME: join(work, 'home'),
      COFFER_ADDR: vault.server.url,
      COFFER_TOKEN: vault.server.rootToken,
    });
    const version = await runBin(bin, ['--version'], env);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout.trim(), PKG.version);
    const put = await runBin(bin, ['put', 'ci/app', 'password=from-the-tarball'], env);
    assert.equal(put.code, 0, put.stderr);
    const get = await runBin(bin, ['get', 'ci/app', '--field', 'password'], env);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, 'from-the-tarball\n');
    const run = await runBin(bin, ['run', '--path', 'ci/app', '--', 'sh', '-c', 'printf %s "$PASSWORD"'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'from-the-tarball');
  });

  it('coffer/sdk imports from another folder after npm install of the tarball', async function () {
    this.timeout(120_000);
    const app = join(work, 'app');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'ci-app', private: true, type: 'module' }));
    const installed = await run(NPM, ['install', ...NPM_FLAGS, tgz], { cwd: app, timeoutMs: 120_000 });
    timings.sdkInstall = installed.ms;
    await writeFile(
      join(app, 'read.mjs'),
      [
        "import { Coffer, isNotFound } from 'coffer/sdk';",
        'const client = new Coffer();',
        "await client.putSecret('ci/sdk', { data: { password: 'from-the-sdk' } });",
        "const secret = await client.getSecret('ci/sdk');",
        'process.stdout.write(JSON.stringify({ password: secret.data.password, notFound: typeof isNotFound }));',
      ].join('\n'),
    );
    const out = await run(process.execPath, ['read.mjs'], {
      cwd: app,
      env: cleanEnv({ COFFER_ADDR: vault.server.url, COFFER_TOKEN: vault.server.rootToken }),
    });
    assert.deepEqual(JSON.parse(out.stdout), { password: 'from-the-sdk', notFound: 'function' });
  });
});

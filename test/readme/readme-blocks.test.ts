/**
 * The README's examples run as written (issue 18 item 7).
 *
 * HOW TO MARK A BLOCK. A fenced block whose info string is `sh runnable` is run by this test:
 *
 *     ```sh runnable
 *     coffer put app/db username=app
 *     ```
 *
 * Every other block (```sh, ```yaml, ``` alone, indented blocks) is shown, never run. Mark a
 * block only when it runs on any machine with Node.js, bash, curl, jq and openssl; leave it
 * unmarked when it needs what a test machine lacks (an HSM, an S3 bucket, a second machine, a CI
 * runner, the network, root).
 *
 * HOW THEY RUN. One fresh dev server (`coffer server --dev`, a real child process, data in
 * `<work>/.coffer`) on a random loopback port; then every runnable block in README order, each in
 * its own `bash -euo pipefail`, all in the same temp working directory `<work>` (so later blocks
 * see the files earlier ones wrote, e.g. a policy before a login), with:
 *   - `coffer` on PATH: a shim running the CLI built next to this test (dist/cli/coffer.cjs);
 *   - HOME a temp directory (`coffer login` stores its token there), no COFFER_* or XDG_*
 *     variables inherited;
 *   - COFFER_ADDR and COFFER_TOKEN set to the dev server and its root token, as after the
 *     walkthrough's `export COFFER_ADDR=http://127.0.0.1:8740 COFFER_TOKEN=$(cat .coffer/root-token)`;
 *   - in the block's text, `127.0.0.1:8740` (the dev vault's address in the README) replaced by
 *     the dev server's address, and every other `127.0.0.1:<port>` (e.g. the production
 *     quickstart's 8741) by a free port of its own, the same in every block.
 * A block may start a server in the background (`coffer server … >log 2>&1 &`): each block runs
 * in its own process group, and every group is killed when the test ends. A block fails the
 * test with its README line number, its exit code and its stderr.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { CLI, startServerProcess, type ServerProcess } from '../integration/server-process.js';
import { anchors, headings, repoRoot, runnableBlocks, tableOfContents, type Block } from './readme-blocks.js';

const README = join(repoRoot(), 'README.md');
const MARKDOWN = await readFile(README, 'utf8');
const BLOCKS = runnableBlocks(MARKDOWN);
/** Fewer than this and the test would pass while checking little: a block lost its marker. */
const MIN_RUNNABLE_BLOCKS = 15;
const BLOCK_TIMEOUT_MS = 45_000;
/** What the runnable blocks call besides coffer and coreutils. */
const TOOLS = ['bash', 'curl', 'jq', 'openssl'];

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs one block under bash -euo pipefail in its own process group (left running: killed at the end). */
function runBlock(file: string, cwd: string, env: NodeJS.ProcessEnv, groups: number[]): Promise<Outcome> {
  return new Promise((done) => {
    const child = spawn('bash', ['-euo', 'pipefail', file], {
      cwd,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid) groups.push(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${BLOCK_TIMEOUT_MS} ms]`;
      killGroup(child.pid!, 'SIGKILL');
    }, BLOCK_TIMEOUT_MS);
    // 'exit', not 'close': a server the block left in the background may hold the pipes open.
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      setTimeout(() => done({ code, signal, stdout, stderr }), 50);
    });
  });
}

function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // the group is gone
  }
}

describe('README', function () {
  it('marks enough blocks as runnable for this test to mean something', () => {
    assert.ok(
      BLOCKS.length >= MIN_RUNNABLE_BLOCKS,
      `only ${BLOCKS.length} \`\`\`sh runnable blocks in README.md (at least ${MIN_RUNNABLE_BLOCKS} expected)`,
    );
    for (const b of BLOCKS) assert.ok(b.body.trim() !== '', `README.md line ${b.line}: empty runnable block`);
  });

  it('has a table of contents that lists every heading, in order, with working anchors', () => {
    const all = headings(MARKDOWN);
    const listed = all.filter((h) => h.text !== 'Contents' && h.depth <= 3);
    const toc = tableOfContents(MARKDOWN);
    assert.ok(toc.length > 0, 'README.md has no "## Contents" list');
    const wanted = anchors(all.map((h) => h.text));
    const anchorOf = new Map(all.map((h, i) => [h, wanted[i]!]));
    assert.deepEqual(
      toc.map((e) => `${'  '.repeat(e.depth - 2)}- [${e.text}](#${e.anchor})`),
      listed.map((h) => `${'  '.repeat(h.depth - 2)}- [${h.text}](#${anchorOf.get(h)})`),
      'the "## Contents" list must name every ## and ### heading in order (indented two spaces for ###), linking to its anchor',
    );
  });

  describe('runnable blocks, in order, against a fresh dev server', function () {
    this.timeout(BLOCK_TIMEOUT_MS + 15_000);
    let work: string;
    let server: ServerProcess;
    let env: NodeJS.ProcessEnv;
    const ports = new Map<string, string>();
    const groups: number[] = [];
    let broken: string | undefined;

    before(async function () {
      this.timeout(90_000);
      const missing = TOOLS.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0);
      assert.deepEqual(
        missing,
        [],
        `the README's runnable blocks need ${missing.join(', ')} on PATH (apt-get install -y ${missing.join(' ')})`,
      );
      work = await tempDir('coffer-readme-');
      const bin = join(work, '.bin');
      await mkdir(bin);
      await mkdir(join(work, 'home'));
      await writeFile(join(bin, 'coffer'), `#!/bin/sh\nexec '${process.execPath}' '${CLI}' "$@"\n`);
      await chmod(join(bin, 'coffer'), 0o755);
      server = await startServerProcess(['--dev', '--data-dir', join(work, '.coffer')], {});
      ports.set('127.0.0.1:8740', new URL(server.url).host);
      for (const b of BLOCKS) {
        for (const [, addr] of b.body.matchAll(/\b(127\.0\.0\.1:\d{2,5})\b/g)) {
          if (!ports.has(addr!)) ports.set(addr!, `127.0.0.1:${await freePort()}`);
        }
      }
      const inherited = Object.fromEntries(
        Object.entries(process.env).filter(([k]) => !/^(COFFER_|XDG_|npm_|GITHUB_|ACTIONS_)/i.test(k)),
      );
      env = {
        ...inherited,
        PATH: `${bin}:${process.env.PATH ?? ''}`,
        HOME: join(work, 'home'),
        COFFER_ADDR: server.url,
        COFFER_TOKEN: (await readFile(join(work, '.coffer', 'root-token'), 'utf8')).trim(),
        GITHUB_ENV: join(work, 'github-env'),
      };
    });

    after(async function () {
      this.timeout(30_000);
      const alive = groups.filter((g) => killGroup(g, 'SIGTERM'));
      if (alive.length) await new Promise((r) => setTimeout(r, 1_000));
      for (const g of alive) killGroup(g, 'SIGKILL');
      await server?.kill('SIGTERM');
      if (work) await rm(work, { recursive: true, force: true });
    });

    for (const block of BLOCKS) {
      it(`README.md line ${block.line}: ${firstCommand(block)}`, async function () {
        // Later blocks build on earlier ones: after the first failure they would only fail in its wake.
        if (broken) this.skip();
        let script = block.body;
        for (const [from, to] of ports) script = script.split(from).join(to);
        const file = join(work, '.bin', `block-${block.line}.sh`);
        await writeFile(file, `${script}\n`);
        const started = Date.now();
        const result = await runBlock(file, work, env, groups);
        if (result.code !== 0) {
          broken = `README.md line ${block.line}`;
          assert.fail(
            `README.md line ${block.line}: the block exited ${result.code ?? result.signal} after ${Date.now() - started} ms\n` +
              `--- block ---\n${block.body}\n--- stderr ---\n${result.stderr.trim()}\n--- stdout (last 2000 characters) ---\n${result.stdout.slice(-2000).trim()}` +
              (await serverLogs(work)),
          );
        }
      });
    }
  });
});

/** The tails of the *.log files blocks wrote (servers they started in the background log there). */
async function serverLogs(work: string): Promise<string> {
  let text = '';
  for (const dir of [
    work,
    ...(await readdir(work, { withFileTypes: true }))
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => join(work, d.name)),
  ]) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.endsWith('.log') || name === 'audit.log') continue;
      const lines = (await readFile(join(dir, name), 'utf8').catch(() => '')).trimEnd().split('\n');
      text += `\n--- ${join(dir, name).slice(work.length + 1)} (last 15 lines) ---\n${lines.slice(-15).join('\n')}`;
    }
  }
  return text;
}

function firstCommand(block: Block): string {
  const line = block.body.split('\n').find((l) => l.trim() && !l.trim().startsWith('#')) ?? '';
  return line.length > 70 ? `${line.slice(0, 67)}...` : line;
}

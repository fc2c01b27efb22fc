import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from './cli-fixture.js';

/**
 * Every command and subcommand yargs knows shows at least one example in `--help` (issue 18
 * item 6). The list is not written down here: it is walked from the "Commands:" section of
 * `coffer --help`, then of each command's own help, so a new command without examples fails.
 */
const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: '/nonexistent-coffer-home' };

/** The command words listed under "Commands:" in a help text (positionals such as <verb> dropped). */
function listed(help: string): string[][] {
  const section = help.split('\nCommands:\n')[1]?.split('\n\n')[0] ?? '';
  return section
    .split('\n')
    .map((line) => /^ {2}coffer ((?:[a-z][\w-]*(?: |$))+)/.exec(line)?.[1])
    .filter((words): words is string => words !== undefined)
    .map((words) => words.trim().split(/\s+/));
}

describe('coffer --help and --version', function () {
  this.timeout(120_000);

  it('every command and subcommand has an Examples section in its --help', async () => {
    const seen = new Map<string, string>();
    const walk = async (command: string[]): Promise<void> => {
      const r = await runCli([...command, '--help'], env);
      assert.equal(r.code, 0, `coffer ${command.join(' ')} --help: ${r.stderr}`);
      seen.set(command.join(' '), r.stdout);
      for (const sub of listed(r.stdout)) {
        if (sub.length > command.length && !seen.has(sub.join(' '))) await walk(sub);
      }
    };
    await walk([]);
    const commands = [...seen.keys()].filter((c) => c !== '');
    // The walk found the commands the issue names, and the nested ones.
    for (const expected of [
      'status',
      'init',
      'unseal',
      'seal',
      'replica',
      'replica status',
      'replica promote',
      'token',
      'policy',
      'group',
      'user',
      'role',
      'rm',
      'history',
      'undelete',
      'destroy',
      'rotate-master',
      'audit',
      'audit verify',
      'completion',
      'logout',
      'hsm init',
      'run',
    ]) {
      assert.ok(commands.includes(expected), `coffer --help lists ${expected} (found: ${commands.join(', ')})`);
    }
    const missing = [...seen]
      .filter(([, help]) => !/\nExamples:\n {2}\S/.test(help))
      .map(([c]) => `coffer ${c}`.trim());
    assert.deepEqual(missing, [], 'commands whose --help has no examples');
  });

  it('role --help shows only options role takes (not policy, group or user options)', async () => {
    const r = await runCli(['role', '--help'], env);
    assert.equal(r.code, 0, r.stderr);
    for (const other of ['--rule', '--member', '--password-env'])
      assert.ok(!r.stdout.includes(other), `role --help shows ${other}`);
    for (const own of ['--type', '--file', '--policy', '--group'])
      assert.ok(r.stdout.includes(own), `role --help lacks ${own}`);
    const policy = await runCli(['policy', '--help'], env);
    for (const other of ['--type', '--member', '--password-env', '--group'])
      assert.ok(!policy.stdout.includes(other), `policy --help shows ${other}`);
    // strict: another noun's option is refused rather than ignored
    const wrong = await runCli(['role', 'put', 'x', '--member', 'user:a'], env);
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /Unknown argument: member/);
  });

  it('coffer --version prints the version in package.json', async () => {
    // package.json from the compiled test file upwards (dist/test/cli or a build directory).
    let dir = dirname(fileURLToPath(import.meta.url));
    let pkg: { name?: string; version?: string } = {};
    for (;;) {
      pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8').catch(() => '{}')) as typeof pkg;
      if (pkg.name === 'coffer' || dirname(dir) === dir) break;
      dir = dirname(dir);
    }
    assert.match(pkg.version ?? '', /^\d+\.\d+\.\d+/);
    const r = await runCli(['--version'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${pkg.version}\n`);
  });

  it('coffer completion still prints the completion script, and completions still answer', async () => {
    const script = await runCli(['completion'], env);
    assert.equal(script.code, 0, script.stderr);
    assert.match(script.stdout, /###-begin-coffer-completions-###/);
    assert.match(script.stdout, /coffer --get-yargs-completions/);
    const answers = await runCli(['--get-yargs-completions', 'coffer', 'repl'], env);
    assert.equal(answers.code, 0, answers.stderr);
    assert.match(answers.stdout, /^replica/m);
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dotenv from 'dotenv';
import fc from 'fast-check';
import { CliError } from '../../cli/errors.js';
import { formatEnv } from '../../cli/commands/export.js';
import { tempDir } from '../helpers.js';
import { cliFixture, type CliFixture } from './cli-fixture.js';
import { netTrim, parseGithubEnv, runStep, runnerLines, unmasked } from './runner-rules.js';

/**
 * Every export format checked against its real reader: the `dotenv` package (both of its
 * parsers), bash `source`, and the GitHub Actions runner's rules (runner-rules.ts). For any value
 * the export either refuses, naming the variable and never the value, or the reader gets the
 * value back byte for byte.
 */
const RUNS = process.env.COFFER_LONG ? 5_000 : 200;

/** Values that each reader treats specially, mixed with arbitrary Unicode. */
const tricky = fc.constantFrom(
  "'",
  '"',
  '`',
  '\\',
  'n',
  'r',
  '\r',
  '\n',
  '\r\n',
  ' ',
  '\t',
  '#',
  '=',
  '$',
  '%',
  '%0A',
  '%25',
  '::',
  '##[',
  'stop-commands',
  'add-mask',
  '<<',
  'ghadelimiter_',
  '\u2028',
  '\u00a0',
  '\ufeff',
  '\u0085',
  'é',
  '😀',
  'a',
  'Z',
);
const valueArb = fc.oneof(
  { weight: 3, arbitrary: fc.array(tricky, { maxLength: 12 }).map((parts) => parts.join('')) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
);
const nameArb = fc.stringMatching(/^V_[A-Z0-9_]{0,6}$/);
const envArb = (names: fc.Arbitrary<string> = nameArb) =>
  fc.uniqueArray(fc.tuple(names, valueArb), { maxLength: 5, selector: ([n]) => n }).map((pairs) => new Map(pairs));

/** Refused: one CliError naming every variable it refuses and no value. */
function assertRefusal(e: unknown, env: Map<string, string>) {
  assert.ok(e instanceof CliError, String(e));
  assert.equal(e.code, 'invalid_input');
  assert.equal(e.exitCode, 1);
  assert.ok(
    [...env.keys()].some((name) => e.message.includes(name)),
    e.message,
  );
  // The dotenv reason names "a literal \n" itself: a value like " \n" is found in that text, not leaked.
  const shown = e.message.replaceAll('a literal \\n', '');
  for (const value of env.values())
    if (value.length >= 3 && !/^[\sA-Za-z_]*$/.test(value))
      assert.ok(!shown.includes(value), 'the error shows a value');
}

function tryFormat(format: 'dotenv' | 'shell' | 'github', env: Map<string, string>) {
  try {
    return formatEnv(format, env);
  } catch (e) {
    assertRefusal(e, env);
    return undefined;
  }
}

describe('export formats hold against their real readers', function () {
  this.timeout(120_000);

  describe('dotenv (the dotenv package)', () => {
    it('keeps quotes, dollars, backslashes, #, =, whitespace, CR and literal \\n exactly', () => {
      const values = [
        'say "hi"',
        "it's",
        'cost $5 and `id`',
        '  padded  ',
        'a#b',
        'k=v=w',
        '',
        'C:\\dir\\',
        'lit\\nnot-a-newline',
        'cr\rlf\ncrlf\r\n',
        'both \' and "',
        'all \' " ` three',
        '#leading',
        'tab\tend\t',
      ];
      const env = new Map(values.map((v, i) => [`V${i}`, v]));
      const out = formatEnv('dotenv', env).stdout;
      for (const fast of [false, true])
        assert.deepEqual(new Map(Object.entries(dotenv.parse(out, { fast }))), env, `fast: ${fast}`);
    });

    it('refuses a value no dotenv quoting can hold, naming the variable', () => {
      // A CR needs double quotes (dotenv turns every CR of the file into LF), and inside double quotes "…" and \n cannot be written.
      for (const value of ['a"b\rc', 'x\\ny\rz', 'all \' " ` three\nlines']) {
        assert.throws(
          () =>
            formatEnv(
              'dotenv',
              new Map([
                ['OK', 'fine'],
                ['BAD_ONE', value],
              ]),
            ),
          (e: Error) => {
            assertRefusal(e, new Map([['BAD_ONE', value]]));
            assert.ok(!e.message.includes('OK'), 'only the refused variable is named');
            return true;
          },
        );
      }
    });

    it('property: refused naming the variable, or dotenv.parse gives every value back', () => {
      fc.assert(
        fc.property(envArb(), (env) => {
          const out = tryFormat('dotenv', env);
          if (!out) return;
          for (const fast of [false, true])
            assert.deepEqual(
              new Map(Object.entries(dotenv.parse(out.stdout, { fast }))),
              env,
              `fast: ${fast}\n${JSON.stringify(out.stdout)}`,
            );
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe('shell (bash source)', () => {
    let dir: string;
    before(async () => (dir = await tempDir('coffer-export-shell-')));
    after(() => rm(dir, { recursive: true, force: true }));

    const sourced = (text: string, names: string[]): string[] => {
      const file = join(dir, 'env.sh');
      writeFileSync(file, text);
      const script = `source ${file}; printf '%s\\0' ${names.map((n) => `"$${n}"`).join(' ')}`;
      return execFileSync('bash', ['--norc', '--noprofile', '-c', script], {
        env: { PATH: process.env.PATH },
        encoding: 'utf8',
      })
        .split('\0')
        .slice(0, -1);
    };

    it('refuses names bash gives its own meaning (RANDOM would even run code from the value)', () => {
      for (const name of ['RANDOM', 'SECONDS', 'UID', 'BASHOPTS', 'OPTIND', '_']) {
        assert.throws(
          () => formatEnv('shell', new Map([[name, 'x[$(touch /tmp/coffer-pwned)]']])),
          (e: Error) => (assertRefusal(e, new Map([[name, '']])), true),
        );
      }
    });

    it('property: refused naming the variable, or bash reads every value back', () => {
      const specials = fc.constantFrom(
        'RANDOM',
        'SRANDOM',
        'SECONDS',
        'LINENO',
        'UID',
        'EUID',
        'PPID',
        'BASHPID',
        'BASH_SUBSHELL',
        'EPOCHSECONDS',
        'HISTCMD',
        'GROUPS',
        'FUNCNAME',
        'DIRSTACK',
        'OPTIND',
        'HOME',
        'LANG',
        'IFS',
        '_',
      );
      fc.assert(
        fc.property(envArb(fc.oneof({ weight: 4, arbitrary: nameArb }, { weight: 1, arbitrary: specials })), (env) => {
          const out = tryFormat('shell', env);
          if (!out || env.size === 0) return;
          assert.deepEqual(sourced(out.stdout, [...env.keys()]), [...env.values()], JSON.stringify(out.stdout));
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe('github (the Actions runner rules)', () => {
    /** Everything the runner would do with our stdout and our $GITHUB_ENV text. */
    function checkWithRunner(out: { stdout: string; githubEnv?: string }, env: Map<string, string>) {
      for (const splitMaskData of [true, false]) {
        const step = runStep(out.stdout, { splitMaskData });
        assert.deepEqual(
          new Set(step.commands.map((c) => c.command)),
          new Set([...env.values()].some((v) => netTrim(v)) ? ['add-mask'] : []),
          'only add-mask commands',
        );
        assert.equal(step.stopped, false, 'command processing never stopped');
        assert.deepEqual(step.logged, [], 'nothing printed in clear');
        for (const value of env.values())
          for (const line of runnerLines(value))
            assert.equal(
              netTrim(unmasked(line, step.masks)),
              '',
              `a value line shows through the masks (splitMaskData: ${splitMaskData})`,
            );
      }
      for (const os of ['linux', 'windows'] as const)
        assert.deepEqual(parseGithubEnv(out.githubEnv ?? '', os), env, `${os}: ${JSON.stringify(out.githubEnv)}`);
    }

    it('the runner-rules helper behaves as the runner sources say', () => {
      assert.deepEqual(runnerLines('a\rb\r\nc\n\nd'), ['a', 'b', 'c', '', 'd']);
      const step = runStep(
        '::add-mask::x%250Ay\n  ::ADD-MASK::p%0Aq\n::stop-commands::tok1234\n::add-mask::shown\n::tok1234::\n::add-mask::  \n::notacommand::z\n',
      );
      assert.deepEqual([...step.masks].sort(), ['p', 'p\nq', 'q', 'tok1234', 'x%0Ay'].sort());
      assert.deepEqual(step.logged, [
        '::stop-commands::tok1234',
        '::add-mask::shown',
        '::tok1234::',
        '::notacommand::z',
      ]);
      assert.equal(runStep('echo ##[stop-commands]tok\n').stopped, true, 'the legacy form counts anywhere in a line');
      assert.deepEqual(
        parseGithubEnv('A=1\nB<<EOF\nx\r\ny\nEOF\n'),
        new Map([
          ['A', '1'],
          ['B', 'x\r\ny'],
        ]),
      );
      assert.deepEqual(
        parseGithubEnv('B<<EOF\nx\r\nEOF\r\n', 'windows'),
        new Map([['B', 'x']]),
        'CRLF ends a line on Windows',
      );
      assert.throws(() => parseGithubEnv('B<<EOF\nx\n'), /Matching delimiter not found/);
    });

    it('masks every runner line: a lone CR does not hide a tail or stop commands, %0A is not decoded', () => {
      const env = new Map([
        ['A', 'x\r::stop-commands::pwned\rTAIL'],
        ['B', 'pa%0Ass'],
        ['C', 'second-value'],
      ]);
      const out = formatEnv('github', env);
      checkWithRunner(out, env);
      const { masks } = runStep(out.stdout);
      assert.ok(masks.has('pa%0Ass') && !masks.has('pa\nss'));
    });

    it('property: refused naming the variable, or the runner masks every line and sets every value', () => {
      fc.assert(
        fc.property(envArb(), (env) => {
          const out = tryFormat('github', env);
          if (out) checkWithRunner(out, env);
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe('through the CLI binary and a real server', () => {
    let cli: CliFixture;
    let dir: string;
    const run = (args: string[], options: { env?: NodeJS.ProcessEnv; stdin?: string } = {}) => cli.run(args, options);
    /** A secret whose values hold any bytes: written as JSON through stdin files. */
    const put = async (path: string, data: Record<string, string>) => {
      const args = ['put', path];
      for (const [k, v] of Object.entries(data)) {
        const file = join(dir, `${path.replace(/\//g, '_')}-${k}`);
        await writeFile(file, v);
        args.push(`${k}=@${file}`);
      }
      const res = await run(args);
      assert.equal(res.code, 0, res.stderr);
    };

    before(async () => {
      cli = await cliFixture('coffer-export-cli-');
      dir = cli.dir;
    });
    after(() => cli.close());

    it('github: a value cannot stop commands or unmask its tail, and the runner reads every value back', async () => {
      const data = { a: 'x\r::stop-commands::pwned\rTAIL', b: 'pa%0Ass', c: 'next-secret\nline two' };
      await put('exp/gh', data);
      const githubEnv = join(dir, 'github_env');
      await writeFile(githubEnv, '');
      const res = await run(['export', '--path', 'exp/gh', '--format', 'github'], { env: { GITHUB_ENV: githubEnv } });
      assert.equal(res.code, 0, res.stderr);
      const step = runStep(res.stdout);
      assert.equal(step.stopped, false, 'the value stopped command processing');
      assert.deepEqual(step.logged, [], 'lines printed in clear');
      for (const value of Object.values(data))
        for (const line of runnerLines(value))
          assert.equal(netTrim(unmasked(line, step.masks)), '', 'a value line is not masked');
      assert.ok(!step.masks.has('pa\nss'));
      assert.deepEqual(
        parseGithubEnv(await readFile(githubEnv, 'utf8')),
        new Map([
          ['A', data.a],
          ['B', data.b],
          ['C', data.c],
        ]),
      );
    });

    it('dotenv: dotenv.parse gives back quotes, $, backslashes and newlines; an unholdable value is refused by name', async () => {
      const data = {
        say: 'say "hi"',
        mixed: 'multi\nline "quoted" \'single\' $HOME \\ end',
        lit: 'not\\na newline',
        winpath: 'C:\\dir\\',
      };
      await put('exp/dotenv', data);
      const res = await run(['export', '--path', 'exp/dotenv', '--format', 'dotenv']);
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(dotenv.parse(res.stdout), {
        SAY: data.say,
        MIXED: data.mixed,
        LIT: data.lit,
        WINPATH: data.winpath,
      });

      const bad = 'zq-secret\rvalue and "quotes"';
      await put('exp/dotenv-bad', { ok: 'ok-zq-value', bad_one: bad });
      const refused = await run(['export', '--path', 'exp/dotenv-bad', '--format', 'dotenv']);
      assert.equal(refused.code, 1);
      assert.equal(refused.stdout, '', 'nothing written');
      assert.match(refused.stderr, /BAD_ONE/);
      assert.ok(!refused.stderr.includes('zq-secret') && !refused.stderr.includes('ok-zq-value'), refused.stderr);
    });

    it('run --file finds a key named constructor or toString only where it really is (Object.hasOwn)', async () => {
      await put('exp/first', { other: 'x' });
      await put('exp/second', { constructor: 'ctor-value' });
      const script = "process.stdout.write(require('fs').readFileSync(process.env.CTOR_FILE, 'utf8'))";
      const res = await run([
        'run',
        '--path',
        'exp/first',
        '--path',
        'exp/second',
        '--file',
        'constructor=CTOR_FILE',
        '--',
        process.execPath,
        '-e',
        script,
      ]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout, 'ctor-value');
      const missing = await run(['run', '--path', 'exp/first', '--file', 'toString=X_FILE', '--', 'true']);
      assert.equal(missing.code, 4, missing.stderr);
      assert.match(missing.stderr, /no fetched secret has a key toString/);
    });
  });
});

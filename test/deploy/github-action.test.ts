import assert from 'node:assert/strict';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { Coffer } from '../../sdk/client.js';
import { nodeHttpTransport } from '../../sdk/transport.js';
import { loadConfig } from '../../server/config.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { InputError, parseSecrets } from '../../deploy/github-action/src/inputs.js';
import { runCli } from '../cli/cli-fixture.js';
import { parseGithubEnv, runStep } from '../cli/runner-rules.js';
import { silentLog, tempDir } from '../helpers.js';
import { startIssuer, type TestIssuer } from '../oidc-issuer.js';
import { ACTION_DIR, runActionStep, startTokenEndpoint, type StepRun, type TokenEndpoint } from './action-runner.js';

/** Every line of a value as the runner's masker must know it (lines at CRLF, CR or LF; blank ones reveal nothing). */
const valueLines = (value: string) =>
  value
    .split(/\r\n|\r|\n/)
    .map((l) => l.trim())
    .filter(Boolean);

const SECRETS = {
  'ci/api/db': { username: 'api', password: 'pw-%0A-not-a-newline' },
  'ci/api/cert': { pem: '-----BEGIN CERTIFICATE-----\nMIIB\r\nxyz\r-----END CERTIFICATE-----' },
  // A value that looks like a heredoc delimiter line and a file-command line.
  'ci/api/tricky': {
    eof: 'EOF',
    delimiter:
      'ghadelimiter_00000000000000000000000000000000\nSMUGGLED=1\nghadelimiter_00000000000000000000000000000000',
  },
  'ci/web/db': { password: 'not-for-this-job' },
};

describe('GitHub Action (deploy/github-action) run as the runner runs it', function () {
  this.timeout(60_000);
  let dir: string;
  let server: RunningServer;
  let caPem: string;
  let admin: Coffer;
  let idp: TestIssuer;
  let runnerTokens: TokenEndpoint;
  let n = 0;

  const ca = () => ({ transport: nodeHttpTransport({ ca: caPem }) });
  /** The step's environment: only what a runner gives a node action (no COFFER_* from this process). */
  const stepEnv = (inputs: Record<string, string>, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    GITHUB_WORKSPACE: dir,
    RUNNER_TEMP: join(dir, 'runner-temp'),
    ...runnerTokens.env,
    ...Object.fromEntries(
      Object.entries({
        addr: server.url,
        role: 'github-api',
        audience: 'coffer',
        'ca-cert': caPem,
        secrets: '',
        'export-env': 'true',
        outputs: 'false',
        'token-only': 'false',
        ...inputs,
      }).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v]),
    ),
    ...extra,
  });
  const step = async (env: NodeJS.ProcessEnv, options: { watch?: boolean } = {}): Promise<StepRun> => {
    const stepDir = join(dir, `step-${++n}`);
    await mkdir(stepDir);
    return runActionStep(stepDir, env, options);
  };
  const stateOf = (run: StepRun) => parseGithubEnv(run.files.GITHUB_STATE);
  const tokenIsLive = async (token: string) =>
    new Coffer({ addr: server.url, token, ...ca() }).tokenSelf().then(
      () => true,
      (e: { code?: string }) => (e.code === 'unauthenticated' ? false : Promise.reject(e)),
    );
  const post = (inputs: Record<string, string>, state: Map<string, string>) =>
    step(stepEnv(inputs, Object.fromEntries([...state].map(([k, v]) => [`STATE_${k}`, v]))));

  before(async () => {
    dir = await tempDir('coffer-action-');
    await mkdir(join(dir, 'runner-temp'));
    server = await startServer(
      await loadConfig({ flags: { dev_tls: true, data_dir: join(dir, 'vault'), listen: '127.0.0.1:0' } }),
      { log: silentLog },
    );
    if (!server.tls?.caFile || !server.rootToken) throw new Error('a dev-tls server has a CA file and a root token');
    caPem = await readFile(server.tls.caFile, 'utf8');
    admin = new Coffer({ addr: server.url, token: server.rootToken, ...ca() });
    idp = await startIssuer({
      claims: { repository: 'acme/api', repository_id: '42', ref: 'refs/heads/main' },
      subject: 'repo:acme/api:ref:refs/heads/main',
    });
    runnerTokens = await startTokenEndpoint((audience) => idp.sign({}, { audience }));
    await admin.admin('policy').put('ci-api-read', { rules: [{ path: 'ci/api/*', capabilities: ['read', 'list'] }] });
    await admin.admin('group').put('ci-api', { policies: ['ci-api-read'] });
    await admin.admin('jwt').put('github-api', {
      issuer: idp.issuer,
      jwks_url: idp.jwksUrl,
      bound_audiences: ['coffer'],
      bound_claims: { repository: 'acme/api', repository_id: '42', ref: 'refs/heads/main' },
      groups: ['ci-api'],
    });
    for (const [path, data] of Object.entries(SECRETS)) await admin.putSecret(path, { data });
  });
  after(async () => {
    await runnerTokens?.close();
    await idp?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('main masks every value line before writing it, GITHUB_ENV and GITHUB_OUTPUT parse to the values, post revokes the token', async () => {
    const secrets = [
      '# the API job',
      'ci/api/db password | DB_PASSWORD',
      'ci/api/db username',
      '',
      'ci/api/cert pem | TLS_CERT',
      'ci/api/tricky eof | EOF_VALUE',
      'ci/api/tricky delimiter | DELIM',
    ].join('\n');
    const run = await step(stepEnv({ secrets, outputs: 'true' }), { watch: true });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const expected = new Map([
      ['DB_PASSWORD', SECRETS['ci/api/db'].password],
      ['USERNAME', SECRETS['ci/api/db'].username],
      ['TLS_CERT', SECRETS['ci/api/cert'].pem],
      ['EOF_VALUE', 'EOF'],
      ['DELIM', SECRETS['ci/api/tricky'].delimiter],
    ]);
    assert.deepEqual(parseGithubEnv(run.files.GITHUB_ENV), expected);
    assert.deepEqual(parseGithubEnv(run.files.GITHUB_OUTPUT), expected);
    // What the runner registered from stdout, and what it had registered when each file was first written.
    const masks = runStep(run.stdout).masks;
    for (const file of ['GITHUB_ENV', 'GITHUB_OUTPUT'] as const) {
      const before = run.stdoutAtFirstWrite[file];
      assert.ok(before !== undefined, `${file} was written`);
      const maskedBefore = runStep(before).masks;
      for (const [name, value] of expected)
        for (const line of valueLines(value))
          assert.ok(maskedBefore.has(line), `${name}: line ${JSON.stringify(line)} masked before ${file} was written`);
    }
    // The one line the step logs names the variables, never a value (the runner would mask one anyway).
    assert.deepEqual(runStep(run.stdout).logged, [
      'coffer: logged in with role github-api; 5 value(s) masked and set as environment and step outputs: DB_PASSWORD, USERNAME, TLS_CERT, EOF_VALUE, DELIM',
    ]);
    assert.ok(
      !parseGithubEnv(run.files.GITHUB_ENV).has('SMUGGLED'),
      'a value holding a delimiter-like line sets nothing else',
    );
    assert.deepEqual(runnerTokens.requests.slice(-1), ['coffer'], 'the ID token was asked for the audience input');

    const state = stateOf(run);
    const token = state.get('coffer_token');
    assert.ok(token, 'the token is kept for post');
    assert.ok(masks.has(token), 'the token is masked');
    assert.equal(await tokenIsLive(token), true);
    assert.equal(state.get('coffer_phase'), 'post');

    const after = await post({ secrets }, state);
    assert.equal(after.code, 0, after.stdout + after.stderr);
    assert.match(after.stdout, /coffer: token revoked/);
    assert.equal(await tokenIsLive(token), false, 'revoked after post');
    assert.equal(after.files.GITHUB_ENV, '', 'post exports nothing');
  });

  it('exports a whole prefix with a name prefix', async () => {
    const ok = await step(stepEnv({ secrets: 'ci/api/* | API_' }));
    assert.equal(ok.code, 0, ok.stderr);
    const env = parseGithubEnv(ok.files.GITHUB_ENV);
    assert.deepEqual([...env.keys()].sort(), ['API_DELIMITER', 'API_EOF', 'API_PASSWORD', 'API_PEM', 'API_USERNAME']);
    assert.equal(env.get('API_PEM'), SECRETS['ci/api/cert'].pem);
  });

  it('fails naming a value no file command can carry, with nothing masked or written', async () => {
    await admin.putSecret('ci/odd/cr', { data: { fine: 'a fine value', bad: 'ends in CR\r' } });
    await admin.admin('policy').put('ci-api-read', {
      rules: [
        { path: 'ci/api/*', capabilities: ['read', 'list'] },
        { path: 'ci/odd/*', capabilities: ['read', 'list'] },
      ],
    });
    const run = await step(stepEnv({ secrets: 'ci/odd/* | ODD_\nci/api/db password' }));
    assert.equal(run.code, 1);
    assert.match(
      run.stdout,
      /::error::coffer: cannot hand these to later steps:%0A  ODD_BAD ends in a carriage return/,
    );
    assert.equal(run.files.GITHUB_ENV, '');
    assert.deepEqual(
      [...runStep(run.stdout).masks],
      [stateOf(run).get('coffer_token')],
      'no value masked or written: nothing half-done',
    );
  });

  it('fails on a path the role cannot read: nothing exported, nothing masked but the token, which post revokes', async () => {
    const run = await step(stepEnv({ secrets: 'ci/api/db password | DB_PASSWORD\nci/web/db password | WEB_PASSWORD' }));
    assert.equal(run.code, 1);
    assert.match(run.stdout, /::error::coffer: cannot read ci\/web\/db: .*: give the role a policy with read on it/);
    assert.equal(run.files.GITHUB_ENV, '');
    const token = stateOf(run).get('coffer_token');
    assert.ok(token);
    assert.deepEqual([...runStep(run.stdout).masks], [token]);
    assert.ok(!run.stdout.includes(SECRETS['ci/api/db'].password));
    const after = await post({}, stateOf(run));
    assert.equal(after.code, 0);
    assert.equal(await tokenIsLive(token), false);
  });

  it('names the malformed secrets line and asks the runner for no token', async () => {
    const before = runnerTokens.requests.length;
    const run = await step(stepEnv({ secrets: 'ci/api/db password | DB_PASSWORD\nci/api/db password DB_PASSWORD' }));
    assert.equal(run.code, 1);
    assert.match(
      run.stdout,
      /^::error::coffer: input secrets, line 2 \(ci\/api\/db password DB_PASSWORD\): expected "path key \| ENV_NAME" or "path\/\* \| PREFIX_"$/m,
    );
    assert.equal(run.files.GITHUB_ENV, '');
    assert.equal(runnerTokens.requests.length, before);
    const after = await post({}, stateOf(run));
    assert.equal(after.code, 0);
    assert.match(after.stdout, /no token to revoke/);
  });

  it('explains a job without id-token: write', async () => {
    const env = stepEnv({ secrets: 'ci/api/db password' });
    delete env.ACTIONS_ID_TOKEN_REQUEST_URL;
    delete env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
    const run = await step(env);
    assert.equal(run.code, 1);
    assert.match(
      run.stdout,
      /::error::coffer: this job cannot get an OIDC token .*add `permissions: id-token: write` to the job/,
    );
    assert.equal(run.files.GITHUB_ENV, '');
    assert.deepEqual([...stateOf(run).keys()], ['coffer_phase']);
  });

  it('refuses plain http to a non-loopback host before anything is sent', async () => {
    const before = runnerTokens.requests.length;
    const run = await step(stepEnv({ addr: 'http://vault.example.com:8740', secrets: 'ci/api/db password' }));
    assert.equal(run.code, 1);
    assert.match(
      run.stdout,
      /::error::coffer: input addr: refusing plain http to vault\.example\.com:8740; use https:\/\//,
    );
    assert.equal(runnerTokens.requests.length, before);
  });

  it("refuses a role login the server refuses, with the server's reason", async () => {
    const run = await step(stepEnv({ secrets: 'ci/api/db password', audience: 'not-coffer' }));
    assert.equal(run.code, 1);
    assert.match(run.stdout, /::error::coffer: .*aud/);
    assert.equal(run.files.GITHUB_ENV, '');
  });

  it('token-only hands COFFER_ADDR, COFFER_TOKEN and COFFER_CACERT to a later step that runs the coffer CLI', async () => {
    const run = await step(stepEnv({ 'token-only': 'true' }));
    assert.equal(run.code, 0, run.stdout);
    const env = parseGithubEnv(run.files.GITHUB_ENV);
    assert.deepEqual([...env.keys()], ['COFFER_ADDR', 'COFFER_TOKEN', 'COFFER_CACERT']);
    const token = env.get('COFFER_TOKEN') ?? '';
    assert.deepEqual(
      [...runStep(run.stdout).masks],
      [token],
      'the token is masked; the address and the CA path are not secret',
    );
    const later = await runCli(['get', 'ci/api/db', '--field', 'password'], {
      PATH: process.env.PATH,
      HOME: dir,
      ...Object.fromEntries(env),
    });
    assert.equal(later.stdout, `${SECRETS['ci/api/db'].password}\n`, later.stderr);
    await post({ 'token-only': 'true' }, stateOf(run));
    assert.equal(await tokenIsLive(token), false);
  });

  it('checks its inputs: booleans, the CA, and where the values go', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ 'export-env': 'yes', secrets: 'a b' }, /input export-env: expected true or false, got "yes"/],
      [{ 'export-env': 'false', outputs: 'false', secrets: 'a b' }, /inputs export-env and outputs are both false/],
      [{ secrets: '' }, /input secrets is empty/],
      [{ role: '' }, /input role is required/],
      [
        { 'ca-cert': 'no-such-ca.pem', secrets: 'a b' },
        /input ca-cert: neither a PEM certificate nor a readable file \(ENOENT reading no-such-ca\.pem\)/,
      ],
      [{ addr: 'vault:8740', secrets: 'a b' }, /input addr: vault: is not http\(s\)/],
    ];
    for (const [inputs, message] of cases) {
      const run = await step(stepEnv(inputs));
      assert.equal(run.code, 1, JSON.stringify(inputs));
      assert.match(run.stdout, message);
      assert.equal(run.files.GITHUB_ENV, '');
    }
  });
});

describe('GitHub Action: the secrets input', () => {
  it('parses key lines, default names, prefixes and comments', () => {
    assert.deepEqual(
      parseSecrets('ci/api/db password | DB_PASSWORD\n  ci/api/db db-user  \n# skipped\n\r\nci/api/* | API_\nci/web/*'),
      [
        { kind: 'key', path: 'ci/api/db', key: 'password', name: 'DB_PASSWORD' },
        { kind: 'key', path: 'ci/api/db', key: 'db-user', name: 'DB_USER' },
        { kind: 'prefix', prefix: 'ci/api', namePrefix: 'API_' },
        { kind: 'prefix', prefix: 'ci/web', namePrefix: '' },
      ],
    );
  });

  it('refuses each bad line, naming it', () => {
    const bad: [string, RegExp][] = [
      ['ci/api/db', /line 1 \(ci\/api\/db\): expected "path key \| ENV_NAME"/],
      ['ci/api/db password | db_password', /line 1 .*"db_password" is not a variable name/],
      ['ci/api/db password | LD_PRELOAD', /line 1 .*LD_PRELOAD would change how later steps run programs/],
      ['ci/api/db password | A | B', /line 1 .*expected/],
      ['ok/x k\n../etc/passwd k', /line 2 \(\.\.\/etc\/passwd k\): path \.\.\/etc\/passwd/],
      ['sys/x k', /line 1 .*sys\/x/],
      ['ci/api/* | 9X', /line 1 .*prefix "9X"/],
      ['ci/api/* FOO', /line 1 .*path ci\/api\/\*/],
    ];
    for (const [text, message] of bad)
      assert.throws(
        () => parseSecrets(text),
        (e: unknown) => e instanceof InputError && message.test(e.message),
        text,
      );
  });
});

describe('GitHub Action: the committed files', () => {
  it('action.yml runs the one bundle as node20 main and post, and declares exactly the inputs the code reads', async () => {
    const meta = z
      .object({
        inputs: z.record(
          z.string(),
          z.object({ description: z.string(), required: z.boolean().optional(), default: z.string().optional() }),
        ),
        runs: z.object({ using: z.literal('node20'), main: z.string(), post: z.string(), 'post-if': z.string() }),
      })
      .parse(parseYaml(await readFile(join(ACTION_DIR, 'action.yml'), 'utf8')));
    assert.equal(meta.runs.main, 'dist/index.mjs');
    assert.equal(meta.runs.post, meta.runs.main);
    assert.equal(meta.runs['post-if'], 'always()', 'the token is revoked even when a step failed');
    const source = await readFile(join(ACTION_DIR, 'src', 'inputs.ts'), 'utf8');
    const read = new Set([...source.matchAll(/(?:input|readBoolean)\(env, '([a-z-]+)'/g)].map((m) => m[1]));
    assert.deepEqual([...read].sort(), Object.keys(meta.inputs).sort());
  });

  it('the committed dist/index.mjs is what build.mjs makes from the current sources (run npm run build and commit it)', async function () {
    this.timeout(30_000);
    const built: Record<string, unknown> = await import(pathToFileURL(join(ACTION_DIR, 'build.mjs')).href);
    const bundle = built.bundle;
    if (typeof bundle !== 'function') throw new Error('build.mjs exports bundle()');
    const fresh: unknown = await bundle();
    assert.equal(typeof fresh, 'string');
    const committed = await readFile(join(ACTION_DIR, 'dist', 'index.mjs'), 'utf8');
    assert.ok(fresh === committed, 'deploy/github-action/dist/index.mjs is stale: run npm run build and commit it');
  });

  it('the bundle holds no server or CLI code', async () => {
    const text = await readFile(join(ACTION_DIR, 'dist', 'index.mjs'), 'utf8');
    const sources = [...text.matchAll(/^\/\/ (\S+\.ts)$/gm)].map((m) => m[1] ?? '');
    assert.ok(sources.length > 3, 'esbuild marks each source file');
    for (const s of sources) assert.match(s, /^(sdk|deploy\/github-action\/src)\//, s);
  });
});

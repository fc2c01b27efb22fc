import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { Coffer } from '../../sdk/client.js';
import { nodeHttpTransport } from '../../sdk/transport.js';
import { loadConfig } from '../../server/config.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { silentLog, tempDir } from '../helpers.js';
import { CLI } from '../integration/server-process.js';
import { startIssuer, type TestIssuer } from '../oidc-issuer.js';
import { ROOT } from './action-runner.js';

const job = z
  .object({
    extends: z.string().optional(),
    id_tokens: z.record(z.string(), z.object({ aud: z.string() })).optional(),
    variables: z.record(z.string(), z.string()).optional(),
    before_script: z.array(z.string()).optional(),
    script: z.array(z.string()).optional(),
    after_script: z.array(z.string()).optional(),
  })
  .passthrough();
type Job = z.infer<typeof job>;

const readJobs = async (file: string) =>
  z.record(z.string(), z.unknown()).parse(parseYaml(await readFile(join(ROOT, 'deploy', 'gitlab', file), 'utf8')));

/** GitLab's `extends`: hashes merged deeply, the extending job winning; arrays and scalars replaced whole. */
function merge(base: unknown, over: unknown): unknown {
  const isHash = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isHash(base) || !isHash(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? merge(base[k], v) : v;
  return out;
}

interface Shell {
  code: number | null;
  log: string;
}

/**
 * One GitLab shell executor script: bash with `set -eo pipefail`, the lines in order
 * (before_script and script share one shell; after_script gets its own, as in GitLab).
 */
function bash(lines: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Shell> {
  return new Promise((done) => {
    const child = spawn('bash', ['-c', ['set -eo pipefail', ...lines].join('\n')], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    child.once('exit', (code) => done({ code, log }));
  });
}

describe('GitLab CI template (deploy/gitlab) run under bash against a real server', function () {
  this.timeout(60_000);
  let dir: string;
  let server: RunningServer;
  let caFile: string;
  let idp: TestIssuer;
  let deploy: Job;
  let n = 0;
  const DB = { username: 'deployer', password: "it's a\nmulti-line $(not run) pass" };

  before(async () => {
    dir = await tempDir('coffer-gitlab-');
    server = await startServer(
      await loadConfig({ flags: { dev_tls: true, data_dir: join(dir, 'vault'), listen: '127.0.0.1:0' } }),
      { log: silentLog },
    );
    if (!server.tls?.caFile || !server.rootToken) throw new Error('a dev-tls server has a CA file and a root token');
    caFile = server.tls.caFile;
    const admin = new Coffer({
      addr: server.url,
      token: server.rootToken,
      transport: nodeHttpTransport({ ca: await readFile(caFile, 'utf8') }),
    });
    idp = await startIssuer({
      claims: { project_id: '42', project_path: 'acme/api', ref_protected: 'true' },
      subject: 'project_path:acme/api:ref_type:branch:ref:main',
    });
    await admin
      .admin('policy')
      .put('deploy-prod', { rules: [{ path: 'deploy/prod/*', capabilities: ['read', 'list'] }] });
    await admin.admin('group').put('deployers', { policies: ['deploy-prod'] });
    await admin.admin('jwt').put('gitlab-deploy', {
      issuer: idp.issuer,
      jwks_url: idp.jwksUrl,
      bound_audiences: ['coffer'],
      bound_claims: { project_id: '42', ref_protected: 'true' },
      groups: ['deployers'],
    });
    await admin.putSecret('deploy/prod/db', { data: DB });
    await admin.putSecret('deploy/prod/api', { data: { api_key: 'k-123' } });
    const jobs = await readJobs('example.gitlab-ci.yml');
    const hidden = (await readJobs('coffer.gitlab-ci.yml'))['.coffer-secrets'];
    const example = job.parse(jobs.deploy);
    assert.equal(example.extends, '.coffer-secrets');
    deploy = job.parse(merge(hidden, example));
  });
  after(async () => {
    await idp?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A job's workspace: the coffer CLI on PATH, deploy.sh and migrate.sh recording what they were given. */
  async function workspace() {
    const ws = join(dir, `job-${++n}`);
    await mkdir(join(ws, 'bin'), { recursive: true });
    await writeFile(join(ws, 'bin', 'coffer'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, {
      mode: 0o755,
    });
    await writeFile(
      join(ws, 'deploy.sh'),
      `#!/bin/sh\nprintf '%s' "$PASSWORD" > run-password; printf '%s' "$USERNAME" > run-username; printf '%s' "$API_KEY" > run-api-key\n`,
      { mode: 0o755 },
    );
    await writeFile(join(ws, 'migrate.sh'), `#!/bin/sh\nprintf '%s' "$PASSWORD" > export-password\n`, { mode: 0o755 });
    return ws;
  }
  const jobEnv = (ws: string, idToken: string | undefined): NodeJS.ProcessEnv => ({
    PATH: `${join(ws, 'bin')}:${process.env.PATH}`,
    HOME: join(ws, 'home'),
    ...deploy.variables,
    // Project CI/CD variables win over the job's (GitLab's precedence): the test server and its CA file.
    COFFER_ADDR: server.url,
    COFFER_CACERT: caFile,
    CI_COMMIT_REF_PROTECTED: 'true',
    ...(idToken === undefined ? {} : { COFFER_ID_TOKEN: idToken }),
  });
  const tokenFile = (ws: string) => join(ws, 'home', '.config', 'coffer', 'token');

  it('the hidden job asks for an id_token with aud coffer and logs in and out around the script', () => {
    assert.deepEqual(deploy.id_tokens, { COFFER_ID_TOKEN: { aud: 'coffer' } });
    assert.deepEqual(deploy.before_script, ['coffer login gitlab --role "$COFFER_ROLE" --jwt-env COFFER_ID_TOKEN']);
    assert.deepEqual(deploy.after_script, ['coffer logout']);
  });

  it('runs the example job: secrets reach coffer run and the exported shell, none in the log, the token revoked in after_script', async () => {
    const ws = await workspace();
    const aud = deploy.id_tokens?.COFFER_ID_TOKEN?.aud;
    const env = jobEnv(ws, await idp.sign({}, { audience: aud }));
    const main = await bash([...(deploy.before_script ?? []), ...(deploy.script ?? [])], ws, env);
    assert.equal(main.code, 0, main.log);
    assert.equal(await readFile(join(ws, 'run-password'), 'utf8'), DB.password);
    assert.equal(await readFile(join(ws, 'run-username'), 'utf8'), DB.username);
    assert.equal(await readFile(join(ws, 'run-api-key'), 'utf8'), 'k-123');
    assert.equal(
      await readFile(join(ws, 'export-password'), 'utf8'),
      DB.password,
      'eval of --format shell sets the exact value',
    );
    for (const value of [DB.password, 'k-123', ...DB.password.split('\n')])
      assert.ok(!main.log.includes(value), 'no secret in the job log');
    assert.match(main.log, /logged in as jwt:gitlab-deploy:project_path:acme\/api/);
    const token = (await readFile(tokenFile(ws), 'utf8')).trim();
    assert.equal((await stat(tokenFile(ws))).mode & 0o777, 0o600);
    const after = await bash(deploy.after_script ?? [], ws, env);
    assert.equal(after.code, 0, after.log);
    await assert.rejects(stat(tokenFile(ws)), { code: 'ENOENT' });
    const self = await bash([`COFFER_TOKEN='${token}' coffer token self`], ws, env);
    assert.equal(self.code, 3, `the job token no longer works (exit 3: auth): ${self.log}`);
  });

  it('stops before the script when the token is from an unprotected ref, saying why', async () => {
    const ws = await workspace();
    const env = jobEnv(ws, await idp.sign({ ref_protected: 'false' }));
    const main = await bash([...(deploy.before_script ?? []), ...(deploy.script ?? [])], ws, env);
    assert.notEqual(main.code, 0);
    assert.match(main.log, /login failed: claim ref_protected does not match the role/);
    await assert.rejects(stat(join(ws, 'run-password')), { code: 'ENOENT' }, 'deploy.sh never ran');
    assert.equal((await bash(deploy.after_script ?? [], ws, env)).code, 0, 'after_script with nothing to revoke');
  });

  it('says to declare id_tokens when the job has none', async () => {
    const ws = await workspace();
    const main = await bash(deploy.before_script ?? [], ws, jobEnv(ws, undefined));
    assert.notEqual(main.code, 0);
    assert.match(
      main.log,
      /COFFER_ID_TOKEN is not set: declare it under id_tokens: in \.gitlab-ci\.yml with aud: coffer/,
    );
  });
});

import { mkdtemp, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loginGithubActions } from '../../../sdk/ci-login.js';
import { Coffer } from '../../../sdk/client.js';
import { CofferError } from '../../../sdk/errors.js';
import { envNameOf, ENV_NAME, isDangerousName } from '../../../sdk/env-names.js';
import { Unrepresentable, githubEnvBlock, githubFileBlock, githubMasks } from '../../../sdk/github-commands.js';
import { nodeHttpTransport } from '../../../sdk/transport.js';
import type { Secret } from '../../../sdk/wire/types.js';
import { InputError, readConnection, readInputs, type Inputs, type SecretRequest } from './inputs.js';

/**
 * The Coffer GitHub Action (README "Use in CI"): `main` logs the job in with its OIDC token,
 * reads the listed secrets, masks every value and hands them to later steps; `post` revokes the
 * token. Both run from the one bundled file; the runner gives `post` the state `main` saved.
 */
export interface Runner {
  env: NodeJS.ProcessEnv;
  /** The step's stdout, which the runner scans for workflow commands. */
  write(text: string): void;
  appendFile(path: string, text: string): Promise<void>;
  readFile(path: string): Promise<string>;
}

/** State names; the runner hands them to `post` as STATE_<name>. */
const PHASE = 'coffer_phase';
const TOKEN = 'coffer_token';

/** Workflow command data is escaped as the runner unescapes it (ActionCommand.cs). */
const commandData = (s: string) => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');

function fileCommand(env: NodeJS.ProcessEnv, name: 'GITHUB_ENV' | 'GITHUB_OUTPUT' | 'GITHUB_STATE'): string {
  const path = env[name];
  if (!path)
    throw new InputError(
      `${name} is not set: this action runs as a step of a GitHub Actions job (runs-on a runner of version 2.297 or later)`,
    );
  return path;
}

/** A relative `ca-cert` path is in the workspace (the checkout), as the runner sets it. */
const workspaceFile = (runner: Runner) => (path: string) =>
  runner.readFile(resolve(runner.env.GITHUB_WORKSPACE ?? '.', path));

const client = (inputs: Pick<Inputs, 'addr' | 'caCert'>, token: string) =>
  // token '' and namespace '': the job's own login, never a COFFER_TOKEN or COFFER_NAMESPACE left by an earlier step.
  new Coffer({
    addr: inputs.addr,
    token,
    namespace: '',
    transport: nodeHttpTransport(inputs.caCert === undefined ? {} : { ca: inputs.caCert }),
  });

async function login(inputs: Inputs, env: NodeJS.ProcessEnv): Promise<{ coffer: Coffer; token: string }> {
  if (!env.ACTIONS_ID_TOKEN_REQUEST_URL || !env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
    throw new InputError(
      'this job cannot get an OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL is not set): add `permissions: id-token: write` to the job or the workflow; pull_request runs from forks never get one',
    );
  }
  const coffer = client(inputs, '');
  const result = await loginGithubActions(coffer, { role: inputs.role, audience: inputs.audience, env });
  return { coffer, token: result.token };
}

const readHint = (code: string) =>
  code === 'forbidden'
    ? ': give the role a policy with read on it'
    : code === 'not_found'
      ? ': check the path in input secrets'
      : '';

/** Every secret the requests name, in one batch per 100 paths; the first refusal fails them all. */
async function fetchAll(coffer: Coffer, requests: SecretRequest[]): Promise<Map<string, Secret>> {
  const paths = new Set<string>();
  for (const r of requests) {
    if (r.kind === 'key') {
      paths.add(r.path);
      continue;
    }
    let found = 0;
    for await (const path of coffer.list(r.prefix)) {
      if (path === r.prefix) continue;
      paths.add(path);
      found++;
    }
    if (found === 0)
      throw new InputError(`input secrets: no secrets under ${r.prefix}/ (or the role may not list them)`);
  }
  const all = [...paths];
  const secrets = new Map<string, Secret>();
  for (let i = 0; i < all.length; i += 100) {
    const { secrets: got, errors } = await coffer.batchGet(all.slice(i, i + 100));
    const [failed] = Object.entries(errors);
    if (failed) throw new InputError(`cannot read ${failed[0]}: ${failed[1].message}${readHint(failed[1].code)}`);
    for (const [path, secret] of Object.entries(got)) secrets.set(path, secret);
  }
  return secrets;
}

/** Variable name to value; a missing key, a bad or dangerous name or two keys on one name fail with every problem named. */
function variables(requests: SecretRequest[], secrets: Map<string, Secret>): Map<string, string> {
  const values = new Map<string, string>();
  const origin = new Map<string, string>();
  const problems: string[] = [];
  const set = (name: string, value: string, from: string) => {
    if (!ENV_NAME.test(name))
      problems.push(`${from} -> "${name}" is not a variable name (write it as "path key | NAME")`);
    else if (isDangerousName(name))
      problems.push(`${from} -> ${name} would change how later steps run programs (write it as "path key | NAME")`);
    else if (origin.has(name)) problems.push(`${from} and ${origin.get(name)} both set ${name}`);
    else {
      values.set(name, value);
      origin.set(name, from);
    }
  };
  for (const r of requests) {
    if (r.kind === 'key') {
      const data = secrets.get(r.path)?.data ?? {};
      const value = data[r.key];
      if (value === undefined)
        problems.push(`${r.path} has no key ${r.key} (its keys: ${Object.keys(data).join(', ') || 'none'})`);
      else set(r.name, value, `${r.path} ${r.key}`);
      continue;
    }
    for (const [path, secret] of secrets) {
      if (!path.startsWith(`${r.prefix}/`)) continue;
      for (const [key, value] of Object.entries(secret.data))
        set(envNameOf(key, r.namePrefix), value, `${path} ${key}`);
    }
  }
  if (problems.length > 0) throw new InputError(`input secrets:\n  ${problems.join('\n  ')}`);
  return values;
}

/**
 * Everything to write, built before anything is written: a value no file command can carry fails
 * the step with nothing exported. Every value is masked but those named in `clear` (token-only's
 * address and CA path, which are not secret and would only blank the log).
 */
function render(
  values: Map<string, string>,
  inputs: Inputs,
  clear: ReadonlySet<string> = new Set(),
): { masks: string; env: string; outputs: string } {
  const problems: string[] = [];
  let masks = '';
  let env = '';
  let outputs = '';
  for (const [name, value] of values) {
    if (!clear.has(name)) masks += githubMasks(value);
    try {
      if (inputs.exportEnv) env += githubEnvBlock(name, value);
      if (inputs.outputs) outputs += githubFileBlock(name, value);
    } catch (e) {
      if (!(e instanceof Unrepresentable)) throw e;
      problems.push(`${name} ${e.message}`);
    }
  }
  if (problems.length > 0) throw new InputError(`cannot hand these to later steps:\n  ${problems.join('\n  ')}`);
  return { masks, env, outputs };
}

export async function main(runner: Runner): Promise<void> {
  const { env } = runner;
  // First of all: a post step that finds no phase marker would otherwise run main again.
  const state = fileCommand(env, 'GITHUB_STATE');
  await runner.appendFile(state, githubFileBlock(PHASE, 'post'));
  const inputs = await readInputs(env, workspaceFile(runner));
  const envFile = inputs.exportEnv ? fileCommand(env, 'GITHUB_ENV') : undefined;
  const outputFile = inputs.outputs ? fileCommand(env, 'GITHUB_OUTPUT') : undefined;
  const { coffer, token } = await login(inputs, env);
  // Masked before it is written anywhere, then kept for post (which revokes it).
  runner.write(githubMasks(token));
  await runner.appendFile(state, githubFileBlock(TOKEN, token));
  const values = new Map<string, string>();
  if (inputs.tokenOnly) {
    values.set('COFFER_ADDR', inputs.addr);
    values.set('COFFER_TOKEN', token);
    if (inputs.caCert !== undefined) values.set('COFFER_CACERT', await caFile(env, inputs.caCert));
  } else {
    for (const [name, value] of variables(inputs.secrets, await fetchAll(coffer, inputs.secrets)))
      values.set(name, value);
  }
  const out = render(values, inputs, inputs.tokenOnly ? new Set(['COFFER_ADDR', 'COFFER_CACERT']) : undefined);
  runner.write(out.masks);
  if (envFile) await runner.appendFile(envFile, out.env);
  if (outputFile) await runner.appendFile(outputFile, out.outputs);
  const where = [inputs.exportEnv ? 'environment' : '', inputs.outputs ? 'step outputs' : '']
    .filter(Boolean)
    .join(' and ');
  runner.write(
    `coffer: logged in with role ${inputs.role}; ${values.size} value(s) masked and set as ${where}: ${[...values.keys()].join(', ')}\n`,
  );
}

/** token-only: the CLI reads COFFER_CACERT as a file, so a PEM input is written to one under RUNNER_TEMP. */
async function caFile(env: NodeJS.ProcessEnv, pem: string): Promise<string> {
  const dir = await mkdtemp(join(env.RUNNER_TEMP ?? resolve('.'), 'coffer-'));
  const file = join(dir, 'ca.pem');
  await writeFile(file, pem, { mode: 0o600 });
  return file;
}

export async function post(runner: Runner): Promise<void> {
  const token = runner.env[`STATE_${TOKEN}`];
  if (!token) return runner.write('coffer: no token to revoke (the main step did not log in)\n');
  const connection = await readConnection(runner.env, workspaceFile(runner));
  try {
    await client(connection, token).revoke();
    runner.write('coffer: token revoked\n');
  } catch (e) {
    // The token still dies at its TTL (15 minutes for a CI role by default): a warning, not a failed job.
    runner.write(
      `::warning::${commandData(`coffer: could not revoke the job's token (${e instanceof Error ? e.message : String(e)}); it expires at its TTL`)}\n`,
    );
  }
}

/** Main or post, by the state main saved; an error is one `::error::` line and exit code 1. */
export async function runAction(runner: Runner): Promise<number> {
  try {
    await (runner.env[`STATE_${PHASE}`] === 'post' ? post(runner) : main(runner));
    return 0;
  } catch (e) {
    const message =
      e instanceof InputError || e instanceof CofferError
        ? e.message
        : `unexpected failure: ${e instanceof Error ? e.message : String(e)}`;
    runner.write(`::error::${commandData(`coffer: ${message}`)}\n`);
    return 1;
  }
}

import { z } from 'zod';
import { ENV_NAME, isDangerousName } from '../../../sdk/env-names.js';
import { isLoopback } from '../../../sdk/transport.js';
import { pathMessage, pathProblem } from '../../../sdk/wire/paths.js';

/**
 * The action's inputs (action.yml), read the way the runner hands them over: `INPUT_<NAME>`
 * with the name upper-cased and spaces turned into `_` (hyphens stay), trimmed, '' when unset.
 * Every refusal names the input and says what to write instead (README "Use in CI").
 */
export class InputError extends Error {}

/** One `secrets` line: a key of one secret, or every key of every secret under a prefix. */
export type SecretRequest =
  { kind: 'key'; path: string; key: string; name: string } | { kind: 'prefix'; prefix: string; namePrefix: string };

export interface Inputs {
  addr: string;
  role: string;
  audience: string;
  /** PEM of the CA to trust instead of the system store. */
  caCert: string | undefined;
  secrets: SecretRequest[];
  exportEnv: boolean;
  outputs: boolean;
  tokenOnly: boolean;
}

export const input = (env: NodeJS.ProcessEnv, name: string): string =>
  (env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] ?? '').trim();

/** YAML 1.2 core-schema booleans, as the Actions toolkit's getBooleanInput takes them. */
const booleanInput = z
  .enum(['true', 'True', 'TRUE', 'false', 'False', 'FALSE'])
  .transform((v) => v.toLowerCase() === 'true');

function readBoolean(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = input(env, name);
  if (raw === '') return fallback;
  const parsed = booleanInput.safeParse(raw);
  if (!parsed.success) throw new InputError(`input ${name}: expected true or false, got "${raw}"`);
  return parsed.data;
}

const LINE_KEY = /^(\S+)\s+([^\s|]+)(?:\s*\|\s*(\S+))?$/;
const LINE_PREFIX = /^(\S+)\/\*(?:\s*\|\s*(\S+))?$/;
const NAME_PREFIX = /^[A-Z_][A-Z0-9_]*$/;

function checkPath(path: string, where: string): void {
  const problem = pathProblem(path);
  if (problem) throw new InputError(`${where}: ${pathMessage(`path ${path}`, problem)}`);
}

function checkName(name: string, where: string): void {
  if (!ENV_NAME.test(name))
    throw new InputError(
      `${where}: "${name}" is not a variable name (letters A-Z, digits and _, not starting with a digit)`,
    );
  if (isDangerousName(name))
    throw new InputError(`${where}: ${name} would change how later steps run programs; pick another name`);
}

/**
 * `secrets`: one request a line, `path key | ENV_NAME` (`| ENV_NAME` may be left out: the key
 * upper-cased) or `path/* | PREFIX_` (every key of every secret under path, the prefix in front).
 * Blank lines and lines starting with `#` are skipped. Lines are numbered from 1 in errors.
 */
export function parseSecrets(text: string): SecretRequest[] {
  const requests: SecretRequest[] = [];
  text.split(/\r\n|\r|\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `input secrets, line ${i + 1} (${line})`;
    const prefix = LINE_PREFIX.exec(line);
    if (prefix) {
      const [, path = '', namePrefix = ''] = prefix;
      checkPath(path, where);
      if (namePrefix !== '' && !NAME_PREFIX.test(namePrefix))
        throw new InputError(
          `${where}: prefix "${namePrefix}" must be letters A-Z, digits and _, not starting with a digit`,
        );
      requests.push({ kind: 'prefix', prefix: path, namePrefix });
      return;
    }
    const key = LINE_KEY.exec(line);
    if (!key) throw new InputError(`${where}: expected "path key | ENV_NAME" or "path/* | PREFIX_"`);
    const [, path = '', secretKey = '', name = secretKey.toUpperCase().replace(/[^A-Z0-9_]/g, '_')] = key;
    checkPath(path, where);
    checkName(name, where);
    requests.push({ kind: 'key', path, key: secretKey, name });
  });
  return requests;
}

/** A `ca-cert` input is the PEM itself (a repository variable) or, failing that, a file in the workspace. */
export type CaReader = (path: string) => Promise<string>;

/** Where the server is and which CA to trust: all `post` needs to revoke the token. */
export async function readConnection(
  env: NodeJS.ProcessEnv,
  readCa: CaReader,
): Promise<Pick<Inputs, 'addr' | 'caCert'>> {
  const addr = input(env, 'addr');
  if (addr === '') throw new InputError('input addr is required: the Coffer server, e.g. https://vault.internal:8740');
  let url: URL;
  try {
    url = new URL(addr);
  } catch {
    throw new InputError(`input addr: "${addr}" is not a URL; write https://host:port`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new InputError(`input addr: ${url.protocol} is not http(s); write https://host:port`);
  // A job's token must not cross a network in clear: plain http only to this machine.
  if (url.protocol === 'http:' && !isLoopback(url.hostname))
    throw new InputError(`input addr: refusing plain http to ${url.host}; use https:// (and ca-cert for a private CA)`);
  const ca = input(env, 'ca-cert');
  if (ca === '') return { addr, caCert: undefined };
  if (ca.includes('-----BEGIN CERTIFICATE-----')) return { addr, caCert: ca };
  const caCert = await readCa(ca).catch((e: NodeJS.ErrnoException) => {
    throw new InputError(
      `input ca-cert: neither a PEM certificate nor a readable file (${e.code ?? 'error'} reading ${ca})`,
    );
  });
  if (!caCert.includes('-----BEGIN CERTIFICATE-----'))
    throw new InputError(`input ca-cert: ${ca} holds no PEM certificate`);
  return { addr, caCert };
}

export async function readInputs(env: NodeJS.ProcessEnv, readCa: CaReader): Promise<Inputs> {
  const connection = await readConnection(env, readCa);
  const role = input(env, 'role');
  if (role === '')
    throw new InputError(
      'input role is required: the Coffer jwt role that trusts this repository (README "CI jobs: jwt roles")',
    );
  const tokenOnly = readBoolean(env, 'token-only', false);
  const exportEnv = readBoolean(env, 'export-env', true);
  const outputs = readBoolean(env, 'outputs', false);
  const secrets = parseSecrets(input(env, 'secrets'));
  if (!tokenOnly && secrets.length === 0)
    throw new InputError('input secrets is empty: list one "path key | ENV_NAME" a line, or set token-only: true');
  if (!tokenOnly && !exportEnv && !outputs)
    throw new InputError('inputs export-env and outputs are both false: the secrets would go nowhere; set one to true');
  return { ...connection, role, audience: input(env, 'audience') || 'coffer', secrets, exportEnv, outputs, tokenOnly };
}

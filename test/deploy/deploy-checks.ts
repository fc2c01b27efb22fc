import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { configSchema, loadConfig, type ServerConfig } from '../../server/config.js';
import { ROUTES } from '../../server/http/route-catalogue.js';
import { parseKekUri } from '../../server/keys/root-key.js';
import { parsePkcs11Uri } from '../../server/keys/pkcs11/uri.js';
import { S3Bucket } from '../../server/replication/s3.js';
import { tlsSettingsFromConfig } from '../../server/tls/context.js';
import { CLI } from '../integration/server-process.js';

/**
 * One `coffer server` as a deploy file starts it, and what the file says about it: the
 * arguments after `server`, the environment, the config file it mounts, the ports it publishes
 * and the health checks that probe it. `checkServer` holds each against the server's own
 * definitions (server/config.ts configSchema, the `coffer server` command, the route catalogue
 * and its query schemas), never against a list kept here.
 */
export interface ServerSpec {
  where: string;
  args: string[];
  /** Literal values; a value from a Secret is `<secret>`. */
  env: Record<string, string>;
  /** The text of the file `--config` names, when the deploy file provides it. */
  configText?: string;
  /** Container ports the file publishes for the server (k8s containerPort, compose's container side, EXPOSE). */
  ports: number[];
  /** Health checks: the URL path and query, the port they hit, and whether over HTTPS. */
  probes: { what: string; path: string; port: number; https: boolean }[];
}

const SERVER_ENV = 'COFFER_SERVER_';
type Key = keyof ServerConfig;
const isKey = (k: string): k is Key => Object.hasOwn(configSchema.shape, k);

/** The schema type under `.default()`/`.optional()`: what a flag's text becomes. */
function kindOf(key: Key): 'boolean' | 'number' | 'array' | 'string' {
  const shape: z.ZodType = configSchema.shape[key];
  const inner = shape instanceof z.ZodDefault || shape instanceof z.ZodOptional ? shape.unwrap() : shape;
  return inner instanceof z.ZodBoolean
    ? 'boolean'
    : inner instanceof z.ZodNumber
      ? 'number'
      : inner instanceof z.ZodArray
        ? 'array'
        : 'string';
}

let serverFlags: Set<string> | undefined;
/** The flags `coffer server --help` lists: what its strict parser accepts. */
export function cofferServerFlags(): Set<string> {
  serverFlags ??= new Set(
    [
      ...execFileSync(process.execPath, [CLI, 'server', '--help'], { encoding: 'utf8' }).matchAll(
        /^\s+--([a-z][a-z0-9-]*)/gm,
      ),
    ].map((m) => m[1] ?? ''),
  );
  return serverFlags;
}

/** `--flag value`, `--flag=value` and boolean `--flag`, by the schema's types. */
export function parseServerArgs(
  args: string[],
  problems: string[],
  where: string,
): { config?: string; flags: Partial<Record<Key, unknown>> } {
  const flags: Partial<Record<Key, unknown>> = {};
  let config: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) {
      problems.push(`${where}: argument "${arg}" is not a --flag`);
      continue;
    }
    const name = m[1] ?? '';
    const key = name.replace(/-/g, '_');
    if (!cofferServerFlags().has(name)) problems.push(`${where}: coffer server takes no flag --${name}`);
    if (key === 'config') {
      config = m[2] ?? args[++i];
      continue;
    }
    if (!isKey(key)) {
      problems.push(`${where}: --${name} is not a setting of the server's config schema`);
      continue;
    }
    const kind = kindOf(key);
    const text = kind === 'boolean' ? (m[2] ?? 'true') : (m[2] ?? args[++i]);
    if (text === undefined) {
      problems.push(`${where}: --${name} has no value`);
      continue;
    }
    const value = kind === 'boolean' ? text === 'true' : kind === 'number' ? Number(text) : text;
    flags[key] = kind === 'array' ? [...(Array.isArray(flags[key]) ? flags[key] : []), value] : value;
  }
  return { ...(config === undefined ? {} : { config }), flags };
}

/** Variables a server reads besides COFFER_SERVER_*: those its key source names, and the AWS chain for s3:// buckets. */
function namedByKek(kek: string | undefined): string[] {
  if (!kek) return [];
  const source = parseKekUri(kek);
  if (source.kind === 'env' || source.kind === 'passphrase') return [source.variable];
  if (source.kind === 'pkcs11')
    return parsePkcs11Uri(source.uri).members.flatMap((m) => ('env' in m.pin ? [m.pin.env] : []));
  return [];
}

/** Health path and query against the route catalogue: a public GET route, its query schema. */
export function probeProblem(path: string): string | undefined {
  const url = new URL(path, 'https://probe');
  const route = ROUTES.find((r) => r.method === 'GET' && r.stage === 'public' && r.path === url.pathname);
  if (!route) return `${url.pathname} is not a public GET route of the server`;
  if (url.pathname !== '/v1/sys/health') return `${url.pathname} is not the health route`;
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of url.searchParams) {
    const seen = query[k];
    query[k] = seen === undefined ? v : [...(Array.isArray(seen) ? seen : [seen]), v];
  }
  const parsed = (route.query ?? z.strictObject({})).safeParse(query);
  if (!parsed.success)
    return `query ${url.search}: ${parsed.error.issues.map((i) => `${i.path.join('.') || (i.code === 'unrecognized_keys' ? i.keys.join(', ') : '')} ${i.message}`).join('; ')}`;
  return undefined;
}

export async function checkServer(
  spec: ServerSpec,
  extraEnv: readonly string[] = [],
): Promise<{ problems: string[]; config?: ServerConfig }> {
  const problems: string[] = [];
  const { where } = spec;
  const { config: configPath, flags } = parseServerArgs(spec.args, problems, where);
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(spec.env)) {
    if (name.startsWith(SERVER_ENV)) {
      const key = name.slice(SERVER_ENV.length).toLowerCase();
      if (!isKey(key)) problems.push(`${where}: env ${name} is not a setting of the server's config schema`);
      else env[name] = value;
    }
  }
  if (configPath !== undefined && spec.configText === undefined)
    problems.push(`${where}: --config ${configPath} is not provided by the deploy file`);
  let config: ServerConfig | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'coffer-deploy-'));
  try {
    const file = join(dir, 'coffer.yaml');
    if (spec.configText !== undefined) writeFileSync(file, spec.configText);
    config = await loadConfig({ ...(spec.configText !== undefined ? { file } : {}), env, flags });
  } catch (e) {
    problems.push(`${where}: the server refuses its configuration: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (!config) return { problems };
  // What startServer refuses before it opens anything: plain HTTP on the network, half a TLS pair, a bad key source.
  const refusal = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      problems.push(`${where}: the server refuses to start: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  if (!config.dev_tls) refusal(() => tlsSettingsFromConfig(config));
  // Coffer's own variables must mean something to this server: a setting, or a variable its key
  // source names (or one the health check reads). Others (AWS_* for s3://, HOME, TZ) are not ours.
  let byKek: string[] = [];
  refusal(() => (byKek = namedByKek(config.kek)));
  for (const name of Object.keys(spec.env)) {
    if (!name.startsWith('COFFER_') || name.startsWith(SERVER_ENV) || byKek.includes(name) || extraEnv.includes(name))
      continue;
    problems.push(`${where}: env ${name} is read by nothing the server is configured with`);
  }
  for (const name of byKek)
    if (spec.env[name] === undefined) problems.push(`${where}: ${name} (named by kek ${config.kek}) is not set`);
  for (const url of [...config.replicate_to, ...(config.replica_of ? [config.replica_of] : [])]) {
    try {
      if (url.startsWith('s3://')) S3Bucket.fromUrl(new URL(url));
      else problems.push(`${where}: bucket ${url} is not s3:// (a file:// bucket is one machine's directory)`);
    } catch (e) {
      problems.push(`${where}: bucket ${url}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const port = Number(/:([0-9]+)$/.exec(config.listen)?.[1]);
  const tls = config.dev_tls || config.tls_cert_file !== undefined;
  if (spec.ports.length === 0) problems.push(`${where}: publishes no port`);
  for (const p of spec.ports)
    if (p !== port) problems.push(`${where}: port ${p} is published, but the server listens on ${config.listen}`);
  if (spec.probes.length === 0) problems.push(`${where}: has no health check`);
  for (const probe of spec.probes) {
    const bad = probeProblem(probe.path);
    if (bad) problems.push(`${where}: ${probe.what} ${probe.path}: ${bad}`);
    if (probe.port !== port)
      problems.push(`${where}: ${probe.what} hits port ${probe.port}, but the server listens on ${config.listen}`);
    if (probe.https !== tls)
      problems.push(
        `${where}: ${probe.what} uses ${probe.https ? 'HTTPS' : 'HTTP'} but the server serves ${tls ? 'HTTPS' : 'HTTP'}`,
      );
  }
  return { problems, config };
}

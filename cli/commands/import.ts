import { readFile } from 'node:fs/promises';
import { SingleBar } from 'cli-progress';
import type { Argv } from 'yargs';
import { MAX_BATCH_WRITE, MAX_BATCH_WRITE_BYTES, MAX_DATA_BYTES } from '../../sdk/wire/constants.js';
import { pathMessage, pathProblem } from '../../sdk/wire/paths.js';
import type { BatchWriteEntry } from '../../sdk/wire/types.js';
import { output, type GlobalArgs } from '../context.js';
import { CliError } from '../errors.js';
import { readDotenv, readJsonMap, readVaultExport, type ImportEntry } from '../import-sources.js';
import type { Deps } from '../io.js';

interface ImportArgs extends GlobalArgs {
  fromDotenv?: string | undefined;
  fromJson?: string | undefined;
  fromVaultExport?: string | undefined;
  path?: string | undefined;
  split: boolean;
  prefix?: string | undefined;
  skipExisting: boolean;
  batchSize: number;
}

/** What an import did, per path (`--json`); never a value. */
interface ImportSummary {
  written: { path: string; version: number }[];
  skipped: string[];
  failed: { path: string; code: string; message: string }[];
}

/**
 * `coffer import`: a .env file (one secret at --path, or with --split one per variable), a JSON
 * map of path to data, or a `vault kv get -format=json` answer, written with
 * `POST /v1/secrets:batch-write` in chunks. Every entry is read and checked before the first
 * request, so a bad file writes nothing. `--skip-existing` sends `cas: 0` (write only a path
 * with no version yet): an interrupted import run again resumes without a second version
 * anywhere. Progress on stderr when it is a terminal; values are never printed.
 */
export function importCommand(yargs: Argv<GlobalArgs>, deps: Deps): Argv<GlobalArgs> {
  return yargs.command(
    'import',
    'Import secrets from a .env file, a JSON map or a Vault export',
    (y) =>
      y
        .option('from-dotenv', { type: 'string', describe: 'a .env file' })
        .option('from-json', { type: 'string', describe: 'a JSON object of path: {key: "value"}' })
        .option('from-vault-export', {
          type: 'string',
          describe: 'the JSON of `vault kv get -format=json` (with --path), or an object of path: that JSON',
        })
        .conflicts('from-dotenv', ['from-json', 'from-vault-export'])
        .conflicts('from-json', 'from-vault-export')
        .option('path', {
          type: 'string',
          describe: 'secret path (a .env file: the secret, or the prefix with --split)',
        })
        .option('split', { type: 'boolean', default: false, describe: 'a .env file: one secret per variable' })
        .option('prefix', { type: 'string', describe: 'place every path under this prefix' })
        .option('skip-existing', {
          type: 'boolean',
          default: false,
          describe: 'leave paths that already have a version alone (resume an interrupted import)',
        })
        .option('batch-size', {
          type: 'number',
          default: 500,
          describe: `secrets per request (1 to ${MAX_BATCH_WRITE})`,
        })
        .check((a) => {
          if (!a.fromDotenv && !a.fromJson && !a.fromVaultExport)
            throw new Error('give one of --from-dotenv, --from-json or --from-vault-export');
          if (a.fromDotenv && !a.path) throw new Error('--from-dotenv needs --path');
          if (a.fromJson && a.path) throw new Error('--from-json names its paths: use --prefix to place them');
          if (a.split && !a.fromDotenv) throw new Error('--split is for --from-dotenv');
          const size = Number(a.batchSize);
          if (!Number.isInteger(size) || size < 1 || size > MAX_BATCH_WRITE)
            throw new Error(`--batch-size must be 1 to ${MAX_BATCH_WRITE}`);
          return true;
        })
        .example('coffer import --from-dotenv .env --path app/config', 'every variable as one secret')
        .example('coffer import --from-json secrets.json --prefix team --skip-existing', 'a map of path to data')
        .example(
          'vault kv get -format=json secret/db > db.json; coffer import --from-vault-export db.json --path db',
          '',
        ),
    async (argv) => {
      const args = argv as ImportArgs;
      const entries = await readEntries(args);
      await checkEntries(entries);
      const c = await deps.client(args);
      const summary: ImportSummary = { written: [], skipped: [], failed: [] };
      const bar =
        deps.io.stderr.isTTY && !args.json && !args.quiet && entries.length > 1
          ? new SingleBar({ stream: deps.io.stderr, format: 'importing [{bar}] {value}/{total}' })
          : undefined;
      bar?.start(entries.length, 0);
      try {
        for (const chunk of chunks(entries, args.batchSize)) {
          const sent: BatchWriteEntry[] = chunk.map(({ path, data }) =>
            args.skipExisting ? { path, data, cas: 0 } : { path, data },
          );
          const { results } = await c.batchWrite(sent);
          for (const result of results) {
            if (!('error' in result)) summary.written.push({ path: result.path, version: result.version });
            else if (args.skipExisting && result.error.code === 'cas_mismatch') summary.skipped.push(result.path);
            else summary.failed.push({ path: result.path, ...result.error });
          }
          bar?.increment(chunk.length);
        }
      } catch (e) {
        bar?.stop();
        const done = summary.written.length + summary.skipped.length + summary.failed.length;
        deps.io.stderr.write(
          `import stopped after ${done} of ${entries.length} secrets: run the same command with --skip-existing to resume\n`,
        );
        throw e;
      }
      bar?.stop();
      output(deps.io, args, summary, () => describe(summary, entries, args));
      const first = summary.failed[0];
      if (first)
        throw new CliError(
          'invalid_input',
          `${summary.failed.length} of ${entries.length} secrets were refused (first: ${first.path}: ${first.message}); the others were written: fix these and run again with --skip-existing`,
        );
    },
  );
}

async function readEntries(args: ImportArgs): Promise<ImportEntry[]> {
  const file = (args.fromDotenv ?? args.fromJson ?? args.fromVaultExport)!;
  const text = await readFile(file, 'utf8').catch(() => {
    throw new CliError('invalid_input', `cannot read ${file}`);
  });
  let entries: ImportEntry[];
  if (args.fromDotenv) {
    const vars = readDotenv(file, text);
    const names = Object.keys(vars);
    if (names.length === 0) throw new CliError('invalid_input', `${file} holds no variables`);
    const base = args.path!;
    entries = args.split
      ? names.map((name) => ({
          path: `${base}/${name.toLowerCase().replace(/[^a-z0-9._-]/g, '-')}`,
          data: { [name]: vars[name]! },
          where: `${file}: ${name}`,
        }))
      : [{ path: base, data: vars, where: file }];
  } else if (args.fromJson) entries = readJsonMap(file, text);
  else entries = readVaultExport(file, text, args.path);
  if (entries.length === 0) throw new CliError('invalid_input', `${file} holds no secrets`);
  const prefix = args.prefix?.replace(/\/+$/, '');
  return prefix ? entries.map((e) => ({ ...e, path: `${prefix}/${e.path}` })) : entries;
}

/** Every entry as the server will check it (sdk/wire/schemas.ts), so a bad file writes nothing. */
async function checkEntries(entries: ImportEntry[]): Promise<void> {
  // Loaded on use: the other commands start without zod.
  const { putSecretBody } = await import('../../sdk/wire/schemas.js');
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const { path, data, where } of entries) {
    const problem = pathProblem(path);
    if (problem) problems.push(`${where}: ${pathMessage(`"${path.slice(0, 80)}"`, problem)}`);
    const checked = putSecretBody.safeParse({ data });
    if (!checked.success) {
      const issue = checked.error.issues[0]!;
      // A refused record key carries the key rule's own message one level down.
      const reason = issue.code === 'invalid_key' ? (issue.issues[0]?.message ?? issue.message) : issue.message;
      problems.push(`${where}: ${path}: ${issue.path.join('.')}: ${reason}`);
    } else if (Object.keys(data).length === 0) problems.push(`${where}: ${path}: no keys`);
    else if (Buffer.byteLength(JSON.stringify(data)) > MAX_DATA_BYTES)
      problems.push(`${where}: ${path}: data exceeds ${MAX_DATA_BYTES} bytes once encoded`);
    const before = seen.get(path);
    if (before !== undefined) problems.push(`${where}: ${path} is also given at ${before}`);
    seen.set(path, where);
  }
  if (problems.length > 0)
    throw new CliError(
      'invalid_input',
      `${problems[0]}${problems.length > 1 ? ` (the first of ${problems.length} problems)` : ''}; nothing was written`,
    );
}

/** Requests of at most `size` secrets and half the route's body limit (room for JSON escapes). */
function* chunks(entries: ImportEntry[], size: number): Generator<ImportEntry[]> {
  let chunk: ImportEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const cost = Buffer.byteLength(JSON.stringify(entry.data)) + entry.path.length + 32;
    if (chunk.length > 0 && (chunk.length === size || bytes + cost > MAX_BATCH_WRITE_BYTES / 2)) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(entry);
    bytes += cost;
  }
  if (chunk.length > 0) yield chunk;
}

function describe(summary: ImportSummary, entries: ImportEntry[], args: ImportArgs): string {
  const one = entries.length === 1 ? summary.written[0] : undefined;
  if (one && args.fromDotenv)
    return `imported ${Object.keys(entries[0]!.data).length} variables into ${one.path} version ${one.version}`;
  const skipped = summary.skipped.length ? `; skipped ${summary.skipped.length} that already had a version` : '';
  const failed = summary.failed.length ? `; ${summary.failed.length} refused` : '';
  const under = args.prefix ?? (args.split ? args.path : undefined);
  return `imported ${summary.written.length} secrets${under ? ` under ${under}` : ''}${skipped}${failed}`;
}

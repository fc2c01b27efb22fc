import { parse } from 'dotenv';
import { CliError } from './errors.js';
import { member, members, parseJsonFile, positionOf, valueOf, type JsonNode } from './import-json.js';

/**
 * The files `coffer import` reads, each turned into secrets (path and data) before anything is
 * sent. Every entry keeps where it came from (`file:line:column`, or the variable), so a check
 * that fails later still names the place to fix.
 */
export interface ImportEntry {
  path: string;
  data: Record<string, string>;
  where: string;
}

// dotenv's own line rule (node_modules/dotenv, `parse`): what it matches is what it reads.
const DOTENV_LINE =
  /(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)/gm;

/**
 * A .env file's variables. dotenv skips a line it cannot read without a word (`PASSWORD`
 * alone, `export KEY`, a name with a space): here such a line is an error naming its line and
 * column, since an import that silently drops a variable is found out only in production.
 */
export function readDotenv(file: string, raw: string): Record<string, string> {
  const text = raw.replace(/\r\n?/g, '\n'); // as dotenv does before matching
  const covered = new Uint8Array(text.length);
  for (const m of text.matchAll(DOTENV_LINE)) covered.fill(1, m.index, m.index + m[0].length);
  let offset = 0;
  for (const line of text.split('\n')) {
    let i = 0;
    while (i < line.length && (covered[offset + i] || /\s/.test(line[i]!))) i++;
    if (i < line.length && line[i] !== '#')
      throw new CliError(
        'invalid_input',
        `${positionOf(file, text, offset + i)}: not a variable assignment (NAME=value), a comment or a blank line; nothing was written`,
      );
    offset += line.length + 1;
  }
  return parse(text);
}

/** `--from-json`: an object mapping each path to its data, an object of string values. */
export function readJsonMap(file: string, text: string): ImportEntry[] {
  const root = parseJsonFile(file, text);
  const at = (node: JsonNode) => positionOf(file, text, node.offset);
  if (root.type !== 'object')
    throw new CliError('invalid_input', `${at(root)}: expected an object mapping each path to its data`);
  return members(root).map(([path, node]) => {
    if (node.type !== 'object')
      throw new CliError('invalid_input', `${at(node)}: ${path}: expected an object of key: "value"`);
    const data: Record<string, string> = {};
    for (const [key, value] of members(node)) {
      if (value.type !== 'string')
        throw new CliError(
          'invalid_input',
          `${at(value)}: ${path}: the value of ${key} is a ${value.type}; values are strings (quote it)`,
        );
      data[key] = value.value as string;
    }
    return { path, data, where: at(node.parent ?? node) };
  });
}

/**
 * `--from-vault-export`: what `vault kv get -format=json` prints for a KV v2 secret
 * (`{request_id, …, data: {data: {…}, metadata: {…}}}`), placed at `path`; or an object mapping
 * paths to such answers (one `vault kv get` per path, gathered with jq). Vault values that are
 * not strings become their JSON text, as Coffer's native API shows them (docs/vault-compatibility.md).
 */
export function readVaultExport(file: string, text: string, path: string | undefined): ImportEntry[] {
  const root = parseJsonFile(file, text);
  const at = (node: JsonNode) => positionOf(file, text, node.offset);
  if (root.type !== 'object')
    throw new CliError('invalid_input', `${at(root)}: expected the JSON of \`vault kv get -format=json\``);
  if (member(root, 'data')?.type === 'object' && member(root, 'request_id')) {
    if (path === undefined) throw new CliError('usage', `${file} holds one secret: say where it goes with --path`);
    return [{ path, data: vaultData(root, path, at), where: at(root) }];
  }
  if (path !== undefined)
    throw new CliError(
      'usage',
      `${file} maps paths to exported secrets: drop --path (use --prefix to place them under one)`,
    );
  return members(root).map(([name, node]) => ({
    path: name,
    data: vaultData(node, name, at),
    where: at(node.parent ?? node),
  }));
}

function vaultData(answer: JsonNode, path: string, at: (node: JsonNode) => string): Record<string, string> {
  const outer = member(answer, 'data');
  const inner = outer && member(outer, 'data');
  if (inner?.type === 'null')
    throw new CliError(
      'invalid_input',
      `${at(inner)}: ${path}: the exported version holds no data (deleted or destroyed): export a readable version`,
    );
  if (inner?.type !== 'object')
    throw new CliError(
      'invalid_input',
      `${at(outer ?? answer)}: ${path}: expected data.data, the secret of a KV v2 \`vault kv get -format=json\``,
    );
  const data: Record<string, string> = {};
  for (const [key, value] of members(inner)) {
    const v = valueOf(value);
    data[key] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return data;
}

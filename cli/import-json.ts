import jsonc from 'jsonc-parser';
import type { Node } from 'jsonc-parser';
import { CliError } from './errors.js';

/**
 * Strict JSON for `coffer import`, with positions: JSON.parse names no line or column (and for
 * some errors not even an offset) and keeps the last of two equal keys silently, which in an
 * import file would drop a secret or a value. jsonc-parser gives every node its offset.
 */
export type JsonNode = Node;

/** `file:line:column` of an offset (both 1-based, columns in UTF-16 units as editors count them). */
export function positionOf(file: string, text: string, offset: number): string {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return `${file}:${line}:${offset - start + 1}`;
}

/** Parses `text` as strict JSON (no comments, no trailing commas, no repeated key); a refusal names file, line and column. */
export function parseJsonFile(file: string, text: string): JsonNode {
  const errors: jsonc.ParseError[] = [];
  const root = jsonc.parseTree(text, errors, { disallowComments: true, allowTrailingComma: false });
  const first = errors[0];
  if (first || !root)
    throw new CliError(
      'invalid_input',
      `${positionOf(file, text, first?.offset ?? 0)}: not valid JSON (${first ? jsonc.printParseErrorCode(first.error) : 'empty'}); nothing was written`,
    );
  refuseRepeatedKeys(file, text, root);
  return root;
}

function refuseRepeatedKeys(file: string, text: string, node: JsonNode): void {
  if (node.type === 'object') {
    const seen = new Set<string>();
    for (const property of node.children ?? []) {
      const key = property.children?.[0];
      if (key && typeof key.value === 'string') {
        if (seen.has(key.value))
          throw new CliError(
            'invalid_input',
            `${positionOf(file, text, key.offset)}: the key ${JSON.stringify(key.value)} is repeated; nothing was written`,
          );
        seen.add(key.value);
      }
    }
  }
  for (const child of node.children ?? []) refuseRepeatedKeys(file, text, child);
}

/** The members of an object node, as [key, value node] pairs in file order. */
export function members(node: JsonNode): [string, JsonNode][] {
  return (node.children ?? []).flatMap((property) => {
    const [key, value] = property.children ?? [];
    return key && value ? [[String(key.value), value] as [string, JsonNode]] : [];
  });
}

/** The member `name` of an object node, if any. */
export const member = (node: JsonNode, name: string): JsonNode | undefined =>
  node.type === 'object' ? members(node).find(([k]) => k === name)?.[1] : undefined;

export const valueOf = (node: JsonNode): unknown => jsonc.getNodeValue(node);

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Reading README.md for the README-blocks test (readme-blocks.test.ts): its runnable shell
 * blocks, its headings and its table of contents.
 */

/** The repository root: the nearest directory above this file whose package.json is named coffer (dist/ or any --outDir). */
export function repoRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ;) {
    const file = join(dir, 'package.json');
    if (existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === 'coffer') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`package.json of coffer not found above ${from}`);
    dir = up;
  }
}

/** The info string that marks a fenced block as runnable: ```sh runnable */
export const RUNNABLE_INFO = 'sh runnable';

export interface Block {
  /** 1-based line number of the opening fence in README.md. */
  line: number;
  /** The fence's info string (`sh runnable`, `yaml`, ``). */
  info: string;
  /** The lines between the fences. */
  body: string;
}

export interface Heading {
  line: number;
  depth: number;
  text: string;
}

export interface TocEntry {
  line: number;
  depth: number;
  text: string;
  anchor: string;
}

/** Every fenced block (``` at the start of a line), with the line of its opening fence. */
export function fencedBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (i >= lines.length) throw new Error(`README.md line ${start + 1}: code fence never closed`);
    blocks.push({ line: start + 1, info: open[1]!.trim(), body: body.join('\n') });
  }
  return blocks;
}

export const runnableBlocks = (markdown: string): Block[] =>
  fencedBlocks(markdown).filter((b) => b.info === RUNNABLE_INFO);

/** `##` and deeper headings outside code fences (the `#` title excluded). */
export function headings(markdown: string): Heading[] {
  const out: Heading[] = [];
  let fenced = false;
  markdown.split('\n').forEach((text, i) => {
    if (/^```/.test(text)) fenced = !fenced;
    const m = fenced ? null : /^(#{2,6}) (.+?)\s*$/.exec(text);
    if (m) out.push({ line: i + 1, depth: m[1]!.length, text: m[2]! });
  });
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen; repeats get -1, -2, … */
export function anchors(titles: string[]): string[] {
  const seen = new Map<string, number>();
  return titles.map((title) => {
    const base = title
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n === 0 ? base : `${base}-${n}`;
  });
}

/**
 * The table of contents: the list under `## Contents`, one `- [Title](#anchor)` a line, indented
 * two spaces per level below `##`.
 */
export function tableOfContents(markdown: string): TocEntry[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l === '## Contents');
  if (start < 0) return [];
  const entries: TocEntry[] = [];
  for (let i = start + 1; i < lines.length && !/^#/.test(lines[i]!); i++) {
    const m = /^( *)- \[(.+)\]\(#([^)]+)\)\s*$/.exec(lines[i]!);
    if (m) entries.push({ line: i + 1, depth: 2 + m[1]!.length / 2, text: m[2]!, anchor: m[3]! });
    else if (lines[i]!.trim() !== '')
      throw new Error(`README.md line ${i + 1}: not a table-of-contents entry: ${lines[i]}`);
  }
  return entries;
}

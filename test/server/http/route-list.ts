import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Express } from 'express';
import { ROUTES, type RouteEntry } from '../../../server/http/route-catalogue.js';

/**
 * The routes an express app really serves, read from its router stack: `METHOD path` with the
 * path as registered (HEAD, implied by GET, and the 405 catch-all of `methods()` left out).
 */
export function servedRoutes(app: Express): string[] {
  const found = new Set<string>();
  type Layer = { route?: { path: string; methods: Record<string, boolean> }; handle?: { stack?: Layer[] } };
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const [method, on] of Object.entries(layer.route.methods))
          if (on && method !== '_all') found.add(`${method.toUpperCase()} ${layer.route.path}`);
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return [...found].sort();
}

/** The catalogue's routes in the same form (undelete and destroy share `POST /v1/secrets/*path`). */
export function catalogueRoutes(entries: readonly RouteEntry[] = ROUTES): string[] {
  return [...new Set(entries.map((r) => `${r.method} ${r.path}`))].sort();
}

/** What is in `a` and not in `b`. */
export const minus = (a: readonly string[], b: readonly string[]) => a.filter((x) => !b.includes(x));

/** The repository root: the nearest directory above this file holding package.json and tsconfig.json (not a build directory). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'tsconfig.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
}

/** The TypeScript sources under `dir` (absolute), at any depth: what the source-scanning tests read. */
export function tsSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsSources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

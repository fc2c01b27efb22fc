import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROUTES } from '../../../server/http/route-catalogue.js';
import { openVault, type TestVault } from '../../helpers.js';
import { catalogueRoutes, minus, repoRoot, servedRoutes } from './route-list.js';

/**
 * docs/api.md against the router: the same route list as the OpenAPI test (the router's own
 * stack, mapped through the route catalogue to the documented `METHOD /path` form).
 */

const METHOD_PATH = /\b(GET|PUT|POST|PATCH|DELETE) (\/v1\/[A-Za-z0-9_./:{}*\\-]+)/g;

/** `:name` and `*path` (express) become `{name}` and `{path}`; an escaped colon a colon; trailing punctuation goes. */
const normalise = (method: string, path: string) =>
  `${method} ${path
    .replace(/[.,:]+$/, '')
    .replace(/\\:/g, ':')
    .replace(/\/:([a-z]+)/g, '/{$1}')
    .replace(/\/\*([a-z]+)/g, '/{$1}')}`;

/** `METHOD /path` at the start of a heading or of a table row's first cell. */
function documentedRoutes(text: string): string[] {
  const found = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^(?:#+\s+|\|\s*)(GET|PUT|POST|PATCH|DELETE) (\/v1\/\S+)/.exec(line);
    if (m) found.add(normalise(m[1]!, m[2]!.replace(/`/g, '')));
  }
  return [...found].sort();
}

/** Every `METHOD /v1/…` the text names anywhere (prose, tables, code). */
function mentionedRoutes(text: string): string[] {
  return [...new Set([...text.matchAll(METHOD_PATH)].map((m) => normalise(m[1]!, m[2]!)))].sort();
}

describe('docs/api.md', function () {
  this.timeout(30_000);
  let vault: TestVault;
  let text: string;

  before(async () => {
    vault = await openVault({ init: false });
    text = readFileSync(join(repoRoot(), 'docs', 'api.md'), 'utf8');
  });
  after(async () => vault?.cleanup());

  /** The operations of every route the router serves, as the docs write them. */
  const servedOperations = () => {
    const served = servedRoutes(vault.app.express);
    assert.deepEqual(minus(served, catalogueRoutes()), [], 'served routes missing from the route catalogue');
    return [
      ...new Set(
        ROUTES.filter((r) => served.includes(`${r.method} ${r.path}`)).map((r) => `${r.method} ${r.openapiPath}`),
      ),
    ].sort();
  };

  it('has a heading or table row for every route the router serves', () => {
    const missing = minus(servedOperations(), documentedRoutes(text));
    assert.deepEqual(missing, [], 'add these routes to docs/api.md (a table row "| METHOD /path | …")');
  });

  it('names no route that does not exist', () => {
    const operations = servedOperations();
    const unknown = mentionedRoutes(text).filter((m) => !operations.includes(m));
    assert.deepEqual(unknown, [], 'docs/api.md names routes the router does not serve');
  });

  it('checks what it claims to check', () => {
    // The parsers see rows, headings and prose mentions, in either path style.
    assert.deepEqual(documentedRoutes('| GET /v1/keys/:name | x |\n### POST /v1/secrets\\:batch\ntext GET /v1/nope'), [
      'GET /v1/keys/{name}',
      'POST /v1/secrets:batch',
    ]);
    assert.deepEqual(mentionedRoutes('see `GET /v1/sys/nope`, and PUT /v1/secrets/{path}.'), [
      'GET /v1/sys/nope',
      'PUT /v1/secrets/{path}',
    ]);
    assert.ok(documentedRoutes(text).length >= ROUTES.length - 1);
  });
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REQUEST_LOCALS } from '../../../server/http/locals.js';
import { repoRoot, tsSources } from './route-list.js';

/**
 * `res.locals` is typed by server/http/locals.ts (express's `Locals`, merged); a name it does not
 * declare would still type as `any` through express's index signature, so this scan holds every
 * use in the server to the declared names.
 */
describe('res.locals', () => {
  it('the server reads and writes only the names server/http/locals.ts declares', () => {
    const used = new Map<string, string>();
    for (const file of tsSources(join(repoRoot(), 'server'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\.locals(?:\.([A-Za-z_$][\w$]*)|\[)/g))
        used.set(m[1] ?? '[…] (a computed name)', file);
    }
    assert.ok(used.size >= 5, `the scan finds the uses (${[...used.keys()].join(', ')})`);
    const undeclared = [...used]
      .filter(([name]) => !(REQUEST_LOCALS as readonly string[]).includes(name))
      .map(([name, file]) => `${name} in ${file}`);
    assert.deepEqual(undeclared, [], 'declare these in server/http/locals.ts (RequestLocals and REQUEST_LOCALS)');
  });
});

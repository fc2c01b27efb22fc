import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_ERROR_EXIT } from '../../cli/errors.js';
import { ERROR_STATUS, REPLICATION_ERROR } from '../../sdk/wire/errors.js';
import { repoRoot, tsSources } from './http/route-list.js';

/**
 * The error catalogue is closed: every code any module throws is one of the catalogue's, and
 * every catalogue code is documented in docs/api.md with the status (or exit code) it has. The
 * types already refuse an unknown literal; this test pins the documentation and catches codes
 * built at run time from strings the compiler cannot see.
 */

/** The literal codes passed as first argument to `new <Class>(`, per file. */
function thrown(className: string, files: string[]): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const pattern = new RegExp(`new ${className}\\(\\s*'([a-z_]+)'`, 'g');
  for (const file of files) {
    for (const m of readFileSync(file, 'utf8').matchAll(pattern)) found.set(m[1]!, [...(found.get(m[1]!) ?? []), file]);
  }
  return found;
}

/** Rows `| <first cell> | <second cell> | …` of the markdown table that follows `heading`-like text. */
function tableAfter(text: string, marker: string): string[][] {
  const start = text.indexOf(marker);
  assert.ok(start >= 0, `docs/api.md has "${marker}"`);
  const rows: string[][] = [];
  let inTable = false;
  for (const line of text.slice(start).split('\n').slice(1)) {
    if (line.startsWith('|')) {
      inTable = true;
      rows.push(
        line
          .split('|')
          .slice(1, -1)
          .map((c) => c.trim()),
      );
    } else if (inTable) break;
  }
  return rows.slice(2); // header and separator
}

describe('error catalogue', () => {
  const root = repoRoot();
  const server = tsSources(join(root, 'server'));
  const sdk = tsSources(join(root, 'sdk'));
  const cli = tsSources(join(root, 'cli'));
  const docs = readFileSync(join(root, 'docs', 'api.md'), 'utf8');
  const codesIn = (cell: string) => [...cell.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!);

  it('every CofferError the server, SDK or CLI throws has a code of the catalogue', () => {
    const used = new Map([...thrown('CofferError', [...server, ...sdk, ...cli])]);
    assert.ok(used.size >= 20, `the scan found the codes in use (${used.size})`);
    const allowed = new Set([...Object.keys(ERROR_STATUS), 'unavailable', 'unexpected_response']);
    const unknown = [...used].filter(([code]) => !allowed.has(code));
    assert.deepEqual(unknown, [], 'codes outside sdk/wire/errors.ts');
    // The server's CofferError cannot carry the SDK-only codes (a client could not tell them apart).
    const serverOnly = thrown('CofferError', server);
    assert.deepEqual(
      [...serverOnly.keys()].filter((c) => !(c in ERROR_STATUS)),
      [],
    );
  });

  it('the CLI throws no server code for what it finds itself: its own problems are CliErrors', () => {
    for (const file of cli) {
      for (const m of readFileSync(file, 'utf8').matchAll(/new CofferError\(\s*'([a-z_]+)'[^;]*?,\s*0\s*\)/g)) {
        assert.fail(`${file}: new CofferError('${m[1]}', …, 0) poses as a server answer; throw a CliError`);
      }
    }
    const used = thrown('CliError', cli);
    assert.ok(used.size >= 4, `the scan found CliError codes (${used.size})`);
    assert.deepEqual(
      [...used.keys()].filter((c) => !(c in CLI_ERROR_EXIT)),
      [],
    );
  });

  it('every ReplicationError has a code of the closed replication list', () => {
    const used = thrown('ReplicationError', server);
    assert.ok(used.size >= 15, `the scan found the replication codes in use (${used.size})`);
    assert.deepEqual(
      [...used.keys()].filter((c) => !(c in REPLICATION_ERROR)),
      [],
    );
  });

  it('docs/api.md lists every HTTP error code under its status, and no other', () => {
    const documented = new Map<string, number>();
    for (const [status, codes] of tableAfter(docs, '### Errors'))
      for (const code of codesIn(codes!)) documented.set(code, Number(status));
    for (const [code, status] of Object.entries(ERROR_STATUS))
      assert.equal(documented.get(code), status, `docs/api.md "Errors": ${code} under ${status}`);
    assert.deepEqual(
      [...documented.keys()].filter((c) => !(c in ERROR_STATUS)),
      [],
      'documented codes that do not exist',
    );
  });

  it('docs/api.md lists every replication error code and every CLI error code with its exit code', () => {
    const replication = tableAfter(docs, '`sdk/wire/errors.ts`). These codes').map(([code]) => codesIn(code!)[0]);
    assert.deepEqual(replication.sort(), Object.keys(REPLICATION_ERROR).sort());
    const cliRows = tableAfter(docs, 'with one of these codes (never posing as a server code)');
    const documented = new Map(cliRows.map(([code, exit]) => [codesIn(code!)[0], Number(exit)]));
    for (const [code, exit] of Object.entries(CLI_ERROR_EXIT))
      assert.equal(documented.get(code), exit, `docs/api.md CLI code ${code}`);
    assert.equal(documented.size, Object.keys(CLI_ERROR_EXIT).length);
  });
});

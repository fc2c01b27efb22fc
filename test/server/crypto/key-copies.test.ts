import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Key material and V8's heap (server/crypto/aead.ts, random.ts). V8 keeps typed arrays of 64
 * bytes or less inside its heap, and moves their bytes out when native code is handed one,
 * leaving the old copy where no zeroize reaches it. Run in a child with
 * --allow-natives-syntax, whose %DebugPrint shows where an array's bytes are (`base_pointer`
 * 0: outside the heap).
 */
const aead = fileURLToPath(new URL('../../../server/crypto/aead.js', import.meta.url));
const random = fileURLToPath(new URL('../../../server/crypto/random.js', import.meta.url));

const SCRIPT = `
const { seal, open } = await import(${JSON.stringify(aead)});
const { systemRandom } = await import(${JSON.stringify(random)});
// Marks (string literals) go through %DebugPrint too, so they come out in order with what they label.
const inHeap = (a) => { %DebugPrint(a); };
const key = new Uint8Array(32).fill(7);
const dek = new Uint8Array(32).fill(9);
const aad = new Uint8Array(8);
%DebugPrint('@key before'); inHeap(key);
%DebugPrint('@dek before'); inHeap(dek);
const sealed = seal(key, dek, aad);
%DebugPrint('@key after seal'); inHeap(key);
%DebugPrint('@dek after seal'); inHeap(dek);
const opened = open(key, sealed, aad);
%DebugPrint('@key after open'); inHeap(key);
%DebugPrint('@opened'); inHeap(opened);
%DebugPrint(opened.buffer.byteLength === 32 && opened.every((b) => b === 9) ? '@own buffer ok' : '@own buffer bad');
%DebugPrint('@random'); inHeap(systemRandom(32));
const big = new Uint8Array(64).fill(5);
%DebugPrint('@64 before'); inHeap(big);
const sealedBig = seal(key, big, aad);
%DebugPrint('@64 after seal'); inHeap(big);
const openedBig = open(key, sealedBig, aad);
const openedBigger = open(key, seal(key, new Uint8Array(65), aad), aad);
%DebugPrint(openedBig.buffer.byteLength === 64 && openedBig.every((b) => b === 5) ? '@64 own buffer ok' : '@64 own buffer bad');
%DebugPrint(openedBigger.buffer.byteLength > 65 ? '@65 pooled ok' : '@65 pooled bad');
%DebugPrint('@end'); inHeap(key);
`;

describe('aead: key material stays where its owner can zeroize it', function () {
  this.timeout(20_000);

  it('never makes V8 move an in-heap key or key-size plaintext; a key-size result and a random draw live outside the heap', () => {
    const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', SCRIPT], {
      encoding: 'utf8',
    });
    // Each print starts with "DebugPrint: "; a mark (a string "@label") labels the print after it.
    const prints = out.split('DebugPrint: ').slice(1);
    const sections = new Map<string, string>();
    for (let i = 0; i < prints.length; i++) {
      const label = /#?@([^\n]+?)\s*$/m.exec(prints[i]!.split('\n')[0]!)?.[1];
      if (label !== undefined) sections.set(label, prints[i + 1] ?? '');
    }
    const basePointer = (label: string): string => {
      const m = /base_pointer: (\S+)/.exec(sections.get(label) ?? '');
      assert.ok(m, `no DebugPrint for ${label}:\n${out.slice(0, 400)}`);
      return m[1]!;
    };
    for (const label of ['key before', 'dek before'])
      assert.notEqual(basePointer(label), '0', `${label}: the test's arrays start inside the heap`);
    for (const label of ['key after seal', 'dek after seal', 'key after open'])
      assert.notEqual(basePointer(label), '0', `${label}: still inside the heap (never moved, so never copied)`);
    assert.equal(basePointer('opened'), '0', 'a key-size plaintext is outside the heap');
    assert.equal(basePointer('random'), '0', 'a random draw is outside the heap');
    assert.ok(sections.has('own buffer ok'), 'a key-size plaintext has a buffer of its own and opens right');
    assert.notEqual(basePointer('64 before'), '0', 'a 64-byte array starts inside the heap');
    assert.notEqual(basePointer('64 after seal'), '0', 'a 64-byte plaintext is copied, never moved');
    assert.ok(sections.has('64 own buffer ok'), 'a 64-byte plaintext opens into a buffer of its own');
    assert.ok(sections.has('65 pooled ok'), 'a larger one into a slice of the pool');
  });
});

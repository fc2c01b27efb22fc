import assert from 'node:assert/strict';
import { parseStrictJson } from '../../server/json.js';

const refused = (text: string, why: RegExp) =>
  assert.throws(
    () => parseStrictJson(text),
    (e: Error & { code?: string }) => e.code === 'invalid_request' && why.test(e.message),
    text,
  );

describe('parseStrictJson', () => {
  it('finds the end of each string past escaped quotes and runs of backslashes', () => {
    for (const value of ['a"b', 'a\\', 'a\\"', '\\\\', '"', '\\"\\"', 'x'.repeat(5000) + '\\"', '']) {
      const text = JSON.stringify({ [value]: value, after: { k: value } });
      assert.deepEqual(parseStrictJson(text), JSON.parse(text), text);
    }
  });

  it('refuses a string whose closing quote is escaped, at any run length', () => {
    for (const text of ['{"a":"b\\"}', '{"a":"b\\\\\\"}', '{"a\\":"b"}', '"', '{"a":"']) refused(text, /malformed/);
  });

  it('refuses duplicate keys that end in backslashes or hold escaped quotes', () => {
    refused('{"a\\\\":1,"a\\\\":2}', /duplicate key/);
    refused('{"a\\"":1,"a\\u0022":2}', /duplicate key/);
    assert.deepEqual(parseStrictJson('{"a\\\\":1,"a\\"":2}'), { 'a\\': 1, 'a"': 2 });
  });

  it('refuses lone surrogates from escapes or raw text, and keeps pairs, escaped or not', () => {
    refused('{"k":"\\ud800"}', /invalid Unicode/);
    refused('{"\\uDC00":"v"}', /invalid Unicode/);
    refused('{"k":"\\uD83D x"}', /invalid Unicode/);
    refused(`{"k":"${'\ud800'}"}`, /invalid Unicode/);
    assert.deepEqual(parseStrictJson('{"k":"\\ud83d\\ude00"}'), { k: '\u{1f600}' });
    assert.deepEqual(parseStrictJson('{"k":"\u{1f600}"}'), { k: '\u{1f600}' });
    // An escaped backslash before "ud800" is no escape: text, not a surrogate.
    assert.deepEqual(parseStrictJson('{"k":"\\\\ud800"}'), { k: '\\ud800' });
  });

  it('agrees with JSON.parse on random documents of quotes, backslashes and escapes, and catches their duplicates', () => {
    const alphabet = ['"', '\\', 'a', 'u', 'd', '8', '0', '{', '}', ',', ':', ' ', '\n', 'é'];
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const word = () => Array.from({ length: rand(12) }, () => alphabet[rand(alphabet.length)]).join('');
    for (let round = 0; round < 2000; round++) {
      const keys = [...new Set(Array.from({ length: 1 + rand(4) }, word))];
      const doc = Object.fromEntries(keys.map((k) => [k, rand(2) ? word() : [word(), { [k]: word() }]]));
      const text = JSON.stringify(doc);
      assert.deepEqual(parseStrictJson(text), JSON.parse(text), text);
      const twice = `{${JSON.stringify(keys[0])}:1,${JSON.stringify(keys[0])}:2}`;
      refused(twice, /duplicate key/);
    }
  });
});

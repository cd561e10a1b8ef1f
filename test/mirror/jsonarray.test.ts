/*
 * The listing splitter: whatever way a JSON array is cut into chunks, it
 * yields the same elements; an element over the cap comes as its size
 * only; what is not an array, or goes on after it, is refused.
 */
import test from 'ava';
import { JsonArraySplitter, NotAnArray, TrailingGarbage, type ArrayEntry } from '../../src/mirror/jsonarray.js';

function split(text: string, chunkSize: number, max = 1024): (string | number)[] {
  const splitter = new JsonArraySplitter(max);
  const out: ArrayEntry[] = [];
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += chunkSize) out.push(...splitter.feed(bytes.subarray(i, i + chunkSize)));
  if (!splitter.done) throw new Error('unfinished');
  return out.map((e) => ('bytes' in e ? e.bytes.toString().trim() : e.oversize));
}

const CASES: [string, string, (string | number)[]][] = [
  ['empty', ' [ ] ', []],
  ['scalars', '[1, "a,b]", true,null]', ['1', '"a,b]"', 'true', 'null']],
  ['objects with brackets and escapes in strings', '[{"a":"x\\"],"},{"b":[1,{"c":"\\\\"}]}]',
    ['{"a":"x\\"],"}', '{"b":[1,{"c":"\\\\"}]}']],
  ['multi-byte text', '["ünïcødé ✓",{"n":"日本"}]', ['"ünïcødé ✓"', '{"n":"日本"}']],
  ['junk between commas is an element for JSON.parse to refuse', '[1,,},]', ['1', '', '}', '']],
];

for (const [name, text, want] of CASES) {
  test(`splits: ${name}`, (t) => {
    for (const size of [1, 2, 3, 7, 1000]) t.deepEqual(split(text, size), want, `chunks of ${size}`);
  });
}

test('an element over the cap comes as its size, and the next ones still come', (t) => {
  const big = `"${'x'.repeat(2000)}"`;
  for (const size of [1, 64, 10_000]) t.deepEqual(split(`[1,${big},{"a":2}]`, size), ['1', big.length, '{"a":2}']);
});

test('refuses what is not an array, and bytes after its end', (t) => {
  t.throws(() => split('{"a":1}', 3), { instanceOf: NotAnArray });
  t.throws(() => split('[1] x', 3), { instanceOf: TrailingGarbage });
  t.deepEqual(split('[1] \n', 3), ['1']);
});

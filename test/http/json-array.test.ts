/*
 * A listing is serialised one element at a time (http/json.ts); its bytes
 * must be exactly JSON.stringify's, or a client's Content-MD5 and every
 * cached ETag would change with the size of the catalog.
 */
import { createHash, randomBytes } from 'node:crypto';
import test from 'ava';
import { jsonArrayBytes } from '../../src/http/json.js';
import { jsonTextArrayPieces } from '../../src/store/json-pieces.js';

const sha1 = (b: Buffer | string) => createHash('sha1').update(b).digest('hex');

test('small arrays, empty ones and elements without a JSON form come out as JSON.stringify writes them', (t) => {
  const cases: unknown[][] = [
    [],
    [{}],
    [1, 'two', null, true],
    [undefined, () => 1, Symbol('s'), { a: undefined }],
    [{ when: new Date(0), text: 'naïve — ☃ 𝄞', nested: [1, [2, { x: '\u0000"\\' }]] }],
  ];
  for (const items of cases) t.is(jsonArrayBytes(items).toString('utf8'), JSON.stringify(items));
});

test('a listing of several MB, cut into pieces inside, is byte for byte JSON.stringify of the whole array', (t) => {
  const items = Array.from({ length: 30_000 }, (_, i) => ({
    uuid: randomBytes(16).toString('hex'), i, name: `image-${i}`, tags: { é: 'ü'.repeat(i % 7) }, files: [{ sha1: sha1(String(i)), size: i }],
  }));
  const expected = Buffer.from(JSON.stringify(items), 'utf8');
  t.true(expected.length > 4 * 1024 * 1024, 'larger than several pieces');
  function* one() {
    yield* items;
  }
  const got = jsonArrayBytes(one());
  t.is(got.length, expected.length);
  t.is(sha1(got), sha1(expected));
});

test('arrays just below, at and above a multiple of the elements serialised per call come out whole', (t) => {
  for (const length of [1, 499, 500, 501, 999, 1000, 1001, 2503]) {
    const items = Array.from({ length }, (_, i) => (i % 97 === 0 ? undefined : { i, s: 'x'.repeat(i % 13) }));
    t.is(jsonArrayBytes(items).toString('utf8'), JSON.stringify(items), `${length} elements`);
  }
});

test('elements serialised beforehand are joined into the same bytes, over several pieces too', (t) => {
  for (const length of [0, 1, 2, 30_000]) {
    const items = Array.from({ length }, (_, i) => ({ uuid: randomBytes(16).toString('hex'), i, text: 'naïve ☃ 𝄞'.repeat(i % 5) }));
    const pieces = [...jsonTextArrayPieces(items.map((item) => JSON.stringify(item)))];
    t.is(pieces.join(''), JSON.stringify(items), `${length} elements`);
    if (length === 30_000) t.true(pieces.length > 2, 'cut into pieces');
  }
});

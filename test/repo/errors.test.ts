/*
 * Errors are data: every code the server can answer with is in the one
 * table of src/errors.ts, every code in the table is used, errors are only
 * made through the table's constructors, and the documented list is the
 * table's own.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { ERROR_TABLE } from '../../src/errors.js';
import { errorsMarkdown } from '../../src/docs.js';
import { REPO_ROOT } from '../helpers/images.js';

const SRC = path.join(REPO_ROOT, 'src');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

const code = sources(SRC).filter((f) => f !== path.join(SRC, 'errors.ts') && f !== path.join(SRC, 'docs.ts'))
  .map((f) => ({ file: path.relative(REPO_ROOT, f), text: fs.readFileSync(f, 'utf8') }));

test('errors are made from the table only', (t) => {
  const made = code.filter(({ text }) => /new ApiError\(/.test(text)).map(({ file }) => file);
  t.deepEqual(made, [], 'new ApiError( outside src/errors.ts');
});

test('every code thrown is in the table, and every code in the table is thrown somewhere', (t) => {
  const used = new Set(code.flatMap(({ text }) => [...text.matchAll(/\berrors\.([A-Z]\w+)\b/g)].map((m) => m[1]!)));
  for (const { text } of code) for (const m of text.matchAll(/errorResponses\(([^)]*)\)/g)) {
    for (const name of m[1]!.matchAll(/'([A-Z]\w+)'/g)) used.add(name[1]!);
  }
  const known = new Set(Object.keys(ERROR_TABLE));
  t.deepEqual([...used].filter((c) => !known.has(c)).sort(), [], 'codes used but not in the table');
  // invalidParameter() and toApiError() make InvalidParameter, InternalError, BadRequestError and ResourceNotFound,
  // and toApiError() InsufficientStorage from a full disk.
  const indirect = new Set(['InvalidParameter', 'InternalError', 'BadRequestError', 'InsufficientStorage']);
  t.deepEqual([...known].filter((c) => !used.has(c) && !indirect.has(c)).sort(), [], 'codes in the table nobody uses');
});

test('no code matches an error by its code string or status', (t) => {
  const wrong = code.flatMap(({ file, text }) => text.split('\n').flatMap((line, i) =>
    (/restCode\s*===|statusCode\s*===\s*\d/.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : [])));
  t.deepEqual(wrong, []);
});

test('docs/api.md lists exactly the table (npm run docs rewrites it)', (t) => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'api.md'), 'utf8');
  t.true(doc.includes(errorsMarkdown()), 'docs/api.md is out of date: run `npm run docs`');
});

/*
 * The docs hold together: the generated configuration reference is the
 * schema's own, the README leads to every document in docs/, and every
 * relative link in them names a file (and heading) that exists.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { configMarkdown } from '../../src/docs.js';
import { REPO_ROOT } from '../helpers/images.js';

const DOCS = path.join(REPO_ROOT, 'docs');
const markdown = ['README.md', ...fs.readdirSync(DOCS).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const read = (rel: string) => fs.readFileSync(path.join(REPO_ROOT, rel), 'utf8');

/** The anchors GitHub makes of a file's headings (outside code fences). */
function anchors(text: string): Set<string> {
  const found = new Set<string>();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = !fenced && /^#{1,6} (.*)$/.exec(line);
    if (m) found.add(m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replaceAll(' ', '-'));
  }
  return found;
}

test('docs/configuration.md lists every key of the schema, each described (npm run docs rewrites it)', (t) => {
  t.true(read('docs/configuration.md').includes(configMarkdown()), 'docs/configuration.md is out of date: run `npm run docs`');
});

test('the README links to every document in docs/', (t) => {
  const readme = read('README.md');
  const missing = markdown.filter((f) => f.startsWith('docs/') && !readme.includes(`](${f})`));
  t.deepEqual(missing, []);
});

test('every relative link in the README and docs/ names a file and heading that exist', (t) => {
  const broken: string[] = [];
  for (const file of markdown) {
    for (const [, target] of read(file).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue;
      const [rel, anchor] = target!.split('#') as [string, string | undefined];
      const abs = rel ? path.resolve(path.dirname(path.join(REPO_ROOT, file)), rel) : path.join(REPO_ROOT, file);
      if (!fs.existsSync(abs)) broken.push(`${file}: ${target}`);
      else if (anchor && abs.endsWith('.md') && !anchors(fs.readFileSync(abs, 'utf8')).has(anchor)) broken.push(`${file}: ${target} (no such heading)`);
    }
  }
  t.deepEqual(broken, []);
  t.true(markdown.length > 5, `checked ${markdown.length} files`);
});

/*
 * The shape of src/, checked: dependencies point one way (cli → http,
 * cluster, mirror → fetch → store → manifest → errors, log, metrics), the store's private
 * modules are private to it, and no module outside the store builds a
 * serve_dir path or looks at the disk under it.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { REPO_ROOT } from '../helpers/images.js';

const SRC = path.join(REPO_ROOT, 'src');

/** Each top-level part of src/ and the parts it may import from (besides its own files). */
const MAY_IMPORT: Record<string, string[]> = {
  errors: [],
  log: [],
  metrics: [],
  version: [],
  manifest: ['errors'],
  credentials: [],
  config: ['log', 'credentials'],
  store: ['manifest', 'errors', 'log', 'metrics', 'version'],
  http: ['store', 'manifest', 'errors', 'log', 'metrics', 'config', 'credentials', 'version'],
  fetch: ['store'],
  mirror: ['fetch', 'store', 'manifest', 'errors', 'log', 'config', 'version'],
  cluster: ['fetch', 'store', 'manifest', 'errors', 'log', 'metrics', 'config', 'version'],
  docs: ['errors', 'config', 'version'],
  cli: ['http', 'cluster', 'mirror', 'fetch', 'store', 'manifest', 'errors', 'log', 'metrics', 'config', 'credentials', 'version'],
};

/** Store modules nobody outside the store may import: the layout, the locks and the files it keeps. */
const STORE_PRIVATE = ['layout', 'locks', 'atomic', 'import', 'sidecar', 'tombstones', 'partials', 'index-cache', 'loader', 'digests', 'pid'];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** The top-level part a file of src/ belongs to: its folder, or its own name at the top. */
function partOf(file: string): string {
  const [first] = path.relative(SRC, file).split(path.sep);
  return first!.replace(/\.ts$/, '');
}

function imports(file: string): { line: number; target: string }[] {
  const found: { line: number; target: string }[] = [];
  fs.readFileSync(file, 'utf8').split('\n').forEach((text, i) => {
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)\.js'/g)) {
      found.push({ line: i + 1, target: path.resolve(path.dirname(file), `${m[1]}.ts`) });
    }
  });
  return found;
}

const files = sources(SRC);

test('every part of src/ is placed in the layering', (t) => {
  const unplaced = [...new Set(files.map(partOf))].filter((p) => !(p in MAY_IMPORT));
  t.deepEqual(unplaced, []);
});

test('dependencies point one way', (t) => {
  const wrong: string[] = [];
  for (const file of files) {
    const from = partOf(file);
    for (const { line, target } of imports(file)) {
      const to = partOf(target);
      if (to !== from && !MAY_IMPORT[from]?.includes(to)) {
        wrong.push(`${path.relative(REPO_ROOT, file)}:${line} (${from}) imports ${path.relative(REPO_ROOT, target)} (${to})`);
      }
    }
  }
  t.deepEqual(wrong, []);
});

test('the store\'s layout, locks and files are private to it', (t) => {
  const wrong: string[] = [];
  for (const file of files.filter((f) => partOf(f) !== 'store')) {
    for (const { line, target } of imports(file)) {
      const rel = path.relative(SRC, target).replace(/\.ts$/, '');
      if (STORE_PRIVATE.some((name) => rel === `store/${name}`)) wrong.push(`${path.relative(REPO_ROOT, file)}:${line} imports ${rel}`);
    }
  }
  t.deepEqual(wrong, []);
});

test('no module outside the store looks at serve_dir on disk', (t) => {
  const wrong: string[] = [];
  for (const file of files.filter((f) => partOf(f) !== 'store')) {
    fs.readFileSync(file, 'utf8').split('\n').forEach((text, i) => {
      if (/\.layout\b|existsSync|tombstone[A-Z]\w*\(|serve_?[dD]ir\s*[,)]\s*['`]/.test(text)) {
        wrong.push(`${path.relative(REPO_ROOT, file)}:${i + 1}: ${text.trim()}`);
      }
    });
  }
  t.deepEqual(wrong, []);
});

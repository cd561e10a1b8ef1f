/*
 * The repository stands alone: a fresh clone, with nothing beside it, must
 * build, test and explain itself. So no tracked file may point at the
 * folder named "shared" that sat beside the checkout while this project
 * was written (its fixtures and its protocol notes now live in
 * test/fixtures and docs/protocol.md). The patterns are assembled from
 * pieces so that this file does not match itself.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { REPO_ROOT } from '../helpers/images.js';

const SIBLING = 'shared';
const FORBIDDEN = [
  ['..', SIBLING].join('/'),
  ['', 'work', SIBLING].join('/'),
  [SIBLING, 'fixtures'].join('/'),
  [SIBLING, 'spec'].join('/'),
];

/** Folders that are built, installed, or written by a run or an operator: never tracked. */
const UNTRACKED = new Set(['.git', 'node_modules', 'dist', 'test-output', 'serve_dir', 'bench/data']);
/** Tracked files are small; anything bigger is data a walk happened upon. */
const MAX_BYTES = 4 * 1024 * 1024;

/** The tracked files (git ls-files), or, outside a git checkout, every file but the built and installed ones. */
function trackedFiles(): { files: string[]; how: string } {
  const git = spawnSync('git', ['ls-files', '-z'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (git.status === 0 && git.stdout.length > 0) {
    return { files: git.stdout.split('\0').filter((f) => f !== '' && fs.existsSync(path.join(REPO_ROOT, f))), how: 'git ls-files' };
  }
  const files: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(REPO_ROOT, rel), { withFileTypes: true })) {
      const name = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory() && !UNTRACKED.has(name)) walk(name);
      else if (entry.isFile()) files.push(name);
    }
  };
  walk('');
  return { files, how: 'a walk of the tree' };
}

/** "file:line: text" for every line of `text` that names the sibling folder. */
function offences(file: string, text: string): string[] {
  const out: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (FORBIDDEN.some((p) => line.includes(p))) out.push(`${file}:${i + 1}: ${line.trim()}`);
  });
  return out;
}

test('the check itself: it knows each pattern and names file and line', (t) => {
  for (const p of FORBIDDEN) {
    t.deepEqual(offences('x.ts', `first line\nsee ${p}/README.md\n`), [`x.ts:2: see ${p}/README.md`]);
  }
  t.deepEqual(offences('x.ts', 'test/fixtures and docs/protocol.md, a shared helper\n'), []);
});

test('no tracked file refers to a folder beside the repository', (t) => {
  const { files, how } = trackedFiles();
  t.log(`${files.length} files, from ${how}`);
  t.true(files.length > 100, 'the listing found the repository');
  t.true(files.includes('package.json'), 'the listing starts at the repository root');
  t.true(['src/', 'test/', 'docs/'].every((dir) => files.some((f) => f.startsWith(dir))), 'the listing includes src, test and docs');
  const found: string[] = [];
  for (const file of files) {
    if (fs.statSync(path.join(REPO_ROOT, file)).size > MAX_BYTES) continue;
    const bytes = fs.readFileSync(path.join(REPO_ROOT, file));
    if (bytes.subarray(0, 8000).includes(0)) continue; // binary
    found.push(...offences(file, bytes.toString('utf8')));
  }
  t.deepEqual(found, [], `these lines refer to the sibling "${SIBLING}" folder, which a clone does not have`);
});

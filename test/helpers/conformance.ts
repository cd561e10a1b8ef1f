/*
 * The one check that a serve_dir holds only what the store's layout
 * describes (src/store/layout.ts): image folders with a manifest, an
 * optional sidecar and plain data files, and the server's own dot-entries
 * with only the names each may hold. Transient entries (.staging, .locks,
 * .trash) must be empty once no operation is in flight. Anything else is a
 * leftover of an operation that did not clean up after itself.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { isImageDirName, isSafeFileName, MANIFEST_FILE, SERVER_ENTRIES, SIDECAR_FILE } from '../../src/store/layout.js';

export interface Allowed {
  /** Partial downloads in .mirror are kept on purpose, so that a download resumes. */
  partials?: boolean;
  /** Top-level names the test itself put there (a README, a foreign folder). */
  foreign?: string[];
}

/** Every entry of serve_dir the layout does not allow, as a path relative to it with a reason. */
export function strayEntries(serveDir: string, allowed: Allowed = {}): string[] {
  const stray: string[] = [];
  for (const entry of fs.readdirSync(serveDir, { withFileTypes: true })) {
    const name = entry.name;
    if (allowed.foreign?.includes(name)) continue;
    if (isImageDirName(name)) {
      stray.push(...imageFolderProblems(path.join(serveDir, name), name, entry.isDirectory()));
      continue;
    }
    const rule = SERVER_ENTRIES[name];
    if (!rule) {
      stray.push(`${name}: not in the layout`);
      continue;
    }
    if (rule.dir !== entry.isDirectory()) {
      stray.push(`${name}: should ${rule.dir ? '' : 'not '}be a folder`);
      continue;
    }
    if (!rule.dir) continue;
    for (const child of fs.readdirSync(path.join(serveDir, name))) {
      if (name === '.staging' && isSnapshotWrite(child)) continue;
      if (rule.transient) stray.push(`${name}/${child}: left behind`);
      else if (name === '.mirror' && !allowed.partials) stray.push(`${name}/${child}: a partial download left behind`);
      else if (!rule.holds?.test(child)) stray.push(`${name}/${child}: not a name ${name} holds`);
    }
  }
  return stray.sort();
}

function imageFolderProblems(dir: string, uuid: string, isDir: boolean): string[] {
  if (!isDir) return [`${uuid}: an image must be a folder`];
  const problems: string[] = [];
  const names = fs.readdirSync(dir, { withFileTypes: true });
  if (!names.some((e) => e.name === MANIFEST_FILE)) problems.push(`${uuid}: no ${MANIFEST_FILE}`);
  for (const e of names) {
    if (e.name === MANIFEST_FILE || e.name === SIDECAR_FILE) continue;
    if (!e.isFile()) problems.push(`${uuid}/${e.name}: not a plain file`);
    else if (!isSafeFileName(e.name) || e.name.startsWith('.')) problems.push(`${uuid}/${e.name}: not a data file name`);
  }
  return problems;
}

/** Asserts that serve_dir holds nothing the layout does not describe. */
export function assertConforms(t: ExecutionContext, serveDir: string, what: string, allowed: Allowed = {}): void {
  t.deepEqual(strayEntries(serveDir, allowed), [], `${what}: serve_dir holds only what the layout describes`);
}

/**
 * The same, of a serve_dir a running server may be writing to: one of its
 * own small atomic writes (a state file) may be in .staging at any moment,
 * and is gone a moment later, while a leftover stays. Polls until nothing
 * is stray or `ms` has passed, then asserts on what is there.
 */
export async function assertConformsSoon(t: ExecutionContext, serveDir: string, what: string, allowed: Allowed = {}, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  let stray = strayEntries(serveDir, allowed);
  while (stray.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    stray = strayEntries(serveDir, allowed);
  }
  t.deepEqual(stray, [], `${what}: serve_dir holds only what the layout describes`);
}

/**
 * A folder in .staging where the server is writing its index snapshot,
 * which it does at any moment of its own accord (store/atomic.ts names it
 * after the file): not an import, nor anything a test did.
 */
export function isSnapshotWrite(stagingEntry: string): boolean {
  return /^\d+-\.index-cache\.json-/.test(stagingEntry);
}

/** The transactions in <serve_dir>/.staging now (none, or no folder at all, when no import runs). */
export function stagingEntries(serveDir: string): string[] {
  try {
    return fs.readdirSync(path.join(serveDir, '.staging')).filter((e) => !isSnapshotWrite(e));
  } catch {
    return [];
  }
}

/*
 * Partial downloads: the bytes of one exact file (uuid and sha1) fetched
 * from an upstream or a peer, kept across restarts so that the next
 * attempt resumes. They live in their own dot-folder (store/layout.ts),
 * which the index ignores and start-up leaves alone.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Layout } from './layout.js';

/**
 * The file to download `sha1` of image `uuid` into, its folder made;
 * partials of the same image with another sha1 (the source replaced the
 * file) are removed.
 */
export async function partialFile(layout: Layout, uuid: string, sha1: string): Promise<string> {
  const dir = layout.partialRoot();
  await fs.mkdir(dir, { recursive: true });
  const file = layout.partialPath(uuid, sha1);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  await Promise.all(names
    .filter((n) => n.startsWith(`${uuid}-`) && path.join(dir, n) !== file)
    .map((n) => fs.rm(path.join(dir, n), { force: true })));
  return file;
}

/** Removes partial downloads nobody touched for `maxAgeMs`; returns their names. */
export async function removeOldPartials(layout: Layout, maxAgeMs: number): Promise<string[]> {
  const dir = layout.partialRoot();
  const removed: string[] = [];
  const cutoff = Date.now() - maxAgeMs;
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('.partial')) continue;
    const p = path.join(dir, name);
    const st = await fs.stat(p).catch(() => undefined);
    if (st && st.mtimeMs < cutoff) {
      await fs.rm(p, { force: true });
      removed.push(name);
    }
  }
  return removed;
}

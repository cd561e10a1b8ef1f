/*
 * Durable small writes: temp file, fsync, rename over the target, fsync the
 * folder. A reader sees the old file or the new one, never half of either.
 * The temp file is staged like an import, in its own folder under
 * .staging (same filesystem, so the rename is atomic), so a crash's
 * leftovers are removed at the next start like any interrupted import.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/** `data` may come in pieces (a generator), so that a big file never exists whole in memory. */
export async function writeFileAtomic(dest: string, data: string | Uint8Array | Iterable<string>, stagingRoot: string): Promise<void> {
  // Named after the file too, so a leftover (or a write caught in progress) says what it was.
  const dir = path.join(stagingRoot, `${process.pid}-${path.basename(dest)}-${randomUUID()}`);
  await mkdirIfMissing(stagingRoot);
  await fs.mkdir(dir);
  try {
    const tmp = path.join(dir, path.basename(dest));
    const fh = await fs.open(tmp, 'wx', 0o666);
    try {
      if (typeof data === 'string' || data instanceof Uint8Array) await fh.writeFile(data);
      else for (const piece of data) await fh.writeFile(piece);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, dest);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  await fsyncDir(path.dirname(dest));
}

/**
 * Not recursive: a write that outlives its serve_dir (removed by an operator,
 * or by a test's cleanup) must fail, not bring the folder back.
 */
async function mkdirIfMissing(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/**
 * Makes a rename durable. illumos refuses fsync on a directory opened
 * read-only (EBADF/EINVAL) where Linux allows it; there the rename is as
 * durable as ZFS makes it, so those two codes are not errors.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EBADF' && code !== 'EINVAL') throw err;
  } finally {
    await fh.close();
  }
}

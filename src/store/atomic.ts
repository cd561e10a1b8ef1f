/*
 * Durable small writes: temp file in the same folder, fsync, rename over
 * the target, fsync the folder. A reader sees the old file or the new one,
 * never half of either, and a crash leaves at most a dot-named temp file
 * that the index never reads.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export async function writeFileAtomic(dest: string, data: string | Uint8Array): Promise<void> {
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${randomUUID()}.tmp`);
  const fh = await fs.open(tmp, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, dest);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(dest));
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

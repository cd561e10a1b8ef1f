/*
 * Serialises changes to one image, across requests and across processes
 * (the server, import-image, admin commands): an in-process queue per uuid,
 * and a lock file <serve_dir>/.locks/<uuid> created with O_EXCL. A lock file
 * whose owner process is gone is stale and is taken over.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { ApiError } from '../errors.js';
import type { Layout } from './layout.js';
import { pidAlive } from './pid.js';

const queues = new Map<string, Promise<unknown>>();

async function acquire(file: string, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  await fs.mkdir(path.dirname(file), { recursive: true });
  for (;;) {
    try {
      await fs.writeFile(file, String(process.pid), { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(await fs.readFile(file, 'utf8').catch(() => ''));
    // Our own pid on a lock we are still queued for can only be a leftover.
    if (owner > 0 && (owner === process.pid || !pidAlive(owner))) {
      await fs.rm(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new ApiError('ServiceUnavailableError', 503, 'the image is being changed by another process; try again');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function withImageLock<T>(layout: Layout, uuid: string, fn: () => Promise<T>, waitMs = 30_000): Promise<T> {
  const previous = queues.get(uuid) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(async () => {
    const file = layout.lockPath(uuid);
    await acquire(file, waitMs);
    try {
      return await fn();
    } finally {
      await fs.rm(file, { force: true });
    }
  });
  queues.set(uuid, run);
  try {
    return await run;
  } finally {
    if (queues.get(uuid) === run) queues.delete(uuid);
  }
}

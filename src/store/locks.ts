/*
 * Serialises changes to one image, across requests and across processes
 * (the server, import-image, admin commands): an in-process queue per uuid,
 * and a lock file <serve_dir>/.locks/<uuid> holding its owner's pid. A lock
 * file whose owner process is gone is stale and is taken over; the lock is
 * removed on every way out of the change, a failed one included.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { errors } from '../errors.js';
import type { Layout } from './layout.js';
import { pidAlive } from './pid.js';

const queues = new Map<string, Promise<unknown>>();

/**
 * Creates the lock file with its owner's pid already in it: written to a
 * file of our own, then linked into place (link(2) fails if the lock
 * exists). A lock file is therefore never empty while it is held; an empty
 * one is what a process left that could not write its pid (a full disk, a
 * crash in between, an older version of this code) and is taken over once
 * it is older than any such write takes.
 */
async function tryCreate(layout: Layout, file: string): Promise<boolean> {
  // In .staging, where the next start removes it should we die before the rm below.
  const mine = layout.stagingDir(`${process.pid}-${randomUUID()}`);
  await fs.mkdir(layout.stagingRoot(), { recursive: true });
  try {
    await fs.writeFile(mine, String(process.pid), { flag: 'wx' });
    await fs.link(mine, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await fs.rm(mine, { force: true });
  }
}

const EMPTY_LOCK_GRACE_MS = 2000;

/** Whether the lock file is left over: its owner is gone, is us, or never wrote its pid. */
async function isStale(file: string): Promise<boolean> {
  const text = await fs.readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return false;
  const owner = Number(text);
  // Our own pid on a lock we are still queued for can only be a leftover.
  if (owner > 0) return owner === process.pid || !pidAlive(owner);
  const st = await fs.stat(file).catch(() => undefined);
  return st !== undefined && Date.now() - st.mtimeMs > EMPTY_LOCK_GRACE_MS;
}

async function acquire(layout: Layout, file: string, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  await fs.mkdir(path.dirname(file), { recursive: true });
  for (;;) {
    if (await tryCreate(layout, file)) return;
    if (await isStale(file)) {
      await fs.rm(file, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw errors.ServiceUnavailableError('the image is being changed by another process; try again', { headers: { 'Retry-After': '5' } });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Removes the lock files of processes that are gone, so that a crash leaves
 * nothing behind once the store is opened again; a lock is otherwise only
 * taken over when someone next wants it.
 */
export async function removeDeadLocks(layout: Layout): Promise<string[]> {
  const removed: string[] = [];
  const root = layout.lockRoot();
  for (const name of await fs.readdir(root).catch(() => [] as string[])) {
    const owner = Number(await fs.readFile(path.join(root, name), 'utf8').catch(() => ''));
    if (owner > 0 && owner !== process.pid && !pidAlive(owner)) {
      await fs.rm(path.join(root, name), { force: true });
      removed.push(path.join(path.basename(root), name));
    }
  }
  return removed;
}

export async function withImageLock<T>(layout: Layout, uuid: string, fn: () => Promise<T>, waitMs = 30_000): Promise<T> {
  const previous = queues.get(uuid) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(async () => {
    const file = layout.lockPath(uuid);
    await acquire(layout, file, waitMs);
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

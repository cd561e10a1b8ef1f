/*
 * Downloads one image file into serve_dir/.mirror/, resuming what an
 * earlier attempt left there. The store ignores dot-folders and the start-up
 * cleanup only empties .staging and .trash, so a partial file survives a
 * restart and is never visible. A partial is named <uuid>-<sha1>.partial:
 * the bytes of one exact file, whatever upstream they come from.
 *
 * Resuming: with N bytes already there, the request carries
 * "Range: bytes=N-". A 206 whose Content-Range starts at N is appended; a
 * 200 (the upstream ignores ranges) starts the file over. The SHA-1 (and
 * MD5, when the upstream gives one) covers the whole file: the bytes on
 * disk are hashed first, then the new ones as they arrive. A file that
 * does not match is deleted, so the next attempt starts from nothing.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { UpstreamImage } from './catalog.js';
import { asUpstreamError, UpstreamError, type Upstream } from './upstream.js';

export const MIRROR_DIR = '.mirror';

export function mirrorDir(serveDir: string): string {
  return path.join(serveDir, MIRROR_DIR);
}

export function partialPath(dir: string, image: Pick<UpstreamImage, 'uuid' | 'sha1'>): string {
  return path.join(dir, `${image.uuid}-${image.sha1}.partial`);
}

export interface DownloadEvents {
  /** Bytes appended to the partial file. */
  bytes?: (n: number) => void;
  /** A download picks up where an earlier one stopped. */
  resumed?: (from: number) => void;
}

export interface Download {
  /** The verified file, complete. */
  file: string;
  /** Bytes that came over the network in this call. */
  fetched: number;
  resumedFrom: number;
}

interface Hashes {
  sha1: Hash;
  md5: Hash;
}

class LocalFailure extends Error {
  constructor(cause: unknown) {
    super('local failure', { cause });
  }
}

const newHashes = (): Hashes => ({ sha1: createHash('sha1'), md5: createHash('md5') });

async function sizeOf(file: string): Promise<number> {
  return fs.stat(file).then((st) => st.size, () => 0);
}

async function hashFile(file: string, hashes: Hashes): Promise<void> {
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    hashes.sha1.update(chunk as Buffer);
    hashes.md5.update(chunk as Buffer);
  }
}

/** Removes partials of this image for another sha1 (the upstream replaced the file). */
async function removeStale(dir: string, image: UpstreamImage, keep: string): Promise<void> {
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  await Promise.all(names
    .filter((n) => n.startsWith(`${image.uuid}-`) && path.join(dir, n) !== keep)
    .map((n) => fs.rm(path.join(dir, n), { force: true })));
}

function verify(image: UpstreamImage, hashes: Hashes, file: string): Promise<void> | void {
  const sha1 = hashes.sha1.digest('hex');
  const md5 = hashes.md5.digest('hex');
  const wrong = sha1 !== image.sha1 ? `sha1 ${sha1}, the manifest says ${image.sha1}`
    : image.md5 && md5 !== image.md5 ? `md5 ${md5}, the manifest says ${image.md5}` : undefined;
  if (!wrong) return undefined;
  return fs.rm(file, { force: true }).then(() => {
    throw new UpstreamError(`image ${image.uuid}: the file downloaded has ${wrong}; discarded`, { retryable: true });
  });
}

function contentRangeStart(header: string | undefined, size: number): number | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header ?? '');
  if (!m) return undefined;
  if (m[3] !== '*' && Number(m[3]) !== size) return undefined;
  if (Number(m[2]) !== size - 1) return undefined;
  return Number(m[1]);
}

/**
 * One attempt at getting the whole, verified file. Throws an UpstreamError
 * (retryable or not); whatever arrived before a failure stays for the next
 * attempt, unless it is known to be wrong.
 */
export async function download(upstream: Upstream, dir: string, image: UpstreamImage,
  events: DownloadEvents = {}, signal?: AbortSignal): Promise<Download> {
  await fs.mkdir(dir, { recursive: true });
  const file = partialPath(dir, image);
  await removeStale(dir, image, file);
  let have = await sizeOf(file);
  if (have > image.size) {
    await fs.rm(file, { force: true });
    have = 0;
  }
  let hashes = newHashes();
  if (have > 0) await hashFile(file, hashes);
  const resumedFrom = have;
  if (have === image.size) {
    await verify(image, hashes, file);
    return { file, fetched: 0, resumedFrom };
  }

  const res = await upstream.getFile(image.fileUrl, have, signal);
  const shown = upstream.show(image.fileUrl);
  if (res.status === 416) {
    res.body.resume();
    await fs.rm(file, { force: true });
    throw new UpstreamError(`${shown}: range ${have}- not satisfiable; starting over`, { retryable: true, status: 416 });
  }
  if (res.status === 206) {
    const start = contentRangeStart(res.headers['content-range'], image.size);
    if (start !== have) {
      res.body.destroy();
      await fs.rm(file, { force: true });
      throw new UpstreamError(`${shown}: answered a range request with Content-Range ${String(res.headers['content-range'])}; starting over`,
        { retryable: true });
    }
    events.resumed?.(have);
  } else if (have > 0) {
    // 200: the upstream sends the whole file again.
    have = 0;
    hashes = newHashes();
  }
  const expected = image.size - have;
  const length = res.headers['content-length'];
  if (length !== undefined && Number(length) !== expected) {
    res.body.destroy();
    throw new UpstreamError(`${shown}: Content-Length ${length}, expected ${expected} bytes`, { retryable: true });
  }

  const fh = await fs.open(file, have === 0 ? 'w' : 'a', 0o644);
  let fetched = 0;
  try {
    for await (const chunk of res.body) {
      const buf = chunk as Buffer;
      if (have + buf.length > image.size) {
        res.body.destroy();
        await fh.close().catch(() => undefined);
        await fs.rm(file, { force: true });
        throw new UpstreamError(`${shown}: more bytes than the ${image.size} the manifest says; discarded`, { retryable: true });
      }
      await fh.write(buf).catch((err: unknown) => {
        throw new LocalFailure(err);
      });
      hashes.sha1.update(buf);
      hashes.md5.update(buf);
      have += buf.length;
      fetched += buf.length;
      events.bytes?.(buf.length);
    }
  } catch (err) {
    res.body.destroy();
    // A local failure (disk full) says nothing about the upstream.
    if (err instanceof LocalFailure) throw err.cause;
    throw asUpstreamError(err, `${shown}: connection lost after ${have} of ${image.size} bytes`);
  } finally {
    await fh.close().catch(() => undefined);
  }
  if (have < image.size) {
    throw new UpstreamError(`${shown}: the file ended after ${have} of ${image.size} bytes`, { retryable: true });
  }
  await verify(image, hashes, file);
  return { file, fetched, resumedFrom };
}

/** Removes partial downloads nobody touched for `maxAgeMs`. */
export async function removeOldPartials(dir: string, maxAgeMs: number): Promise<string[]> {
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

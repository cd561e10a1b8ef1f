/*
 * The one file fetcher, shared by the mirror and the cluster puller: it
 * gets one image file from another server into the store's partial
 * download of that exact file (uuid and sha1; store/partials.ts), resuming
 * what an earlier attempt left there, and verifies it while it streams.
 * The import then moves the partial into its staging folder with one
 * rename: the bytes are written once.
 *
 * Resuming: with N bytes already there, the request carries
 * "Range: bytes=N-". A 206 whose Content-Range starts at N is appended; a
 * 200 (the other side ignores ranges) starts the file over. The SHA-1 (and
 * MD5, when the manifest gives one) covers the whole file: the bytes on
 * disk are hashed first, then the new ones as they arrive. A file that
 * does not match is deleted, so the next attempt starts from nothing.
 */
import fs from 'node:fs/promises';
import { FileHashes, hashFile } from '../store/file-hash.js';
import type { HttpClient } from './client.js';
import { asUpstreamError, BadBytes, UpstreamError } from './errors.js';
import { displayUrl } from './url.js';

export interface FileWanted {
  /** The partial download to write to (ImageStore.partialFile). */
  file: string;
  size: number;
  /** lowercase hex */
  sha1: string;
  /** lowercase hex, when the manifest gives one */
  md5?: string;
}

export interface FetchEvents {
  /** Bytes appended to the partial file. */
  bytes?: (n: number) => void;
  /** A download picks up where an earlier one stopped. */
  resumed?: (from: number) => void;
}

export interface Fetched {
  /** The verified file, complete. */
  file: string;
  /** Bytes that came over the network in this call. */
  fetched: number;
  /** Bytes that were on disk already when this call started. */
  resumedFrom: number;
}

/** A failure of the local disk: it says nothing about the other server. */
class LocalFailure extends Error {
  constructor(cause: unknown) {
    super('local failure', { cause });
  }
}

async function sizeOf(file: string): Promise<number> {
  return fs.stat(file).then((st) => st.size, () => 0);
}

async function verify(want: FileWanted, hashes: FileHashes, shown: string, keptFrom: number): Promise<void> {
  const got = await hashes.digest();
  const md5 = Buffer.from(got.md5, 'base64').toString('hex');
  const wrong = got.sha1 !== want.sha1 ? `sha1 ${got.sha1}, the manifest says ${want.sha1}`
    : want.md5 && md5 !== want.md5 ? `md5 ${md5}, the manifest says ${want.md5}` : undefined;
  if (!wrong) return;
  await fs.rm(want.file, { force: true });
  throw new BadBytes(`${shown}: the file downloaded has ${wrong}; discarded`, keptFrom);
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
 * (retryable or not; BadBytes for bytes proven wrong); whatever arrived
 * before a failure stays for the next attempt, unless it is known to be
 * wrong.
 */
export async function fetchFile(client: HttpClient, url: URL, want: FileWanted, events: FetchEvents = {},
  signal?: AbortSignal): Promise<Fetched> {
  // Hashed where the file's size says (file-hash.ts), and freed however the attempt ends.
  const hashing = { hashes: new FileHashes(want.size) };
  try {
    return await attempt(client, url, want, events, signal, hashing);
  } finally {
    hashing.hashes.abandon();
  }
}

async function attempt(client: HttpClient, url: URL, want: FileWanted, events: FetchEvents,
  signal: AbortSignal | undefined, hashing: { hashes: FileHashes }): Promise<Fetched> {
  const { file, size } = want;
  const shown = displayUrl(url);
  let have = await sizeOf(file);
  if (have > size) {
    await fs.rm(file, { force: true });
    have = 0;
  }
  if (have > 0) await hashFile(file, { hashes: hashing.hashes, ...(signal ? { signal } : {}) });
  const resumedFrom = have;
  if (have === size) {
    await verify(want, hashing.hashes, shown, have);
    return { file, fetched: 0, resumedFrom };
  }

  const res = await client.getFile(url, have, signal);
  if (res.status === 416) {
    res.body.resume();
    await fs.rm(file, { force: true });
    throw new UpstreamError(`${shown}: range ${have}- not satisfiable; starting over`, { retryable: true, status: 416 });
  }
  if (res.status === 206) {
    const start = contentRangeStart(res.headers['content-range'], size);
    if (start !== have) {
      res.body.destroy();
      await fs.rm(file, { force: true });
      throw new UpstreamError(`${shown}: answered a range request with Content-Range ${String(res.headers['content-range'])}; starting over`,
        { retryable: true });
    }
    events.resumed?.(have);
  } else if (have > 0) {
    // 200: the whole file comes again.
    have = 0;
    hashing.hashes.abandon();
    hashing.hashes = new FileHashes(size);
  }
  // Bytes of an earlier attempt that stay in the file.
  const kept = have;
  const expected = size - have;
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
      if (have + buf.length > size) {
        res.body.destroy();
        await fh.close().catch(() => undefined);
        await fs.rm(file, { force: true });
        throw new BadBytes(`${shown}: more bytes than the ${size} the manifest says; discarded`, kept);
      }
      await fh.write(buf).catch((err: unknown) => {
        throw new LocalFailure(err);
      });
      await hashing.hashes.update(buf).catch((err: unknown) => {
        throw new LocalFailure(err);
      });
      have += buf.length;
      fetched += buf.length;
      events.bytes?.(buf.length);
    }
  } catch (err) {
    res.body.destroy();
    if (err instanceof LocalFailure) throw err.cause;
    throw asUpstreamError(err, `${shown}: connection lost after ${have} of ${size} bytes`);
  } finally {
    await fh.close().catch(() => undefined);
  }
  if (have < size) {
    throw new UpstreamError(`${shown}: the file ended after ${have} of ${size} bytes`, { retryable: true });
  }
  await verify(want, hashing.hashes, shown, kept);
  return { file, fetched, resumedFrom };
}

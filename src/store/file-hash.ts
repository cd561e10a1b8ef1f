/*
 * The one way a file on disk, or a download on its way to disk, is hashed:
 * the integrity scrub, the paced MD5 pass and the fetcher (mirror and
 * cluster downloads) all go through here. The caller paces the read (a
 * rate limit, a budget shared with other work) by the promise it returns
 * for each chunk, and can carry the hashes on over bytes that arrive later
 * (a download resumed after what is on disk).
 *
 * A big file is hashed on the import's worker threads (digest-pool.ts),
 * so that hashing a GiB never takes the main thread's two seconds from
 * the requests; a small one is hashed here, where it costs less than
 * handing it over.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { ParallelHash } from './digest-pool.js';
import type { FileDigest } from './hashing.js';

const OFF_THREAD_BYTES = 4 * 1024 * 1024;

interface Hasher {
  update(chunk: Buffer): Promise<void> | void;
  digest(): Promise<{ sha1: string; md5: string }>;
  abandon(): void;
}

class LocalHash implements Hasher {
  private readonly sha1 = createHash('sha1');
  private readonly md5 = createHash('md5');

  update(chunk: Buffer): void {
    this.sha1.update(chunk);
    this.md5.update(chunk);
  }

  digest(): Promise<{ sha1: string; md5: string }> {
    return Promise.resolve({ sha1: this.sha1.digest('hex'), md5: this.md5.digest('base64') });
  }

  abandon(): void {}
}

/**
 * SHA-1 and MD5 of a byte stream, fed piece by piece. Either digested or
 * abandoned: the worker threads keep a job's state until one of the two.
 */
export class FileHashes {
  private readonly hasher: Hasher;
  private result: Promise<FileDigest> | undefined;
  size = 0;

  /** `expectedBytes`: how big the whole will be, which decides where it is hashed. */
  constructor(expectedBytes: number) {
    this.hasher = expectedBytes >= OFF_THREAD_BYTES ? new ParallelHash() : new LocalHash();
  }

  /** Resolves once the chunk may be reused. */
  async update(chunk: Buffer): Promise<void> {
    if (this.result) throw new Error('the hashes were already read');
    this.size += chunk.length;
    await this.hasher.update(chunk);
  }

  /** sha1 in lowercase hex, md5 in base64 (as Content-MD5 carries it); the hashes end here. */
  digest(): Promise<FileDigest> {
    this.result ??= this.hasher.digest().then(({ sha1, md5 }) => ({ size: this.size, sha1, md5 }));
    return this.result;
  }

  /** Frees what the hashing holds, unless it was digested already. */
  abandon(): void {
    if (!this.result) this.hasher.abandon();
  }
}

export interface HashFileOptions {
  /** Carry these on instead of starting afresh; the caller then abandons them if this fails. */
  hashes?: FileHashes;
  /** The file's size when the caller knows it (the index does), saving a stat. */
  expectedBytes?: number;
  /** Awaited after each chunk with its length: where a caller paces the read. */
  pace?: (bytes: number) => Promise<void> | void;
  signal?: AbortSignal;
  chunkBytes?: number;
}

/** Reads `file` whole into the hashes and returns them, not yet digested. */
export async function hashFile(file: string, opts: HashFileOptions = {}): Promise<FileHashes> {
  const hashes = opts.hashes ?? new FileHashes(opts.expectedBytes ?? (await fs.stat(file)).size);
  try {
    const stream = createReadStream(file, { highWaterMark: opts.chunkBytes ?? 1024 * 1024, ...(opts.signal ? { signal: opts.signal } : {}) });
    for await (const chunk of stream) {
      await hashes.update(chunk as Buffer);
      await opts.pace?.((chunk as Buffer).length);
    }
  } catch (err) {
    if (!opts.hashes) hashes.abandon();
    throw err;
  }
  return hashes;
}

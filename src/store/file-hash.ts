/*
 * The one way a file on disk is hashed: the integrity scrub, the paced MD5
 * pass and the fetcher resuming a partial download all read through here.
 * The caller paces the read (a rate limit, a budget shared with other
 * work) by the promise it returns for each chunk, and can carry the hashes
 * on over bytes that arrive later (a download resumed after what is on
 * disk).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { FileDigest } from './hashing.js';

/** SHA-1 and MD5 of a byte stream, fed piece by piece. */
export class FileHashes {
  private readonly sha1 = createHash('sha1');
  private readonly md5 = createHash('md5');
  private result: FileDigest | undefined;
  size = 0;

  update(chunk: Buffer): void {
    if (this.result) throw new Error('the hashes were already read');
    this.sha1.update(chunk);
    this.md5.update(chunk);
    this.size += chunk.length;
  }

  /** sha1 in lowercase hex, md5 in base64 (as Content-MD5 carries it); the hashes end here. */
  digest(): FileDigest {
    this.result ??= { size: this.size, sha1: this.sha1.digest('hex'), md5: this.md5.digest('base64') };
    return this.result;
  }
}

export interface HashFileOptions {
  /** Carry these on instead of starting afresh. */
  hashes?: FileHashes;
  /** Awaited after each chunk with its length: where a caller paces the read. */
  pace?: (bytes: number) => Promise<void> | void;
  signal?: AbortSignal;
  chunkBytes?: number;
}

/** Reads `file` whole into the hashes and returns them, not yet digested. */
export async function hashFile(file: string, opts: HashFileOptions = {}): Promise<FileHashes> {
  const hashes = opts.hashes ?? new FileHashes();
  const stream = createReadStream(file, { highWaterMark: opts.chunkBytes ?? 1024 * 1024, ...(opts.signal ? { signal: opts.signal } : {}) });
  for await (const chunk of stream) {
    hashes.update(chunk as Buffer);
    await opts.pace?.((chunk as Buffer).length);
  }
  return hashes;
}

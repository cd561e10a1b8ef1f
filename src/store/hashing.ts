/*
 * A pass-through stream that counts the bytes going by and hashes them with
 * SHA-1 and MD5, so an import learns its digests while the bytes are being
 * written, never from a second read. The hashing runs on worker threads
 * (digest-pool.ts) while the bytes go on to the disk. It stops the stream
 * as soon as more bytes arrive than allowed.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { errors } from '../errors.js';
import { ParallelHash } from './digest-pool.js';

export interface FileDigest {
  size: number;
  /** lowercase hex, as imgadm compares it */
  sha1: string;
  /** base64, as Content-MD5 carries it */
  md5: string;
}

export class Digester extends Transform {
  private readonly hash = new ParallelHash();
  private bytes = 0;
  private result: FileDigest | undefined;

  constructor(private readonly maxBytes: number) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      done(errors.Upload(`the file is larger than the ${this.maxBytes} bytes allowed`));
      return;
    }
    // The chunk goes on to the disk at once; only a backlog at the hashers holds the next one.
    this.push(chunk);
    this.hash.update(chunk).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    this.hash.digest().then(({ sha1, md5 }) => {
      this.result = { size: this.bytes, sha1, md5 };
      done();
    }, done);
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    this.hash.abandon();
    done(err);
  }

  /** Valid once the stream has finished. */
  digest(): FileDigest {
    if (!this.result) throw new Error('the digest is read before the stream finished');
    return this.result;
  }
}

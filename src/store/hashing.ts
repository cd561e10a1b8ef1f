/*
 * A pass-through stream that counts the bytes going by and hashes them with
 * SHA-1 and MD5, so an import learns its digests while the bytes are being
 * written, never from a second read. It stops the stream as soon as more
 * bytes arrive than allowed.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ApiError } from '../errors.js';

export interface FileDigest {
  size: number;
  /** lowercase hex, as imgadm compares it */
  sha1: string;
  /** base64, as Content-MD5 carries it */
  md5: string;
}

export class Digester extends Transform {
  private readonly sha1: Hash = createHash('sha1');
  private readonly md5: Hash = createHash('md5');
  private bytes = 0;

  constructor(private readonly maxBytes: number) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      done(new ApiError('Upload', 400, `the file is larger than the ${this.maxBytes} bytes allowed`));
      return;
    }
    this.sha1.update(chunk);
    this.md5.update(chunk);
    done(null, chunk);
  }

  /** Valid once the stream has finished. */
  digest(): FileDigest {
    return { size: this.bytes, sha1: this.sha1.digest('hex'), md5: this.md5.digest('base64') };
  }
}

/*
 * A pass-through that also gunzips what goes by and throws the output away,
 * failing if the gzip stream is truncated or corrupt. A stream piped in over
 * ssh has no length or checksum announced up front; when the producer dies
 * mid-way the reader just sees end-of-file, and only gzip's own trailer
 * (CRC and length) tells a whole stream from a cut one.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip, type Gunzip } from 'node:zlib';
import { errors } from '../errors.js';

const corrupt = (why: string) => errors.Download(`the gzip stream is truncated or corrupt (${why})`);

export class GzipCheck extends Transform {
  private readonly gunzip: Gunzip = createGunzip();
  private failure: Error | null = null;

  constructor() {
    super({ highWaterMark: 1024 * 1024 });
    this.gunzip.on('error', (err) => {
      this.failure ??= corrupt(err.message);
    });
    this.gunzip.resume();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.failure) {
      done(this.failure);
      return;
    }
    // Pass the bytes on at once; only wait when the checker falls behind.
    if (this.gunzip.write(chunk)) {
      done(null, chunk);
      return;
    }
    // A corrupt stream makes gunzip fail while we wait, and a failed stream
    // never drains: wait for either, or the import would stall for ever.
    const settle = () => {
      this.gunzip.off('drain', settle);
      this.gunzip.off('error', settle);
      if (this.failure) done(this.failure);
      else done(null, chunk);
    };
    this.gunzip.on('drain', settle);
    this.gunzip.on('error', settle);
  }

  override _flush(done: TransformCallback): void {
    if (this.failure) {
      done(this.failure);
      return;
    }
    this.gunzip.once('end', () => done(this.failure));
    this.gunzip.once('error', () => done(this.failure));
    this.gunzip.end();
  }
}

/*
 * The seal of `import-image --sealed`: an explicit end of stream.
 *
 * A stream piped over ssh has no length announced up front, and a pipe
 * stage that fails mid-way does not always cut it detectably: when
 * `zfs send` dies in `zfs send | gzip | ssh …`, gzip sees end-of-file and
 * ends its own stream cleanly, so a truncated image arrives as a perfect
 * gzip file. With --sealed the sender appends one fixed-length line after
 * the data, and writes it only once every stage before ssh has succeeded
 * (mkimg checks PIPESTATUS first):
 *
 *   IMAGE-SERVER-SEAL size=<20 decimal digits> sha1=<40 lowercase hex>\n
 *
 * size and sha1 are those of the data before the seal. import-image holds
 * back the last SEAL_LENGTH bytes it reads, stores everything before them,
 * and publishes only if those bytes are a seal that matches what it stored.
 * No seal (the sender failed, or the connection was cut) or a wrong one
 * fails the import, and nothing is published.
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CliError } from '../errors.js';

const PREFIX = 'IMAGE-SERVER-SEAL';
export const SEAL_LENGTH = `${PREFIX} size=${'0'.repeat(20)} sha1=${'0'.repeat(40)}\n`.length;
const SEAL_RE = /^IMAGE-SERVER-SEAL size=(\d{20}) sha1=([0-9a-f]{40})\n$/;

/** The seal a sender appends after `size` bytes whose sha1 is `sha1`. */
export function sealLine(size: number, sha1: string): string {
  return `${PREFIX} size=${String(size).padStart(20, '0')} sha1=${sha1.toLowerCase()}\n`;
}

/** Passes the data through, minus the seal, and fails at the end unless the seal matches. */
export class SealCheck extends Transform {
  private held = Buffer.alloc(0);
  private readonly hash = createHash('sha1');
  private size = 0;

  constructor() {
    super({ highWaterMark: 1024 * 1024 });
  }

  private pass(data: Buffer): void {
    if (data.length === 0) return;
    this.hash.update(data);
    this.size += data.length;
    this.push(data);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (chunk.length >= SEAL_LENGTH) {
      // Everything held so far, and all but the last SEAL_LENGTH bytes of
      // this chunk, are data; no large buffer is ever copied.
      this.pass(this.held);
      this.pass(chunk.subarray(0, chunk.length - SEAL_LENGTH));
      this.held = Buffer.from(chunk.subarray(chunk.length - SEAL_LENGTH));
    } else {
      const all = Buffer.concat([this.held, chunk]);
      this.pass(all.subarray(0, Math.max(0, all.length - SEAL_LENGTH)));
      this.held = all.subarray(Math.max(0, all.length - SEAL_LENGTH));
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    const match = SEAL_RE.exec(this.held.toString('latin1'));
    const received = this.size + this.held.length;
    if (!match) {
      done(new CliError(`the stream ended without its seal after ${received} bytes: the sender failed or the connection was cut; nothing was published`));
      return;
    }
    const size = Number(match[1]);
    const sha1 = this.hash.digest('hex');
    if (size !== this.size || sha1 !== match[2]) {
      done(new CliError(`the stream does not match its seal: sent ${size} bytes with sha1 ${match[2]}, received ${this.size} bytes with sha1 ${sha1}; nothing was published`));
      return;
    }
    done();
  }
}

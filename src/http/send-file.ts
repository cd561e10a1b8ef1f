/*
 * Writes a byte range of an open file to the response through two reused
 * buffers: one is read while the other is being sent, and nothing is
 * allocated per chunk. fs.ReadStream allocates a fresh buffer for every
 * chunk; with this loop a multi-GB download runs at nginx's pace with a
 * fixed amount of memory per client. Koa is bypassed for the body only:
 * status and headers were set through ctx as usual.
 */
import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { Context } from 'koa';

const CHUNK = 512 * 1024;
/** Spare buffers kept for the next downloads; beyond this they go to the GC. */
const POOL_LIMIT = 16;
const pool: Buffer[] = [];

function take(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
}

function give(buffers: Buffer[]): void {
  for (const b of buffers) if (pool.length < POOL_LIMIT) pool.push(b);
}

/** Resolves when the socket wants more, or when it is gone. */
function writable(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

async function pump(handle: FileHandle, res: ServerResponse, start: number, length: number): Promise<void> {
  const buffers = [take(), take()];
  let sent = 0;
  let current = 0;
  const read = (buffer: Buffer) => handle.read(buffer, 0, Math.min(CHUNK, length - sent), start + sent);
  let pending = length > 0 ? read(buffers[0]!) : null;
  try {
    while (pending) {
      const { bytesRead } = await pending;
      pending = null;
      if (bytesRead === 0) throw new Error('the file ended early');
      if (res.destroyed) return;
      const more = res.write(buffers[current]!.subarray(0, bytesRead));
      sent += bytesRead;
      current ^= 1;
      // Read the next chunk while this one is on its way.
      if (sent < length) pending = read(buffers[current]!);
      if (!more) await writable(res);
    }
    res.end();
  } finally {
    await pending?.catch(() => undefined);
    // Only buffers the socket no longer holds go back to the pool.
    if (res.writableFinished || res.destroyed) give(buffers);
  }
}

/** Sends `length` bytes from `start`; the handle is closed when done. */
export function streamFile(ctx: Context, handle: FileHandle, start: number, length: number): void {
  ctx.respond = false;
  ctx.state.streaming = true;
  const res = ctx.res;
  res.writeHead(ctx.status);
  pump(handle, res, start, length)
    .catch((err: unknown) => {
      ctx.state.log?.warn({ err }, 'download failed mid-stream');
      res.destroy();
    })
    .finally(() => void handle.close());
}

/*
 * Sends one image file. Everything a client checks comes from the index, so
 * HEAD, 304 and 416 answers never touch the disk: exact Content-Length,
 * Content-MD5 (base64, only when this server recorded it), the sha1 as a
 * strong ETag, Last-Modified, one byte range. Never compressed, never
 * redirected; the Accept header is ignored (imgadm sends application/json).
 */
import type { Context } from 'koa';
import parseRange from 'range-parser';
import { ApiError, ResourceNotFound } from '../errors.js';
import type { ImageRecord, ImageStore } from '../store/store.js';
import { streamFile } from './send-file.js';

export async function sendImageFile(ctx: Context, store: ImageStore, record: ImageRecord, index: number): Promise<void> {
  const file = record.files[index];
  const described = record.manifest.files[index];
  if (!file || !described) throw ResourceNotFound(`image "${record.uuid}" has no file`);
  ctx.status = 200;
  ctx.type = 'application/octet-stream';
  ctx.set('Accept-Ranges', 'bytes');
  ctx.etag = `"${described.sha1}"`;
  ctx.lastModified = file.mtime;
  if (ctx.fresh) {
    ctx.status = 304;
    return;
  }
  const range = requestedRange(ctx, file.size);
  if (range) {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${file.size}`);
  } else if (file.md5) {
    ctx.set('Content-MD5', file.md5);
  }
  // imgadm insists on an exact Content-Length.
  ctx.length = range ? range.end - range.start + 1 : file.size;
  if (ctx.method === 'HEAD') return;
  streamFile(ctx, await store.openFile(record, index), range?.start ?? 0, ctx.length);
}

/** The single range to send, or undefined for the whole file. */
function requestedRange(ctx: Context, size: number): { start: number; end: number } | undefined {
  const header = ctx.get('range');
  if (!header || size === 0 || !ifRangeHolds(ctx)) return undefined;
  const ranges = parseRange(size, header, { combine: true });
  if (ranges === -1) {
    throw new ApiError('RequestedRangeNotSatisfiable', 416, `range ${header} is outside the file's ${size} bytes`, {
      headers: { 'Content-Range': `bytes */${size}` },
    });
  }
  // A malformed header, another unit or several ranges: send the whole file.
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return undefined;
  return { start: ranges[0]!.start, end: ranges[0]!.end };
}

function ifRangeHolds(ctx: Context): boolean {
  const ifRange = ctx.get('if-range');
  if (!ifRange) return true;
  if (ifRange.startsWith('"') || ifRange.startsWith('W/')) return ifRange === ctx.response.get('ETag');
  const since = Date.parse(ifRange);
  const modified = Date.parse(String(ctx.response.get('Last-Modified')));
  return !Number.isNaN(since) && modified <= since;
}

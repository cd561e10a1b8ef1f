/*
 * Sends one image file. Everything a client checks comes from the index, so
 * HEAD, 304 and 416 answers never touch the disk: exact Content-Length,
 * Content-MD5 (base64), the sha1 as a strong ETag, Last-Modified, one byte
 * range. The one exception: a legacy file whose MD5 the background pass has
 * not reached yet is hashed first (store.awaitMd5). Never compressed, never
 * redirected; the Accept header is ignored (imgadm sends application/json).
 *
 * Behind nginx, with `x_accel_redirect` set, a whole-file GET is answered
 * with every header set here and an X-Accel-Redirect to nginx's internal
 * location over serve_dir, so that nginx sends the bytes (sendfile, no
 * copy through this process). Only requests whose answer nginx gives
 * exactly as this server would go that way: no Range, If-Range, If-Match
 * or If-Unmodified-Since (nginx would judge those against its own ETag),
 * and file names that need no escaping in a URI.
 */
import type { Context } from 'koa';
import parseRange from 'range-parser';
import { errors } from '../errors.js';
import type { ImageRecord, ImageStore } from '../store/store.js';
import { streamFile } from './send-file.js';

export async function sendImageFile(
  ctx: Context, store: ImageStore, record: ImageRecord, index: number, offload: string | null = null,
): Promise<void> {
  const file = record.files[index];
  const described = record.manifest.files[index];
  if (!file || !described) throw errors.ResourceNotFound(`image "${record.uuid}" has no file`);
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
  // A legacy file's MD5 may not be known yet; clients that require Content-MD5 would fail without it.
  if (!range && !file.md5) await store.awaitMd5(record, index);
  if (range) {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${file.size}`);
  } else if (file.md5) {
    ctx.set('Content-MD5', file.md5);
  }
  // imgadm insists on an exact Content-Length.
  ctx.length = range ? range.end - range.start + 1 : file.size;
  if (ctx.method === 'HEAD') return;
  const handle = await store.openFile(record, index);
  const uri = offload && !range && nginxAnswersAlike(ctx) ? store.fileUri(record, index) : undefined;
  if (uri === undefined) {
    streamFile(ctx, handle, range?.start ?? 0, ctx.length);
    return;
  }
  // openFile has checked the file is still the one indexed; nginx opens it again.
  await handle.close();
  offloadTo(ctx, `${offload}${uri}`);
}

function nginxAnswersAlike(ctx: Context): boolean {
  return ctx.method === 'GET' && !ctx.get('if-range') && !ctx.get('if-match') && !ctx.get('if-unmodified-since');
}

function offloadTo(ctx: Context, uri: string): void {
  const length = ctx.length;
  // nginx adds its own Accept-Ranges to the file it sends; ours would double it.
  ctx.remove('Accept-Ranges');
  ctx.set('X-Accel-Redirect', uri);
  ctx.body = '';
  ctx.state.offloaded = length;
}

/** The single range to send, or undefined for the whole file. */
function requestedRange(ctx: Context, size: number): { start: number; end: number } | undefined {
  const header = ctx.get('range');
  if (!header || size === 0 || !ifRangeHolds(ctx)) return undefined;
  const ranges = parseRange(size, header, { combine: true });
  if (ranges === -1) {
    throw errors.RequestedRangeNotSatisfiable(`range ${header} is outside the file's ${size} bytes`, {
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

/*
 * CORS for the read API: project-fifo's "Remote Datasets" page fetches
 * /datasets from another origin. Only reads are offered cross-site; writes
 * (later) need credentials that a foreign page must never be able to use.
 */
import type { Context, Next } from 'koa';

const READ_METHODS = 'GET, HEAD, OPTIONS';
const ALLOWED_HEADERS = 'Origin, Accept, Accept-Version, Content-Type, X-Requested-With, X-Request-Id, Range, If-None-Match, If-Modified-Since';
const EXPOSED_HEADERS = 'Content-Length, Content-MD5, Content-Range, ETag, Last-Modified, x-request-id';

export async function cors(ctx: Context, next: Next): Promise<void> {
  ctx.set('Access-Control-Allow-Origin', '*');
  ctx.set('Access-Control-Allow-Methods', READ_METHODS);
  ctx.set('Access-Control-Allow-Headers', ALLOWED_HEADERS);
  ctx.set('Access-Control-Expose-Headers', EXPOSED_HEADERS);
  if (ctx.method === 'OPTIONS') {
    ctx.set('Access-Control-Max-Age', '86400');
    ctx.status = 204;
    return;
  }
  await next();
}

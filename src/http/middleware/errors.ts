/*
 * The one place that writes error bodies: every failure becomes IMGAPI's
 * {code, message[, errors]} with its status. A failure after the headers
 * went out (a download cut mid-stream) can only close the connection.
 * A refusal sent before the request body was read closes the connection
 * too (http/close.ts).
 */
import type { Context, Next } from 'koa';
import { errors, toApiError, type ApiError } from '../../errors.js';
import { closeAfterResponse } from '../close.js';
import { sendJson } from '../json.js';

export async function errorBodies(ctx: Context, next: Next): Promise<void> {
  try {
    await next();
    const unrouted = ctx.body === undefined || ctx.body === null;
    if (unrouted && ctx.status === 404) throw errors.ResourceNotFound(`${ctx.path} does not exist`);
    if (unrouted && (ctx.status === 405 || ctx.status === 501)) {
      const allowed = String(ctx.response.get('Allow') || 'GET, HEAD');
      throw errors.BadMethod(`${ctx.method} is not allowed on ${ctx.path}`, { headers: { Allow: allowed } });
    }
  } catch (thrown) {
    const err = toApiError(thrown);
    if (ctx.headerSent || !ctx.writable) {
      ctx.req.socket.destroy();
      return;
    }
    report(ctx, err, thrown);
    if (!ctx.req.complete) closeAfterResponse(ctx.res);
    for (const name of Object.keys(ctx.response.headers)) {
      if (!/^(access-control-|x-request-id$)/i.test(name)) ctx.remove(name);
    }
    if (err.headers) ctx.set(err.headers);
    ctx.status = err.statusCode;
    sendJson(ctx, err.body());
  }
}

function report(ctx: Context, err: ApiError, thrown: unknown): void {
  const log = ctx.state.log ?? ctx.app.context.log;
  if (err.statusCode >= 500) log?.error({ err: thrown }, 'request failed');
  else log?.debug({ code: err.restCode, message: err.message }, 'request refused');
}

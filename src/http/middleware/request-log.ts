/*
 * Per-request context: a request id (the client's x-request-id when it is
 * sane, else a new UUID) echoed back, a child logger on ctx.state.log, and
 * one audit record per request written when the response is done, with the
 * bytes that were actually sent.
 */
import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger } from '../../log.js';

const REQ_ID_RE = /^[\w.:-]{1,128}$/;

export function requestLog(log: Logger) {
  return async function reqContext(ctx: Context, next: Next): Promise<void> {
    const offered = ctx.get('x-request-id');
    const reqId = REQ_ID_RE.test(offered) ? offered : randomUUID();
    const started = process.hrtime.bigint();
    const reqLog = log.child({ req_id: reqId });
    ctx.state.log = reqLog;
    ctx.state.reqId = reqId;
    ctx.set('x-request-id', reqId);
    const socket = ctx.req.socket;
    const bytesBefore = socket.bytesWritten;
    const remote = ctx.ip || socket.remoteAddress;
    ctx.res.once('close', () => {
      reqLog.info(
        {
          audit: true,
          route: ctx._matchedRouteName ?? null,
          method: ctx.method,
          path: ctx.path,
          status: ctx.res.statusCode,
          bytes: socket.bytesWritten - bytesBefore,
          // the file's bytes that nginx sends on this server's behalf (X-Accel-Redirect)
          offloaded_bytes: ctx.state.offloaded ?? 0,
          latency_ms: Number(process.hrtime.bigint() - started) / 1e6,
          // not ctx.ip: it reads the socket again, which may be gone by now
          remote: remote ?? null,
          complete: ctx.res.writableFinished,
          user: ctx.state.principal?.name ?? null,
        },
        'handled request',
      );
    });
    await next();
  };
}

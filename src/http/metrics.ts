/*
 * The HTTP layer's Prometheus metrics, on the server's registry: requests
 * by route (API operation) and status, bytes sent, downloads in flight.
 */
import type { Context, Next } from 'koa';
import { Counter, Gauge, type Registry } from '../metrics.js';

export class RequestMetrics {
  private readonly requests: Counter;
  private readonly bytes: Counter;
  private readonly downloads: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'image_server_http_requests_total',
      help: 'HTTP requests answered, by route (API operation), method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.bytes = new Counter({
      name: 'image_server_http_response_bytes_total',
      help: 'Bytes written to clients, by route',
      labelNames: ['route'],
      registers,
    });
    this.downloads = new Gauge({ name: 'image_server_downloads_in_flight', help: 'File downloads being sent now', registers });
  }

  /** Counts every request when its response is done. */
  observe() {
    return async (ctx: Context, next: Next): Promise<void> => {
      const socket = ctx.req.socket;
      const before = socket.bytesWritten;
      ctx.res.once('close', () => {
        const route = ctx._matchedRouteName ?? 'unrouted';
        this.requests.inc({ route, method: ctx.method, status: String(ctx.res.statusCode) });
        this.bytes.inc({ route }, socket.bytesWritten - before);
      });
      await next();
      if (ctx.state.streaming) {
        this.downloads.inc();
        ctx.res.once('close', () => this.downloads.dec());
      }
    };
  }
}

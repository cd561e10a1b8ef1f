/*
 * Prometheus metrics on a registry of our own (never prom-client's global
 * one, so two servers in one process, as in tests, never mix): requests by
 * route and status, bytes sent, downloads in flight, imports, images by
 * state, and how long the last index rescan took.
 */
import type { Context, Next } from 'koa';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { STATES } from '../manifest/types.js';
import type { ImageStore } from '../store/store.js';
import type { ImageWriter } from '../store/writer.js';

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter;
  private readonly bytes: Counter;
  private readonly downloads: Gauge;

  constructor(store: ImageStore, writer: ImageWriter) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'image_server_' });
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
    const imports = new Counter({
      name: 'image_server_imports_total',
      help: 'Image files taken in, by result (succeeded or failed)',
      labelNames: ['result'],
      registers,
    });
    writer.on('import', ({ ok }: { ok: boolean }) => imports.inc({ result: ok ? 'succeeded' : 'failed' }));
    new Gauge({
      name: 'image_server_images',
      help: 'Images in the index, by state',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = new Map<string, number>(STATES.map((s) => [s, 0]));
        for (const r of store.list()) counts.set(r.manifest.state, (counts.get(r.manifest.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'image_server_index_rescan_seconds',
      help: 'How long the last rescan of serve_dir took, by kind (quick or full)',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const [kind, seconds] of Object.entries(store.lastScanSeconds)) this.set({ kind }, seconds);
      },
    });
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

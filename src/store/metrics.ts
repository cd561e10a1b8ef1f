/*
 * The store's Prometheus metrics, on the registry the server hands in
 * (never prom-client's global one, so two servers in one process, as in
 * tests, never mix): images by state, how long the last rescan took, and
 * files taken in by result.
 */
import { Counter, Gauge, type Registry } from '../metrics.js';
import { STATES } from '../manifest/types.js';
import type { ImageStore } from './store.js';
import type { ImageWriter } from './writer.js';

/**
 * `includePrivate`: whether the image counts may include private images;
 * not when anyone may read the metrics, or a new private image would show.
 */
export function registerStoreMetrics(registry: Registry, store: ImageStore, writer: ImageWriter, includePrivate: boolean): void {
  const registers = [registry];
  const imports = new Counter({
    name: 'image_server_imports_total',
    help: 'Image files taken in, by result (succeeded or failed)',
    labelNames: ['result'],
    registers,
  });
  writer.on('import', ({ ok }: { ok: boolean }) => imports.inc({ result: ok ? 'succeeded' : 'failed' }));
  new Gauge({
    name: 'image_server_images',
    help: includePrivate ? 'Images in the index, by state' : 'Public images in the index, by state',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = new Map<string, number>(STATES.map((s) => [s, 0]));
      for (const r of store.list()) {
        if (includePrivate || r.isPublic) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
      }
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

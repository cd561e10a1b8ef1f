/*
 * prom-client in two steps. Its index also sets up the default process
 * metrics, and they load @opentelemetry/api: some 80 modules, a tenth of a
 * start, for figures nobody reads before the first scrape. The metric
 * classes come from prom-client's own modules, the very ones its index
 * exports (a test holds that to be true), and the process metrics join a
 * registry later: after start-up, or at its first scrape, whichever is
 * first.
 */
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

const require = createRequire(import.meta.url);

export const Registry = require('prom-client/lib/registry') as typeof Prom.Registry;
export type Registry = Prom.Registry;
export const Counter = require('prom-client/lib/counter') as typeof Prom.Counter;
export type Counter<T extends string = string> = Prom.Counter<T>;
export const Gauge = require('prom-client/lib/gauge') as typeof Prom.Gauge;
export type Gauge<T extends string = string> = Prom.Gauge<T>;

export interface ProcessMetricsOptions {
  prefix: string;
  /** How often the event-loop lag is sampled. */
  eventLoopSampleMs: number;
}

/** Registries whose process metrics are still to come, and how to add them. */
const pending = new WeakMap<Registry, () => Promise<void>>();

/** Promises `registry` the process metrics (CPU, memory, event loop, GC), added by addProcessMetrics() or its first scrape. */
export function promiseProcessMetrics(registry: Registry, opts: ProcessMetricsOptions): void {
  let adding: Promise<void> | undefined;
  pending.set(registry, () => {
    adding ??= import('prom-client').then(({ collectDefaultMetrics }) => {
      collectDefaultMetrics({ register: registry, prefix: opts.prefix, eventLoopMonitoringPrecision: opts.eventLoopSampleMs });
    });
    return adding;
  });
}

/** Adds the process metrics promised to `registry` now. */
export async function addProcessMetrics(registry: Registry): Promise<void> {
  await pending.get(registry)?.();
}

/** The registry's metrics in Prometheus text, the process metrics included. */
export async function scrape(registry: Registry): Promise<string> {
  await addProcessMetrics(registry);
  return registry.metrics();
}

/*
 * The server's background jobs: removing abandoned unactivated images, the
 * integrity scrub when the configuration turns it on, and the mirrors of
 * upstream image sources the configuration lists. Returns the one
 * function that stops them all.
 */
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import { reapUnactivated } from '../store/reaper.js';
import { startScrub } from '../store/scrub.js';
import type { ImageStore } from '../store/store.js';
import type { ImageWriter } from '../store/writer.js';

const REAP_INTERVAL_MS = 10 * 60_000;
const HOUR_MS = 3_600_000;

export function startJobs(store: ImageStore, writer: ImageWriter, config: Readonly<Config>, log: Logger): () => void {
  const reaperLog = log.child({ component: 'reaper' });
  const reaper = setInterval(() => {
    reapUnactivated(store, writer, config.unactivated_ttl_hours * HOUR_MS, reaperLog)
      .catch((err: unknown) => reaperLog.error({ err }, 'reaping unactivated images failed'));
  }, REAP_INTERVAL_MS).unref();
  const stopScrub = config.scrub_rate_mb_s > 0
    ? startScrub(store, writer, {
      rateBytesPerSec: config.scrub_rate_mb_s * 1e6,
      intervalMs: config.scrub_interval_hours * HOUR_MS,
      // A cluster holds good copies elsewhere: a corrupt one is set aside and pulled again.
      onCorrupt: config.cluster ? 'quarantine' : config.scrub_repair ? 'disable' : 'log',
    }, log.child({ component: 'scrub' }))
    : () => undefined;
  // Loaded only when configured: a server without mirrors never loads the engine.
  const mirrors = config.mirrors.length > 0
    ? import('../mirror/service.js').then(({ startMirrors }) => startMirrors(store, writer, config, log.child({ component: 'mirror' })))
    : undefined;
  return () => {
    clearInterval(reaper);
    stopScrub();
    void mirrors?.then((m) => m.stop());
  };
}

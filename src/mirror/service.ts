/*
 * The server's mirror job: every configured upstream runs on its own
 * interval, the first run shortly after start. Runs of one upstream never
 * overlap; upstreams are independent, so one that is down (and paused by
 * its circuit breaker) does not hold up the others. Progress goes to the
 * log. Returns the function that stops everything, aborting transfers in
 * flight (their partial files stay for the next start to resume).
 */
import type { Config } from '../config/config.js';
import type { MirrorConfig } from '../config/mirrors.js';
import type { Logger } from '../log.js';
import { Channels } from '../manifest/channels.js';
import type { ImageStore } from '../store/store.js';
import type { ImageWriter } from '../store/writer.js';
import { Mirror, type EngineOptions, type MirrorSpec } from './engine.js';
import type { MirrorReport } from './report.js';
import { displayUrl } from '../fetch/url.js';
import { normalizeUpstreamUrl } from './upstream.js';

const FIRST_RUN_DELAY_MS = 2000;

/** A configured URL as logs may show it: without credentials. */
function shown(url: string): string {
  try {
    return displayUrl(normalizeUpstreamUrl(url));
  } catch {
    return '(not a URL)';
  }
}

export function specOf(mirror: Readonly<MirrorConfig>): MirrorSpec {
  const list = (v: string | readonly string[] | undefined) => (v === undefined ? undefined : typeof v === 'string' ? [v] : [...v]);
  const filters: MirrorSpec['filters'] = {};
  const name = list(mirror.name);
  const os = list(mirror.os);
  const imageType = list(mirror.image_type);
  if (name) filters.name = name;
  if (os) filters.os = os;
  if (imageType) filters.imageType = imageType;
  return {
    url: mirror.url, type: mirror.type, filters,
    ...(mirror.ca_file ? { caFile: mirror.ca_file } : {}),
    ...(mirror.channel ? { channel: mirror.channel } : {}),
  };
}

export interface MirrorService {
  mirrors: Mirror[];
  /** Called with each run's report (tests, metrics). */
  onReport?: (report: MirrorReport) => void;
  stop(): void;
}

export function startMirrors(
  store: ImageStore,
  writer: ImageWriter,
  config: Readonly<Pick<Config, 'mirrors' | 'max_upload_bytes' | 'channels'>>,
  log: Logger,
  tuning: Partial<Omit<EngineOptions, 'store' | 'writer' | 'log'>> & { firstRunDelayMs?: number } = {},
): MirrorService {
  const controller = new AbortController();
  const timers: NodeJS.Timeout[] = [];
  const service: MirrorService = { mirrors: [], stop: () => undefined };
  for (const mc of config.mirrors ?? []) {
    let mirror: Mirror;
    try {
      mirror = new Mirror(specOf(mc), { store, writer, log, maxFileBytes: config.max_upload_bytes, channels: Channels.configured(config.channels), ...tuning });
    } catch (err) {
      log.error({ upstream: shown(mc.url), err: (err as Error).message }, 'mirror: cannot set up this upstream; it is skipped');
      continue;
    }
    service.mirrors.push(mirror);
    let running = false;
    const tick = () => {
      if (running || controller.signal.aborted) return;
      running = true;
      mirror.run({ signal: controller.signal })
        .then((report) => service.onReport?.(report))
        .catch((err: unknown) => log.error({ upstream: mirror.upstream.url, err }, 'mirror: run failed'))
        .finally(() => {
          running = false;
        });
    };
    const intervalMs = Math.max(1, Math.round(mc.interval_minutes * 60_000));
    timers.push(setTimeout(() => {
      tick();
      timers.push(setInterval(tick, intervalMs).unref());
    }, tuning.firstRunDelayMs ?? FIRST_RUN_DELAY_MS).unref());
    log.info({ upstream: mirror.upstream.url, type: mc.type, interval_minutes: mc.interval_minutes }, 'mirror: scheduled');
  }
  service.stop = () => {
    for (const t of timers) {
      clearTimeout(t);
      clearInterval(t);
    }
    controller.abort();
    for (const m of service.mirrors) m.close();
  };
  return service;
}

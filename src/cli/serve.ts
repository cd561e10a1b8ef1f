/*
 * `image-server serve`: config → logger → store → app → listener →
 * signals. The wiring of the server, and the only module that knows every
 * other part of it.
 */
import { ConfigError, loadConfig, type Config } from '../config/config.js';
import { Credentials } from '../credentials.js';
import { createApp } from '../http/app.js';
import { listen } from '../http/server.js';
import { startJobs } from './jobs.js';
import { createLogger, type Logger } from '../log.js';
import { addProcessMetrics, promiseProcessMetrics, Registry } from '../metrics.js';
import { registerStoreMetrics } from '../store/metrics.js';
import { ImageStore } from '../store/store.js';
import { ImageWriter } from '../store/writer.js';
import { VERSION } from '../version.js';

/** How often the event-loop lag metric samples (prom-client's default is 10 ms). */
const EVENT_LOOP_SAMPLE_MS = 1000;
/** The process metrics wait this long after the server listens, out of the way of the first requests. */
const PROCESS_METRICS_AFTER_MS = 1000;

/** The server's parts, built from the configuration; tests build theirs the same way. */
export async function assemble(config: Readonly<Config>, log: Logger) {
  const store = await ImageStore.open({
    serveDir: config.serve_dir,
    log,
    scanIntervalMs: config.scan_interval_ms,
    fullScanIntervalMs: config.full_scan_interval_ms,
    watchFs: config.watch_fs,
    md5RateMBps: config.md5_rate_mb_s,
    md5WaitMs: config.md5_wait_ms,
    stampsInBackground: true,
  });
  const credentials = new Credentials(config);
  const writer = new ImageWriter(store);
  // A registry of our own, never prom-client's global one: two servers in one process (tests) never mix.
  const registry = new Registry();
  // The event-loop lag monitor's default 10 ms timer wakes an idle server 100 times a
  // second, most of its idle CPU; one sample a second still shows a stalled loop.
  promiseProcessMetrics(registry, { prefix: 'image_server_', eventLoopSampleMs: EVENT_LOOP_SAMPLE_MS });
  registerStoreMetrics(registry, store, writer, config.metrics !== 'public');
  // Loaded only when configured: a server that runs alone never loads etcd3.
  const cluster = config.cluster
    ? (await import('../cluster/start.js')).createCluster({ config, store, writer, log, version: VERSION, registry })
    : undefined;
  const app = createApp({ config, store, writer, credentials, registry, log, version: VERSION, cluster });
  return { store, writer, credentials, registry, cluster, app };
}

export async function serve(config: Readonly<Config>): Promise<void> {
  const log = createLogger(config.loglevel);
  const { store, writer, credentials, registry, cluster, app } = await assemble(config, log);
  // A cluster member first applies what the index says (deletions, states), so it never serves what the cluster removed meanwhile.
  cluster?.start();
  await cluster?.ready();
  const listening = await listen(app, config);
  const stopJobs = startJobs(store, writer, config, log);
  setTimeout(() => {
    addProcessMetrics(registry).catch((err: unknown) => log.error({ err }, 'could not add the process metrics'));
  }, PROCESS_METRICS_AFTER_MS).unref();
  log.info({ where: listening.where, serve_dir: config.serve_dir, version: VERSION }, 'listening');

  process.on('SIGHUP', () => {
    log.info('SIGHUP: rescanning serve_dir and reloading users and tokens');
    void store.rescan(true);
    reloadCredentials(config.config_path, credentials, log);
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drain_ms: config.drain_timeout_ms }, 'stopping: draining requests in flight');
    stopJobs();
    const closing = [listening.close(config.drain_timeout_ms), store.close({ snapshot: true }), cluster?.stop()];
    void Promise.all(closing).then(() => {
      log.info('stopped');
      log.flush();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * Users and tokens are the one part of the configuration a reload changes,
 * so that revoking a token needs no restart. A config file that no longer
 * loads keeps the credentials in force.
 */
function reloadCredentials(path: string, credentials: Credentials, log: Logger): void {
  try {
    credentials.replace(loadConfig(path));
  } catch (err) {
    log.error({ err: err instanceof ConfigError ? err.message : err }, 'config reload failed; credentials unchanged');
  }
}

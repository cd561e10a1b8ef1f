/*
 * Wiring: config → logger → store → app → listener → signals. The only
 * module that knows every other one.
 */
import { createApp } from './http/app.js';
import { listen } from './http/server.js';
import type { Config } from './config.js';
import { createLogger } from './log.js';
import { ImageStore } from './store/store.js';
import { VERSION } from './version.js';

export async function serve(config: Readonly<Config>): Promise<void> {
  const log = createLogger(config.loglevel);
  const store = await ImageStore.open({
    serveDir: config.serve_dir,
    log,
    scanIntervalMs: config.scan_interval_ms,
    fullScanIntervalMs: config.full_scan_interval_ms,
  });
  const app = createApp({ config, store, log, version: VERSION });
  const listening = await listen(app, config);
  log.info({ where: listening.where, serve_dir: config.serve_dir, version: VERSION }, 'listening');

  process.on('SIGHUP', () => {
    log.info('SIGHUP: rescanning serve_dir');
    void store.rescan(true);
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, drain_ms: config.drain_timeout_ms }, 'stopping: draining requests in flight');
    store.close();
    void listening.close(config.drain_timeout_ms).then(() => {
      log.info('stopped');
      log.flush();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

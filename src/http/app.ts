/*
 * The Koa application: the whole middleware order on one screen. No global
 * body parser and no compression, on purpose: image uploads are raw streams
 * whatever their Content-Type says, and image downloads must go out exactly
 * as stored (protocol.md §8.4, §8.14).
 */
import Router from '@koa/router';
import Koa from 'koa';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Credentials } from '../credentials.js';
import type { ImageStore } from '../store/store.js';
import type { ImageWriter } from '../store/writer.js';
import { ResponseCache } from './json.js';
import type { Metrics } from './metrics.js';
import { acceptVersion } from './middleware/accept-version.js';
import { authenticate } from './middleware/auth.js';
import { cors } from './middleware/cors.js';
import { errorBodies } from './middleware/errors.js';
import { requestLog } from './middleware/request-log.js';
import { mountDsapi } from './routes/dsapi.js';
import { mountImgapi } from './routes/imgapi.js';
import { mountImgapiWrites } from './routes/imgapi-write.js';
import { mountMetrics } from './routes/metrics.js';
import { mountRoot } from './routes/root.js';

export interface AppDeps {
  config: Readonly<Config>;
  store: ImageStore;
  writer: ImageWriter;
  credentials: Credentials;
  metrics: Metrics;
  log: Logger;
  version: string;
  /** Present when the server is part of a cluster: its state shows in /ping. */
  cluster?: { status(): object };
}

export function createRouter(deps: AppDeps): Router {
  const router = new Router({ strict: false });
  const cache = new ResponseCache();
  mountRoot(router, deps);
  mountImgapi(router, { store: deps.store, version: deps.version, cache, cluster: deps.cluster });
  mountDsapi(router, { store: deps.store, config: deps.config, cache });
  mountImgapiWrites(router, { store: deps.store, writer: deps.writer, config: deps.config });
  mountMetrics(router, deps.metrics, deps.config.metrics);
  return router;
}

export function createApp(deps: AppDeps): Koa {
  const app = new Koa({ proxy: deps.config.trust_proxy });
  const router = createRouter(deps);
  app.context.log = deps.log;
  app.silent = true;
  app.on('error', (err: NodeJS.ErrnoException) => {
    // Clients that hang up mid-download are routine, not errors.
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || err.code === 'ERR_STREAM_PREMATURE_CLOSE') return;
    deps.log.error({ err }, 'unhandled error');
  });
  app.use(requestLog(deps.log));
  app.use(deps.metrics.observe());
  app.use(errorBodies);
  app.use(cors);
  app.use(acceptVersion);
  app.use(authenticate(deps.credentials, deps.config.read_auth));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

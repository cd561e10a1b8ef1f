/*
 * The Koa application: the whole middleware order on one screen. No global
 * body parser and no compression middleware, on purpose: image uploads are
 * raw streams whatever their Content-Type says, and image downloads must go
 * out exactly as stored (docs/protocol.md §8.4, §8.14). Only the listings
 * are compressed, by their routes, from a cached copy (see json.ts).
 */
import Router from '@koa/router';
import Koa from 'koa';
import type { Registry } from '../metrics.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import { Channels } from '../manifest/channels.js';
import type { Credentials } from '../credentials.js';
import type { ImageStore } from '../store/store.js';
import type { ImageWriter } from '../store/writer.js';
import { ResponseCache } from './json.js';
import { RequestMetrics } from './metrics.js';
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
  /** Where /metrics reads from; each part of the server registers its own. */
  registry: Registry;
  log: Logger;
  version: string;
  /** Present when the server is part of a cluster: its state shows in /ping. */
  cluster?: { status(): object };
}

export function createRouter(deps: AppDeps): Router {
  const router = new Router({ strict: false });
  const cache = new ResponseCache();
  mountRoot(router, deps);
  const channels = Channels.configured(deps.config.channels);
  mountImgapi(router, { store: deps.store, version: deps.version, cache, cluster: deps.cluster, offload: deps.config.x_accel_redirect, channels });
  mountDsapi(router, { store: deps.store, config: deps.config, cache, channels });
  mountImgapiWrites(router, { store: deps.store, writer: deps.writer, config: deps.config, channels });
  mountMetrics(router, deps.registry, deps.config.metrics);
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
  app.use(new RequestMetrics(deps.registry).observe());
  app.use(errorBodies);
  app.use(cors);
  app.use(acceptVersion);
  app.use(authenticate(deps.credentials, deps.config.read_auth));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

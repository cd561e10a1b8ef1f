/*
 * GET / (the web catalog for a browser, see ui.ts; a JSON summary like the
 * legacy DSAPI root for everyone else) and the API description.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Config } from '../../config/config.js';
import { publicBaseUrl } from '../base-url.js';
import { jsonBody, sendJson } from '../json.js';
import { openApiDocument } from '../openapi.js';
import { mountUi } from './ui.js';

const ENDPOINTS = ['GET /ping', 'GET /images', 'GET /images/:uuid', 'GET /images/:uuid/file',
  'GET /datasets', 'GET /datasets/:uuid', 'GET /datasets/:uuid/:path', 'GET /openapi.json'];

export function mountRoot(router: Router, deps: { config: Readonly<Config>; version: string }): void {
  const openapi = jsonBody(openApiDocument(deps.version, { channels: deps.config.channels !== undefined }));
  const catalog = mountUi(router, { version: deps.version });

  router.get('Root', '/', (ctx: Context) => {
    ctx.vary('Accept');
    if (ctx.accepts('json', 'html') === 'html') {
      catalog.send(ctx, publicBaseUrl(ctx, deps.config));
      return;
    }
    sendJson(ctx, { name: 'smartos-image-server', version: deps.version, imgapi: true, endpoints: ENDPOINTS });
  });

  router.get('GetOpenApi', '/openapi.json', (ctx: Context) => {
    sendJson(ctx, null, openapi);
  });
}

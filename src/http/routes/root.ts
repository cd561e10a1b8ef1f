/*
 * GET / (HTML for a browser, a JSON summary like the legacy DSAPI root for
 * everyone else) and the API description.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import type { Config } from '../../config.js';
import { publicBaseUrl } from '../base-url.js';
import { jsonBody, sendJson } from '../json.js';
import { openApiDocument } from '../openapi.js';

const ENDPOINTS = ['GET /ping', 'GET /images', 'GET /images/:uuid', 'GET /images/:uuid/file',
  'GET /datasets', 'GET /datasets/:uuid', 'GET /datasets/:uuid/:path', 'GET /openapi.json'];

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function homePage(base: string, version: string): string {
  const b = escapeHtml(base);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>SmartOS image server</title></head>
<body>
<h1>SmartOS image server</h1>
<p>Use this server as an image source on a SmartOS host:</p>
<pre>imgadm sources -a ${b}
imgadm avail</pre>
<p>or as a legacy DSAPI source: <code>imgadm sources -a ${b}/datasets -t dsapi</code>.</p>
<ul>
<li><a href="/images">/images</a> (IMGAPI)</li>
<li><a href="/datasets">/datasets</a> (DSAPI)</li>
<li><a href="/openapi.json">/openapi.json</a> (API description)</li>
</ul>
<p><small>smartos-image-server ${escapeHtml(version)}</small></p>
</body></html>
`;
}

export function mountRoot(router: Router, deps: { config: Readonly<Config>; version: string }): void {
  const openapi = jsonBody(openApiDocument(deps.version));

  router.get('Root', '/', (ctx: Context) => {
    ctx.vary('Accept');
    if (ctx.accepts('json', 'html') === 'html') {
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = homePage(publicBaseUrl(ctx, deps.config), deps.version);
      return;
    }
    sendJson(ctx, { name: 'smartos-image-server', version: deps.version, imgapi: true, endpoints: ENDPOINTS });
  });

  router.get('GetOpenApi', '/openapi.json', (ctx: Context) => {
    sendJson(ctx, null, openapi);
  });
}

/*
 * The web catalog: the page GET / sends to browsers, and its static files
 * under /ui/ (native ES modules and CSS from the repository's web/ folder,
 * no build step). Everything the page needs comes from this server: no
 * CDN, no web font, nothing outside (an air-gapped network must work), and
 * the Content-Security-Policy says so to the browser as well.
 *
 * The files are read once, when the routes are mounted. Their URLs carry
 * one hash of all of them as a path segment, ui/<release>/main.js, so a
 * browser may keep them for a year: the modules' relative imports
 * (./dom.js) resolve under the same segment by themselves, with no import
 * rewritten, and a page can never put together modules of two releases
 * from its cache, since each release's files have URLs of their own. A
 * request under any other segment gets the current file with `no-cache`
 * and an ETag instead.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type Router from '@koa/router';
import type { Context } from 'koa';
import { errors } from '../../errors.js';

/** The repository's web/ folder (this file runs as dist/src/http/routes/ui.js). */
export const WEB_DIR = new URL('../../../../web/', import.meta.url);

const TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

/** The files served under /ui/<release>/; nothing else in web/ is reachable. */
export const UI_ASSETS = [
  'main.js', 'api.js', 'catalog-data.js', 'dom.js', 'errors.js', 'format.js', 'forms.js', 'query.js', 'records.js',
  'signin.js', 'widgets.js', 'views/catalog.js', 'views/image.js', 'views/publish.js', 'app.css', 'icon.svg',
] as const;

interface Asset {
  body: Buffer;
  type: string;
  hash: string;
}

/**
 * No script, style, image or connection from anywhere but this server; no
 * framing (the publisher's buttons must not be clickjacked).
 */
export const PAGE_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
  "manifest-src 'self'", "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'",
].join('; ');

const shortHash = (b: Buffer | string) => createHash('sha1').update(b).digest('hex').slice(0, 16);

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** One hash of every file, names included: it changes whenever any file does. */
function releaseHash(assets: Map<string, Asset>): string {
  const all = createHash('sha1');
  for (const [name, asset] of [...assets].sort(([a], [b]) => (a < b ? -1 : 1))) all.update(`${name}\0${asset.hash}\0`);
  return all.digest('hex').slice(0, 16);
}

function loadAssets(dir: URL): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of UI_ASSETS) {
    let body: Buffer;
    try {
      body = fs.readFileSync(new URL(name, dir));
    } catch {
      continue; // an install without web/ still serves the API, and a page that says so
    }
    assets.set(name, { body, type: TYPES[name.slice(name.lastIndexOf('.') + 1)]!, hash: shortHash(body) });
  }
  return assets;
}

export interface CatalogPage {
  /** The HTML of the catalog page for a server whose public URL is `base`. */
  html(base: string): string;
  /** Sends that page with its security and caching headers. */
  send(ctx: Context, base: string): void;
}

export function mountUi(router: Router, opts: { version: string; dir?: URL }): CatalogPage {
  const dir = opts.dir ?? WEB_DIR;
  const assets = loadAssets(dir);
  const release = releaseHash(assets);
  let template: string;
  try {
    template = fs.readFileSync(new URL('index.html', dir), 'utf8');
  } catch {
    template = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>SmartOS image server</title></head>'
      + '<body><h1>SmartOS image server</h1><p>The web catalog is not installed (no web/ folder).</p>'
      + '<p><code>imgadm sources -a {{base}}</code></p></body></html>\n';
  }
  // Relative URLs: the page keeps working behind a proxy that serves it under a path.
  const url = (name: string) => `ui/${release}/${name}`;

  const html = (base: string) => template.replace(/\{\{(\w+)(?::([\w.]+))?\}\}/g, (whole, key: string, arg?: string) => {
    if (key === 'base') return escapeHtml(base);
    if (key === 'version') return escapeHtml(opts.version);
    if (key === 'asset' && arg) return escapeHtml(url(arg));
    return whole;
  });

  const serve = (ctx: Context, name: string) => {
    const asset = assets.get(name);
    if (!asset) throw errors.ResourceNotFound(`${ctx.path} does not exist`);
    ctx.type = asset.type;
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Cache-Control', ctx.params.release === release ? 'public, max-age=31536000, immutable' : 'no-cache');
    ctx.etag = `"${asset.hash}"`;
    ctx.body = asset.body;
    if (ctx.fresh) ctx.status = 304;
  };
  router.get('GetUiAsset', '/ui/:release/:file', (ctx: Context) => serve(ctx, String(ctx.params.file)));
  router.get('GetUiView', '/ui/:release/views/:file', (ctx: Context) => serve(ctx, `views/${String(ctx.params.file)}`));

  return {
    html,
    send(ctx: Context, base: string) {
      const body = html(base);
      ctx.type = 'text/html; charset=utf-8';
      ctx.set('Content-Security-Policy', PAGE_CSP);
      ctx.set('X-Frame-Options', 'DENY');
      ctx.set('X-Content-Type-Options', 'nosniff');
      ctx.set('Referrer-Policy', 'no-referrer');
      // The page names the asset hashes: always revalidate it, cheaply.
      ctx.set('Cache-Control', 'no-cache');
      ctx.etag = `"${shortHash(body)}"`;
      ctx.body = body;
      if (ctx.fresh) ctx.status = 304;
    },
  };
}

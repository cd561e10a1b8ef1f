/*
 * The IMGAPI read API (protocol.md §3): Ping, ListImages, GetImage,
 * GetImageFile. Served at the root; imgadm also sends ?channel= and
 * ?account=, which a server without channels or accounts ignores.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { toImgapi } from '../../manifest/views.js';
import type { ImageStore } from '../../store/store.js';
import { parseListQuery, selectImages } from '../list-query.js';
import { ResponseCache, sendJson } from '../json.js';
import { reqLoadImage, seesPrivate } from '../params.js';
import { sendImageFile } from '../file-response.js';

export interface ReadDeps {
  store: ImageStore;
  version: string;
  cache: ResponseCache;
  cluster?: { status(): object } | undefined;
}

export function mountImgapi(router: Router, deps: ReadDeps): void {
  const { store } = deps;
  const reqImage = reqLoadImage(store);

  router.get('Ping', '/ping', (ctx: Context) => {
    const cluster = deps.cluster ? { cluster: deps.cluster.status() } : {};
    sendJson(ctx, { ping: 'pong', version: deps.version, imgapi: true, ...cluster });
  });

  router.get('ListImages', '/images', (ctx: Context) => {
    const query = parseListQuery(ctx.query, (uuid) => store.sortKey(uuid), seesPrivate(ctx));
    const body = deps.cache.get(store.generation, `images|${seesPrivate(ctx)}|${ctx.querystring}`, () =>
      selectImages(store.list(), query).map((r) => toImgapi(r.manifest)));
    sendJson(ctx, null, body);
  });

  router.get('GetImage', '/images/:uuid', reqImage, (ctx: Context) => {
    sendJson(ctx, toImgapi(ctx.state.image.manifest));
  });

  router.get('GetImageFile', '/images/:uuid/file', reqImage, async (ctx: Context) => {
    await sendImageFile(ctx, store, ctx.state.image, parseFileIndex(ctx.query.index));
  });
}

/** ?index=N picks files[N]; anything that is not an index finds no file. */
function parseFileIndex(value: unknown): number {
  if (value === undefined) return 0;
  return typeof value === 'string' && /^\d{1,3}$/.test(value) ? Number(value) : -1;
}

/*
 * The IMGAPI read API (docs/protocol.md §3): Ping, ListImages, GetImage,
 * GetImageFile, and ListChannels on a server with channels. Served at the
 * root; imgadm also sends ?channel= and ?account=, which a server without
 * channels or accounts ignores.
 */
import type Router from '@koa/router';
import type { Context } from 'koa';
import { ERROR_TABLE, errors, invalidParameter, type ApiError, type ErrorCode } from '../../errors.js';
import type { Channels } from '../../manifest/channels.js';
import { jsonTextArrayPieces } from '../../store/json-pieces.js';
import type { ImageStore } from '../../store/store.js';
import { imgapiJson, reqChannel, viewKey } from '../channels.js';
import { parseListQuery, selectImages } from '../list-query.js';
import { jsonTextBody, type ResponseCache, sendJson, sendListing } from '../json.js';
import { reqLoadImage, seesPrivate } from '../params.js';
import { sendImageFile } from '../file-response.js';

export interface ReadDeps {
  store: ImageStore;
  version: string;
  cache: ResponseCache;
  cluster?: { status(): object } | undefined;
  /** nginx's internal location that sends whole files, or null (config x_accel_redirect). */
  offload: string | null;
  /** The configured channels, if any. */
  channels?: Channels | undefined;
}

export function mountImgapi(router: Router, deps: ReadDeps): void {
  const { store, channels } = deps;
  const reqImage = reqLoadImage(store, channels);
  const inChannel = reqChannel(channels, true);

  router.get('Ping', '/ping', (ctx: Context) => {
    if (ctx.query.error !== undefined) throw sampleError(ctx.query.error);
    const cluster = deps.cluster ? { cluster: deps.cluster.status() } : {};
    sendJson(ctx, { ping: 'pong', version: deps.version, imgapi: true, ...cluster });
  });

  router.get('ListImages', '/images', inChannel, async (ctx: Context) => {
    const query = parseListQuery(ctx.query, (uuid) => store.sortKey(uuid, seesPrivate(ctx)), seesPrivate(ctx));
    if (channels) {
      const { filter } = query;
      query.filter = (r) => filter(r) && channels.holds(ctx.state.channel, r.facts);
    }
    const view = imgapiJson(ctx, channels);
    const key = `images|${seesPrivate(ctx)}|${viewKey(ctx, channels)}|${ctx.querystring}`;
    const body = deps.cache.get(store.generation, key, () => jsonTextArrayPieces(function* views() {
      for (const r of selectImages(store.list(), query)) yield view(r);
    }()));
    await sendListing(ctx, body);
  });

  router.get('GetImage', '/images/:uuid', inChannel, reqImage, (ctx: Context) => {
    sendJson(ctx, null, jsonTextBody(imgapiJson(ctx, channels)(ctx.state.image)));
  });

  router.get('GetImageFile', '/images/:uuid/file', inChannel, reqImage, async (ctx: Context) => {
    await sendImageFile(ctx, store, ctx.state.image, parseFileIndex(ctx.query.index), deps.offload);
  });
  if (channels) {
    router.get('ListChannels', '/channels', (ctx: Context) => {
      sendJson(ctx, channels.list);
    });
  }
}

/**
 * /ping?error=CODE answers with an error of that code from the table, as
 * sdc-imgapi's ping does so that client test suites can see each one; a
 * code the table lacks is 422 InvalidParameter, as there.
 */
function sampleError(value: string | string[]): ApiError {
  const code = typeof value === 'string' ? value : '';
  if (!Object.hasOwn(ERROR_TABLE, code)) {
    return invalidParameter('error', `${JSON.stringify(value)} is not an error code of this server`);
  }
  return errors[code as ErrorCode](`the ${code} error /ping?error= asked for`);
}

/** ?index=N picks files[N]; anything that is not an index finds no file. */
function parseFileIndex(value: unknown): number {
  if (value === undefined) return 0;
  return typeof value === 'string' && /^\d{1,3}$/.test(value) ? Number(value) : -1;
}

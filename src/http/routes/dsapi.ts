/*
 * The legacy DSAPI (docs/protocol.md §2), at the host root because imgadm drops
 * any prefix before /datasets. Only importable images are offered: the list
 * holds active ones, newest first; a disabled image still answers
 * GET /datasets/:uuid with "disabled": true so `imgadm show` works.
 */
import type Router from '@koa/router';
import type { Context, Next } from 'koa';
import type { Config } from '../../config/config.js';
import { errors } from '../../errors.js';
import type { Channels } from '../../manifest/channels.js';
import { toDsapi } from '../../manifest/views.js';
import { jsonArrayPieces } from '../../store/json-pieces.js';
import type { ImageRecord, ImageStore } from '../../store/store.js';
import { publicBaseUrl } from '../base-url.js';
import { reqDsapiChannel, viewKey } from '../channels.js';
import { sendImageFile } from '../file-response.js';
import { type ResponseCache, sendJson, sendListing } from '../json.js';
import { reqLoadImage, seesPrivate } from '../params.js';

export interface DsapiDeps {
  store: ImageStore;
  config: Readonly<Config>;
  cache: ResponseCache;
  channels?: Channels | undefined;
}

const LIST_FILTERS = ['name', 'version', 'os', 'type'] as const;

export function mountDsapi(router: Router, deps: DsapiDeps): void {
  const { store, config, channels } = deps;
  const reqImage = reqLoadImage(store, channels);
  const inChannel = reqDsapiChannel(channels);
  const view = (ctx: Context, r: ImageRecord) => toDsapi(r.manifest, {
    baseUrl: publicBaseUrl(ctx, config),
    fileNames: r.files.map((f) => f.name),
    legacy: r.legacy,
    creatorName: config['image-creator'] || undefined,
    creatorUuid: config['image-creator-uuid'] || undefined,
    vendorUuid: config['image-vendor-uuid'] || undefined,
  });

  router.get('ListDatasets', '/datasets', inChannel, async (ctx: Context) => {
    const wanted = LIST_FILTERS.flatMap((f) => (typeof ctx.query[f] === 'string' ? [[f, ctx.query[f]] as const] : []));
    const all = seesPrivate(ctx);
    const key = `datasets|${all}|${viewKey(ctx, channels)}|${publicBaseUrl(ctx, config)}|${JSON.stringify(wanted)}`;
    const body = deps.cache.get(store.generation, key, () => jsonArrayPieces(function* views() {
      const images = store.list().filter((r) => r.state === 'active' && (all || r.isPublic)
        && wanted.every(([f, v]) => r.facts[f] === v) && (!channels || channels.holds(ctx.state.channel, r.facts)));
      for (let i = images.length - 1; i >= 0; i--) yield view(ctx, images[i]!);
    }()));
    await sendListing(ctx, body);
  });

  router.get('GetDataset', '/datasets/:uuid', inChannel, reqImage, reqShownByDsapi, (ctx: Context) => {
    sendJson(ctx, view(ctx, ctx.state.image));
  });

  router.get('GetDatasetFile', '/datasets/:uuid/:path', inChannel, reqImage, reqShownByDsapi, async (ctx: Context) => {
    const image: ImageRecord = ctx.state.image;
    if (image.state !== 'active') throw errors.ResourceNotFound(`image ${image.uuid} is not active`);
    const byName = image.files.findIndex((f) => f.name === ctx.params.path);
    // newer sniffle falls back to /datasets/:uuid/file when files[0].url is absent
    const index = byName === -1 && ctx.params.path === 'file' ? 0 : byName;
    if (index === -1) throw errors.ResourceNotFound(`${ctx.path} does not exist`);
    await sendImageFile(ctx, store, image, index, config.x_accel_redirect);
  });
}

/** DSAPI never shows an image that imgadm could not at least `show`. */
async function reqShownByDsapi(ctx: Context, next: Next): Promise<void> {
  const { state } = ctx.state.image as ImageRecord;
  if (state !== 'active' && state !== 'disabled') throw errors.ResourceNotFound(`image ${ctx.params.uuid} not found`);
  await next();
}

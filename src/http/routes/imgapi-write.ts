/*
 * The IMGAPI write API (docs/protocol.md §3.7–3.12): CreateImage, the
 * POST /images/:uuid actions (AdminImportImage, ActivateImage, DisableImage,
 * EnableImage, UpdateImage, and ChannelAddImage on a server with
 * channels), AddImageFile and DeleteImage. This file only
 * reads requests: what may enter or change is decided by the store's
 * writer, the one gate every way in goes through.
 */
import type Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import compose from 'koa-compose';
import { randomUUID } from 'node:crypto';
import type { Config } from '../../config/config.js';
import { errors, invalidParameter } from '../../errors.js';
import { createdManifest, importedManifest, updatedManifest, type PublishDefaults } from '../../manifest/publish.js';
import { channelAdding, channelRemoval, type Channels } from '../../manifest/channels.js';
import { activation, disabling, type Transition } from '../../manifest/states.js';
import { COMPRESSIONS, ZERO_UUID, type Compression } from '../../manifest/types.js';
import type { ImageRecord, ImageStore } from '../../store/store.js';
import type { ImageWriter, Provenance } from '../../store/writer.js';
import { imgapiJson, reqChannel } from '../channels.js';
import { jsonTextBody, sendJson } from '../json.js';
import { reqWriter } from '../middleware/auth.js';
import { reqLoadImage } from '../params.js';
import { createFromMultipart } from './multipart.js';

export interface WriteDeps {
  store: ImageStore;
  writer: ImageWriter;
  config: Readonly<Config>;
  channels?: Channels | undefined;
}

/**
 * JSON bodies only, small, and only where a route takes one; `{}` for an
 * empty body. koa-body is loaded on the first write: it is the heaviest
 * module we have, and a read-only server should start without it.
 */
let jsonBody: Promise<Middleware> | undefined;

async function reqJson(ctx: Context, next: Next): Promise<void> {
  const hasBody = Number(ctx.get('content-length') || 0) > 0 || ctx.get('transfer-encoding') !== '';
  if (hasBody && !ctx.is('json')) throw errors.InvalidHeader('send the body as Content-Type: application/json');
  jsonBody ??= import('koa-body').then(({ koaBody }) =>
    koaBody({ json: true, urlencoded: false, text: false, multipart: false, jsonLimit: '1mb' }));
  await (await jsonBody)(ctx, next);
}

export function mountImgapiWrites(router: Router, deps: WriteDeps): void {
  const { store, writer, config, channels } = deps;
  const reqImage = reqLoadImage(store, channels);
  const base: PublishDefaults = {
    owner: config['image-creator-uuid'] || ZERO_UUID,
    public: config.default_public,
  };
  /** What a new image gets that its manifest does not say: on a server with channels, the request's channel. */
  const defaults = (ctx: Context): PublishDefaults => {
    const pick = ctx.state.channel as { name?: string } | undefined;
    return pick?.name === undefined ? base : { ...base, channel: pick.name };
  };
  const by = (ctx: Context, via: Provenance['via'] = 'http'): Provenance => ({ via, by: ctx.state.principal.name });
  const reply = (ctx: Context, record: ImageRecord) => sendJson(ctx, null, jsonTextBody(imgapiJson(ctx, channels)(record)));

  const apiCreateImage = async (ctx: Context) => {
    if (ctx.is('multipart')) {
      const record = await createFromMultipart(ctx, { writer, defaults: defaults(ctx), maxBytes: config.max_upload_bytes, provenance: by(ctx, 'http-multipart') });
      reply(ctx, record);
      return;
    }
    await reqJson(ctx, async () => {
      reply(ctx, await writer.create(createdManifest(ctx.request.body, randomUUID(), defaults(ctx)), by(ctx)));
    });
  };

  const apiAdminImportImage = async (ctx: Context) => {
    const uuid = String(ctx.params.uuid);
    reply(ctx, await writer.create(importedManifest(ctx.request.body, uuid, defaults(ctx)), by(ctx)));
  };

  /** A state or manifest change, applied by the writer under the image's lock. */
  const change = (transition: (ctx: Context) => Transition) => async (ctx: Context) => {
    const image: ImageRecord = ctx.state.image;
    reply(ctx, await writer.change(image.uuid, transition(ctx), by(ctx)));
  };

  const apiActivateImage = change(() => activation(new Date()));
  const apiDisableImage = change(() => disabling(true));
  const apiEnableImage = change(() => disabling(false));
  const apiUpdateImage = change((ctx) => ({ event: 'updated', apply: (m) => updatedManifest(m, ctx.request.body) }));

  /** All POST /images/:uuid actions share one route, as in sdc-imgapi. */
  const actions: Record<string, Middleware[]> = {
    import: [apiAdminImportImage],
    activate: [reqImage, apiActivateImage],
    disable: [reqImage, apiDisableImage],
    enable: [reqImage, apiEnableImage],
    update: [reqImage, apiUpdateImage],
  };
  if (channels) {
    // ?channel= finds the image, as on every action; the body names the channel it joins.
    actions['channel-add'] = [reqImage, change((ctx) => channelAdding(channels, bodyChannel(channels, ctx.request.body)))];
  }

  const apiImageAction = async (ctx: Context) => {
    const action = ctx.query.action;
    if (action === undefined) {
      throw errors.InvalidParameter('no image "action" was specified', { errors: [{ field: 'action', code: 'MissingParameter' }] });
    }
    const steps = typeof action === 'string' && Object.hasOwn(actions, action) ? actions[action] : undefined;
    if (!steps) throw invalidParameter('action', `"${String(action)}" is not a valid action`);
    await compose([reqChannel(channels, action !== 'import'), reqJson, ...steps])(ctx);
  };

  const apiAddImageFile = async (ctx: Context) => {
    const image: ImageRecord = ctx.state.image;
    const { compression, expect } = parseFileQuery(ctx, config.max_upload_bytes);
    reply(ctx, await writer.addFile(image.uuid, { source: ctx.req, compression, expect }, by(ctx)));
  };

  /**
   * On a server with channels, DeleteImage takes the image out of the
   * request's channel, and deletes it only when that was its last one,
   * for channel=*, or with force_all_channels=true.
   */
  const apiDeleteImage = async (ctx: Context) => {
    const image: ImageRecord = ctx.state.image;
    const pick = ctx.state.channel as { name?: string } | undefined;
    const others = channels && pick?.name !== undefined ? channels.of(image.facts).filter((c) => c !== pick.name) : [];
    if (channels && pick?.name !== undefined && others.length > 0 && ctx.query.force_all_channels !== 'true') {
      await writer.change(image.uuid, channelRemoval(channels, pick.name), by(ctx));
    } else {
      await writer.remove(image.uuid, by(ctx));
    }
    ctx.status = 204;
  };

  const anyChannel = reqChannel(channels, true);
  router.post('CreateImage', '/images', reqWriter, reqChannel(channels, false), apiCreateImage);
  router.post('ImageAction', '/images/:uuid', reqWriter, apiImageAction);
  router.put('AddImageFile', '/images/:uuid/file', reqWriter, anyChannel, reqImage, apiAddImageFile);
  router.delete('DeleteImage', '/images/:uuid', reqWriter, anyChannel, reqImage, apiDeleteImage);
}

/** ChannelAddImage's body: {"channel": NAME}, a configured channel. */
function bodyChannel(channels: Channels, body: unknown): string {
  const value = (body as { channel?: unknown } | undefined)?.channel;
  if (value === undefined) {
    throw errors.ValidationFailed('no "channel" to add the image to', { errors: [{ field: 'channel', code: 'MissingParameter' }] });
  }
  const pick = channels.pick(value, false);
  return (pick as { name: string }).name;
}

function parseFileQuery(ctx: Context, maxBytes: number) {
  const { compression, sha1, size } = ctx.query;
  if (compression === undefined) {
    throw errors.InvalidParameter('missing "compression"', { errors: [{ field: 'compression', code: 'MissingParameter' }] });
  }
  if (typeof compression !== 'string' || !(COMPRESSIONS as readonly string[]).includes(compression)) {
    throw invalidParameter('compression', `invalid compression "${String(compression)}": must be one of ${COMPRESSIONS.join(', ')}`);
  }
  const expect: { sha1?: string; size?: number; maxBytes: number } = { maxBytes };
  if (sha1 !== undefined) {
    if (typeof sha1 !== 'string' || !/^[0-9a-fA-F]{40}$/.test(sha1)) throw invalidParameter('sha1', `invalid sha1 "${String(sha1)}"`);
    expect.sha1 = sha1.toLowerCase();
  }
  if (size !== undefined) {
    if (typeof size !== 'string' || !/^\d{1,15}$/.test(size)) throw invalidParameter('size', `invalid size "${String(size)}"`);
    expect.size = Number(size);
  }
  const declared = Number(ctx.get('content-length') || NaN);
  if (declared > maxBytes || (expect.size ?? 0) > maxBytes) {
    throw errors.Upload(`the file is larger than the ${maxBytes} bytes allowed`);
  }
  return { compression: compression as Compression, expect };
}

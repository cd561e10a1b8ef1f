/*
 * The IMGAPI write API (protocol.md §3.8–3.12): CreateImage, the
 * POST /images/:uuid actions (AdminImportImage, ActivateImage, DisableImage,
 * EnableImage, UpdateImage), AddImageFile and DeleteImage. Every step that
 * touches the disk goes through the store's writer; this file only reads
 * requests and decides.
 */
import type Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import compose from 'koa-compose';
import { randomUUID } from 'node:crypto';
import type { Config } from '../../config.js';
import { ApiError, ImageUuidAlreadyExists, InvalidHeader, InvalidParameter } from '../../errors.js';
import {
  activatedManifest, createdManifest, importedManifest, updatedManifest, withDisabled, type PublishDefaults,
} from '../../manifest/publish.js';
import { COMPRESSIONS, type Compression, type JsonObject } from '../../manifest/types.js';
import { toImgapi } from '../../manifest/views.js';
import { withHistory } from '../../store/sidecar.js';
import type { ImageRecord, ImageStore } from '../../store/store.js';
import type { ImageWriter } from '../../store/writer.js';
import { sendJson } from '../json.js';
import { reqWriter } from '../middleware/auth.js';
import { reqLoadImage } from '../params.js';
import { createFromMultipart } from './multipart.js';

export interface WriteDeps {
  store: ImageStore;
  writer: ImageWriter;
  config: Readonly<Config>;
}

const noActivationNoFile = (uuid: string) =>
  new ApiError('NoActivationNoFile', 422, `image "${uuid}" cannot be activated: it has no file`);
const alreadyActivated = (uuid: string) => new ApiError('ImageAlreadyActivated', 422, `image "${uuid}" is already activated`);
const filesImmutable = (uuid: string) =>
  new ApiError('ImageFilesImmutable', 422, `cannot add a file to image "${uuid}": it is activated`);
const originMissing = (origin: string) =>
  new ApiError('OriginDoesNotExist', 422, `origin image "${origin}" does not exist`);

/**
 * JSON bodies only, small, and only where a route takes one; `{}` for an
 * empty body. koa-body is loaded on the first write: it is the heaviest
 * module we have, and a read-only server should start without it.
 */
let jsonBody: Promise<Middleware> | undefined;

async function reqJson(ctx: Context, next: Next): Promise<void> {
  const hasBody = Number(ctx.get('content-length') || 0) > 0 || ctx.get('transfer-encoding') !== '';
  if (hasBody && !ctx.is('json')) throw InvalidHeader('send the body as Content-Type: application/json');
  jsonBody ??= import('koa-body').then(({ koaBody }) =>
    koaBody({ json: true, urlencoded: false, text: false, multipart: false, jsonLimit: '1mb' }));
  await (await jsonBody)(ctx, next);
}

export function mountImgapiWrites(router: Router, deps: WriteDeps): void {
  const { store, writer, config } = deps;
  const reqImage = reqLoadImage(store);
  const defaults: PublishDefaults = {
    owner: config['image-creator-uuid'] || '00000000-0000-0000-0000-000000000000',
    public: config.default_public,
  };
  const by = (ctx: Context): string => ctx.state.principal.name;
  const reply = (ctx: Context, record: ImageRecord) => sendJson(ctx, toImgapi(record.manifest));

  const requireOrigin = (m: JsonObject) => {
    if (typeof m.origin === 'string' && !store.get(m.origin)) throw originMissing(m.origin);
  };
  const checkNew = (m: JsonObject) => {
    if (store.get(String(m.uuid))) throw ImageUuidAlreadyExists(String(m.uuid));
    requireOrigin(m);
  };

  const apiCreateImage = async (ctx: Context) => {
    if (ctx.is('multipart')) {
      const maxBytes = config.max_upload_bytes;
      reply(ctx, await createFromMultipart(ctx, { writer, defaults, maxBytes, checkNew, by: by(ctx) }));
      return;
    }
    await reqJson(ctx, async () => {
      const manifest = createdManifest(ctx.request.body, randomUUID(), defaults);
      requireOrigin(manifest);
      reply(ctx, await writer.create(manifest, withHistory({}, 'created', by(ctx))));
    });
  };

  const apiAdminImportImage = async (ctx: Context) => {
    const uuid = String(ctx.params.uuid);
    if (store.get(uuid)) throw ImageUuidAlreadyExists(uuid);
    const manifest = importedManifest(ctx.request.body, uuid, defaults);
    requireOrigin(manifest);
    reply(ctx, await writer.create(manifest, withHistory({ source: { via: 'http' } }, 'imported', by(ctx))));
  };

  /** A change of the stored manifest under the image's lock, recorded in its history. */
  const change = (event: string, fn: (m: JsonObject, ctx: Context) => JsonObject) => async (ctx: Context) => {
    const image: ImageRecord = ctx.state.image;
    reply(ctx, await writer.change(image.uuid, ({ manifest, sidecar }) => ({
      manifest: fn(manifest, ctx),
      sidecar: withHistory(sidecar, event, by(ctx)),
    })));
  };

  const apiActivateImage = change('activated', (m, ctx) => {
    if (m.state !== 'unactivated') throw alreadyActivated(ctx.state.image.uuid);
    if (!Array.isArray(m.files) || m.files.length === 0) throw noActivationNoFile(ctx.state.image.uuid);
    return activatedManifest(m, new Date());
  });
  const apiDisableImage = change('disabled', (m) => withDisabled(m, true));
  const apiEnableImage = change('enabled', (m) => withDisabled(m, false));
  const apiUpdateImage = change('updated', (m, ctx) => {
    const next = updatedManifest(m, ctx.request.body);
    requireOrigin(next);
    return next;
  });

  /** All POST /images/:uuid actions share one route, as in sdc-imgapi. */
  const actions: Record<string, Middleware[]> = {
    import: [apiAdminImportImage],
    activate: [reqImage, apiActivateImage],
    disable: [reqImage, apiDisableImage],
    enable: [reqImage, apiEnableImage],
    update: [reqImage, apiUpdateImage],
  };

  const apiImageAction = async (ctx: Context) => {
    const action = ctx.query.action;
    if (action === undefined) {
      throw InvalidParameter('no image "action" was specified', [{ field: 'action', code: 'MissingParameter' }]);
    }
    const steps = typeof action === 'string' && Object.hasOwn(actions, action) ? actions[action] : undefined;
    if (!steps) throw InvalidParameter(`"${String(action)}" is not a valid action`, [{ field: 'action', code: 'Invalid' }]);
    await compose([reqJson, ...steps])(ctx);
  };

  const apiAddImageFile = async (ctx: Context) => {
    const image: ImageRecord = ctx.state.image;
    if (image.manifest.state !== 'unactivated') throw filesImmutable(image.uuid);
    const expect = parseFileQuery(ctx, config.max_upload_bytes);
    let record: ImageRecord;
    try {
      record = await writer.addFile(image.uuid, { source: ctx.req, ...expect }, ({ manifest }) => {
        if (manifest.state !== 'unactivated') throw filesImmutable(image.uuid);
      });
    } catch (err) {
      // A refused upload is left unread: the connection cannot carry another request.
      if (!ctx.req.complete) ctx.res.shouldKeepAlive = false;
      throw err;
    }
    reply(ctx, record);
  };

  const apiDeleteImage = async (ctx: Context) => {
    const image: ImageRecord = ctx.state.image;
    const dependents = store.dependents(image.uuid);
    if (dependents.length > 0) {
      throw new ApiError('ImageHasDependentImages', 422,
        `image "${image.uuid}" is the origin of ${dependents.map((d) => d.uuid).join(', ')}`);
    }
    await writer.remove(image.uuid, by(ctx));
    ctx.status = 204;
  };

  router.post('CreateImage', '/images', reqWriter, apiCreateImage);
  router.post('ImageAction', '/images/:uuid', reqWriter, apiImageAction);
  router.put('AddImageFile', '/images/:uuid/file', reqWriter, reqImage, apiAddImageFile);
  router.delete('DeleteImage', '/images/:uuid', reqWriter, reqImage, apiDeleteImage);
}

function parseFileQuery(ctx: Context, maxBytes: number) {
  const { compression, sha1, size } = ctx.query;
  if (compression === undefined) throw InvalidParameter('missing "compression"', [{ field: 'compression', code: 'MissingParameter' }]);
  if (typeof compression !== 'string' || !(COMPRESSIONS as readonly string[]).includes(compression)) {
    throw InvalidParameter(`invalid compression "${String(compression)}": must be one of ${COMPRESSIONS.join(', ')}`,
      [{ field: 'compression', code: 'Invalid' }]);
  }
  const expect: { sha1?: string; size?: number; maxBytes: number } = { maxBytes };
  if (sha1 !== undefined) {
    if (typeof sha1 !== 'string' || !/^[0-9a-fA-F]{40}$/.test(sha1)) throw InvalidParameter(`invalid sha1 "${String(sha1)}"`, [{ field: 'sha1', code: 'Invalid' }]);
    expect.sha1 = sha1.toLowerCase();
  }
  if (size !== undefined) {
    if (typeof size !== 'string' || !/^\d{1,15}$/.test(size)) throw InvalidParameter(`invalid size "${String(size)}"`, [{ field: 'size', code: 'Invalid' }]);
    expect.size = Number(size);
  }
  const declared = Number(ctx.get('content-length') || NaN);
  if (declared > maxBytes || (expect.size ?? 0) > maxBytes) {
    throw new ApiError('Upload', 400, `the file is larger than the ${maxBytes} bytes allowed`);
  }
  return { compression: compression as Compression, expect };
}

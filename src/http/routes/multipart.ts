/*
 * CreateImage from multipart/form-data (curl -F, the web catalog): a
 * "manifest" part holding JSON, then a "file" part streamed straight into
 * the import transaction. `?activate=true` publishes the image active in
 * that same single step; without it the image waits, unactivated.
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import busboy from 'busboy';
import type { Context } from 'koa';
import { InvalidParameter } from '../../errors.js';
import { isCompression } from '../../manifest/normalize.js';
import { activatedManifest, importedManifest, type PublishDefaults } from '../../manifest/publish.js';
import { isObject, type Compression, type JsonObject } from '../../manifest/types.js';
import { withHistory } from '../../store/sidecar.js';
import { sniffStream } from '../../store/sniff.js';
import type { ImageRecord } from '../../store/store.js';
import type { ImageWriter } from '../../store/writer.js';

export interface MultipartDeps {
  writer: ImageWriter;
  defaults: PublishDefaults;
  maxBytes: number;
  /** Refuses a manifest whose uuid is taken or whose origin is unknown. */
  checkNew: (manifest: JsonObject) => void;
  by: string;
}

const MANIFEST_LIMIT = 1024 * 1024;

function parseManifestPart(value: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw InvalidParameter(`the "manifest" part is not JSON: ${(err as Error).message}`, [{ field: 'manifest', code: 'Invalid' }]);
  }
  if (!isObject(parsed)) throw InvalidParameter('the "manifest" part must be a JSON object', [{ field: 'manifest', code: 'Invalid' }]);
  return parsed;
}

export function createFromMultipart(ctx: Context, deps: MultipartDeps): Promise<ImageRecord> {
  return new Promise((resolve, reject) => {
    let raw: JsonObject | undefined;
    let sawFile = false;
    const fail = (err: unknown) => {
      // The rest of the upload is not wanted: close the connection after answering.
      ctx.req.unpipe(bb);
      ctx.set('Connection', 'close');
      reject(err);
    };
    const bb = busboy({ headers: ctx.req.headers, limits: { files: 1, fields: 8, fieldSize: MANIFEST_LIMIT } });
    bb.on('field', (name, value, info) => {
      if (name !== 'manifest') return;
      if (info.valueTruncated) {
        fail(InvalidParameter('the "manifest" part is too large', [{ field: 'manifest', code: 'Invalid' }]));
        return;
      }
      // A throw here would escape busboy's event into the request stream and kill the process.
      try {
        raw = parseManifestPart(value);
      } catch (err) {
        fail(err);
      }
    });
    bb.on('file', (name, stream) => {
      if (name !== 'file') {
        stream.resume();
        return;
      }
      sawFile = true;
      if (!raw) {
        stream.resume();
        fail(InvalidParameter('the "manifest" part must come before the "file" part', [{ field: 'manifest', code: 'MissingParameter' }]));
        return;
      }
      publish(ctx, deps, raw, stream).then(resolve, fail);
    });
    bb.on('close', () => {
      if (!sawFile) fail(InvalidParameter('the upload has no "file" part', [{ field: 'file', code: 'MissingParameter' }]));
    });
    bb.on('error', (err) => fail(InvalidParameter(`malformed multipart body: ${(err as Error).message}`)));
    ctx.req.pipe(bb);
  });
}

async function publish(ctx: Context, deps: MultipartDeps, raw: JsonObject, stream: Readable): Promise<ImageRecord> {
  const uuid = typeof raw.uuid === 'string' ? raw.uuid : randomUUID();
  const described = Array.isArray(raw.files) && isObject(raw.files[0]) ? raw.files[0] : {};
  let manifest = importedManifest({ ...raw, uuid }, uuid, deps.defaults);
  deps.checkNew(manifest);
  if (ctx.query.activate === 'true') manifest = activatedManifest(manifest, new Date());
  let compression: Compression | undefined = isCompression(described.compression) ? described.compression : undefined;
  const asked = ctx.query.compression;
  if (!compression && asked !== undefined) {
    if (!isCompression(asked)) throw InvalidParameter(`invalid compression "${String(asked)}"`, [{ field: 'compression', code: 'Invalid' }]);
    compression = asked;
  }
  let source = stream;
  if (!compression) ({ compression, stream: source } = await sniffStream(stream));
  const expect: { sha1?: string; size?: number; maxBytes: number } = { maxBytes: deps.maxBytes };
  if (typeof described.sha1 === 'string') expect.sha1 = described.sha1;
  if (typeof described.size === 'number') expect.size = described.size;
  const sidecar = withHistory({ source: { via: 'http-multipart' } }, 'created', deps.by);
  return deps.writer.create(manifest, ctx.query.activate === 'true' ? withHistory(sidecar, 'activated', deps.by) : sidecar,
    { source, compression, expect });
}

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

const tooLarge = () => InvalidParameter('the "manifest" part is too large', [{ field: 'manifest', code: 'Invalid' }]);

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

/** The text of a manifest sent as a file part, as `curl -F manifest=@m.json` does. */
async function readManifestFile(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > MANIFEST_LIMIT) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function createFromMultipart(ctx: Context, deps: MultipartDeps): Promise<ImageRecord> {
  return new Promise((resolve, reject) => {
    let manifest: Promise<JsonObject> | undefined;
    let sawFile = false;
    const fail = (err: unknown) => {
      // The rest of the upload is not wanted: close the connection after answering
      // (through the response itself: the error middleware replaces the headers).
      ctx.req.unpipe(bb);
      ctx.res.shouldKeepAlive = false;
      reject(err);
    };
    // A bad manifest is refused as soon as it is read, file part or not; and
    // nothing throws inside busboy's events, which would kill the process.
    const takeManifest = (text: Promise<string>) => {
      manifest = text.then(parseManifestPart);
      manifest.catch(fail);
    };
    // files: the manifest may come as a file part too.
    const bb = busboy({ headers: ctx.req.headers, limits: { files: 2, fields: 8, fieldSize: MANIFEST_LIMIT } });
    bb.on('field', (name, value, info) => {
      if (name !== 'manifest') return;
      if (info.valueTruncated) fail(tooLarge());
      else takeManifest(Promise.resolve(value));
    });
    bb.on('file', (name, stream) => {
      if (name === 'manifest') {
        takeManifest(readManifestFile(stream));
        return;
      }
      if (name !== 'file') {
        stream.resume();
        return;
      }
      sawFile = true;
      if (!manifest) {
        stream.resume();
        fail(InvalidParameter('the "manifest" part must come before the "file" part', [{ field: 'manifest', code: 'MissingParameter' }]));
        return;
      }
      // A manifest file part may still be finishing when the next part starts.
      manifest.then((raw) => publish(ctx, deps, raw, stream)).then(resolve, fail);
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

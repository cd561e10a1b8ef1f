/*
 * CreateImage from multipart/form-data (curl -F, the web catalog): a
 * "manifest" part holding JSON, then a "file" part streamed straight into
 * the import transaction. `?activate=true` publishes the image active in
 * that same single step; without it the image waits, unactivated.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type busboy from 'busboy';
import type { Context } from 'koa';
import { ApiError, errors, invalidParameter } from '../../errors.js';
import { isCompression } from '../../manifest/normalize.js';
import { importedManifest, type PublishDefaults } from '../../manifest/publish.js';
import { activated } from '../../manifest/states.js';
import { isObject, type Compression, type JsonObject } from '../../manifest/types.js';
import { sniffStream } from '../../store/sniff.js';
import type { ImageRecord } from '../../store/store.js';
import type { ImageWriter, Provenance } from '../../store/writer.js';

export interface MultipartDeps {
  writer: ImageWriter;
  defaults: PublishDefaults;
  maxBytes: number;
  provenance: Provenance;
}

const MANIFEST_LIMIT = 1024 * 1024;

const tooLarge = () => invalidParameter('manifest', 'the "manifest" part is too large');

function parseManifestPart(value: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw invalidParameter('manifest', `the "manifest" part is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(parsed)) throw invalidParameter('manifest', 'the "manifest" part must be a JSON object');
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

/** What a busboy error means to the client: a body cut short, or one that is not multipart. */
function formError(err: Error): ApiError {
  if (err instanceof ApiError) return err;
  if (/^Unexpected end of (form|file)$/.test(err.message)) {
    return errors.Download('the multipart body ended before its closing boundary');
  }
  return errors.InvalidParameter(`malformed multipart body: ${err.message}`);
}

/**
 * The file part's bytes, ending only once the whole form has been read and
 * found sound: a second "file" part, a truncated form or a hang-up after
 * the file must stop the import before it publishes anything.
 */
function wholeFormFile(part: Readable, formEnd: Promise<void>): Readable {
  return Readable.from((async function* fileThenFormEnd() {
    yield* part.iterator({ destroyOnReturn: false });
    await formEnd;
  })(), { objectMode: false });
}

export async function createFromMultipart(ctx: Context, deps: MultipartDeps): Promise<ImageRecord> {
  // Loaded by the first multipart upload, not at start.
  const { default: makeParser } = await import('busboy');
  let bb: busboy.Busboy;
  try {
    // files: the manifest may come as a file part too.
    bb = makeParser({ headers: ctx.req.headers, limits: { files: 2, fields: 8, fieldSize: MANIFEST_LIMIT } });
  } catch (err) {
    throw errors.InvalidHeader(`unusable Content-Type for a multipart upload: ${(err as Error).message}`);
  }
  const form = bb;
  return new Promise((resolve, reject) => {
    let manifest: Promise<JsonObject> | undefined;
    let file: Readable | undefined;
    let formSettled: { resolve: () => void; reject: (err: unknown) => void } | undefined;
    const formEnd = new Promise<void>((res, rej) => (formSettled = { resolve: res, reject: rej }));
    // Awaited only once a file part arrives.
    formEnd.catch(() => undefined);
    // The rest of the upload is not wanted; destroying the parser fails
    // whatever is still reading a part, so its import cleans up.
    const fail = (err: unknown) => {
      ctx.req.unpipe(form);
      formSettled!.reject(err);
      form.destroy();
      reject(err);
    };
    // A bad manifest is refused as soon as it is read, file part or not; and
    // nothing throws inside busboy's events, which would kill the process.
    const takeManifest = (text: Promise<string>) => {
      if (manifest) {
        fail(invalidParameter('manifest', 'the upload has more than one "manifest" part'));
        return;
      }
      manifest = text.then(parseManifestPart);
      manifest.catch(fail);
    };
    const tooManyFiles = () => fail(invalidParameter('file', 'the upload has more than one "file" part'));
    form.on('field', (name, value, info) => {
      if (name !== 'manifest') return;
      if (info.valueTruncated) fail(tooLarge());
      else takeManifest(Promise.resolve(value));
    });
    form.on('file', (name, stream) => {
      stream.on('error', (err) => fail(formError(err)));
      if (name === 'manifest') {
        takeManifest(readManifestFile(stream));
        return;
      }
      if (name !== 'file') {
        stream.resume();
        return;
      }
      if (file) {
        stream.resume();
        tooManyFiles();
        return;
      }
      file = wholeFormFile(stream, formEnd);
      file.on('error', (err) => fail(formError(err)));
      if (!manifest) {
        stream.resume();
        fail(invalidParameter('manifest', 'the "manifest" part must come before the "file" part', 'MissingParameter'));
        return;
      }
      // A manifest file part may still be finishing when the next part starts.
      const source = file;
      manifest.then((raw) => publish(ctx, deps, raw, source)).then(resolve, fail);
    });
    form.on('filesLimit', tooManyFiles);
    form.on('close', () => {
      if (!file) fail(invalidParameter('file', 'the upload has no "file" part', 'MissingParameter'));
      else formSettled!.resolve();
    });
    form.on('error', (err) => fail(formError(err as Error)));
    // pipe() leaves the parser waiting forever when the client hangs up.
    ctx.req.once('close', () => {
      if (!ctx.req.complete) form.destroy(errors.Download('the client went away before the upload ended'));
    });
    ctx.req.pipe(form);
  });
}

async function publish(ctx: Context, deps: MultipartDeps, raw: JsonObject, stream: Readable): Promise<ImageRecord> {
  const uuid = typeof raw.uuid === 'string' ? raw.uuid : randomUUID();
  const described = Array.isArray(raw.files) && isObject(raw.files[0]) ? raw.files[0] : {};
  let manifest = importedManifest({ ...raw, uuid }, uuid, deps.defaults);
  if (ctx.query.activate === 'true') manifest = activated(manifest, new Date());
  let compression: Compression | undefined = isCompression(described.compression) ? described.compression : undefined;
  const asked = ctx.query.compression;
  if (!compression && asked !== undefined) {
    if (!isCompression(asked)) throw invalidParameter('compression', `invalid compression "${String(asked)}"`);
    compression = asked;
  }
  const expect: { sha1?: string; size?: number; maxBytes: number } = { maxBytes: deps.maxBytes };
  if (typeof described.sha1 === 'string') expect.sha1 = described.sha1;
  if (typeof described.size === 'number') expect.size = described.size;
  // Refused before a byte of the file is read (or sniffed).
  await deps.writer.check(manifest, { file: { compression: compression ?? 'none', expect } });
  let source = stream;
  if (!compression) ({ compression, stream: source } = await sniffStream(stream));
  return deps.writer.create(manifest, deps.provenance, { file: { source, compression, expect } });
}

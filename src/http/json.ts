/*
 * JSON responses. imgadm's client verifies Content-MD5 on every JSON body it
 * receives (docs/protocol.md §1.3), so we always send a correct one, with an ETag
 * for conditional GET. Big listings are serialised once and reused (see
 * ResponseCache) until the index changes, and so are their compressed copies
 * for clients that ask for one (sendListing).
 */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Context } from 'koa';
import { jsonArrayPieces } from '../store/json-pieces.js';

export interface JsonBody {
  buffer: Buffer;
  md5: string;
  etag: string;
}

export function jsonBody(value: unknown): JsonBody {
  return jsonTextBody(JSON.stringify(value));
}

/** A body of JSON serialised beforehand. */
export function jsonTextBody(json: string): JsonBody {
  return digested(Buffer.from(json, 'utf8'));
}

/**
 * The bytes JSON.stringify(array) gives, made one element at a time: a
 * listing of 100,000 images never exists as an array of views nor as one
 * string besides its bytes.
 */
export function jsonArrayBytes(items: Iterable<unknown>): Buffer {
  return bytesOf(jsonArrayPieces(items));
}

function bytesOf(pieces: Iterable<string>): Buffer {
  const buffers = Array.from(pieces, (piece) => Buffer.from(piece, 'utf8'));
  return buffers.length === 1 ? buffers[0]! : Buffer.concat(buffers);
}

function digested(buffer: Buffer, etagSuffix = ''): JsonBody {
  const md5 = createHash('md5').update(buffer).digest();
  return { buffer, md5: md5.toString('base64'), etag: `"${md5.toString('hex')}${etagSuffix}"` };
}

/** Sends a JSON value, or a body prepared earlier by jsonBody(). */
export function sendJson(ctx: Context, value: unknown, prepared?: JsonBody): void {
  const body = prepared ?? jsonBody(value);
  ctx.type = 'application/json';
  ctx.body = body.buffer;
  if (ctx.status === 200) {
    ctx.etag = body.etag;
    // A 304 has no body for a Content-MD5 to match; restify clients would call it BadDigest.
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
  }
  ctx.set('Content-MD5', body.md5);
}

export type Coding = 'br' | 'gzip';

/** Below this a listing goes out as it is: the headers would outweigh the saving. */
const MIN_COMPRESSED = 1024;

const gzip = promisify(zlib.gzip);
const brotli = promisify(zlib.brotliCompress);

/**
 * Compressors for a listing, run on the thread pool once per cached body.
 * A listing's uuids and sha1s are what no coder shrinks: gzip -6 takes it
 * to about a tenth, brotli at quality 4 some 5 % below gzip for about
 * three times the work, and brotli's default quality (11) 25 % below for a
 * hundred times the work (12 s for 10,000 images), too slow for a client
 * to wait on.
 */
const COMPRESS: Record<Coding, (b: Buffer) => Promise<Buffer>> = {
  gzip: (b) => gzip(b, { level: 6 }),
  br: (b) => brotli(b, {
    params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length },
  }),
};

/**
 * A serialised listing and its compressed copies, each made on first demand
 * and kept with it (so dropped with it when the index moves). A copy's
 * Content-MD5 is of the bytes sent, as restify clients check it before
 * they decompress; its ETag is the identity one marked with the coding, so
 * a cache never takes one coding's 304 for another's.
 */
export class CachedBody implements JsonBody {
  readonly buffer: Buffer;
  readonly md5: string;
  readonly etag: string;
  private readonly codings = new Map<Coding, Promise<JsonBody>>();

  /** `pieces`: the listing's JSON text, in pieces (json-pieces.ts). */
  constructor(pieces: Iterable<string>) {
    ({ buffer: this.buffer, md5: this.md5, etag: this.etag } = digested(bytesOf(pieces)));
  }

  encoded(coding: Coding): Promise<JsonBody> {
    let body = this.codings.get(coding);
    if (!body) {
      const etag = this.etag.slice(0, -1);
      body = COMPRESS[coding](this.buffer).then((b) => ({ ...digested(b), etag: `${etag}-${coding}"` }));
      this.codings.set(coding, body);
      // A failed compression is not kept: the next request tries again.
      body.catch(() => this.codings.delete(coding));
    }
    return body;
  }
}

/**
 * The coding a client asked for, or none. No Accept-Encoding (imgadm,
 * sdc-clients) means none, whatever a parser makes of the empty header.
 */
function chosenCoding(ctx: Context): Coding | null {
  if (!ctx.get('Accept-Encoding')) return null;
  const coding = ctx.acceptsEncodings('br', 'gzip', 'identity');
  return coding === 'br' || coding === 'gzip' ? coding : null;
}

/**
 * Sends a cached listing, compressed when the client asked for it and the
 * listing is big enough. Image files never come here: they go out exactly
 * as stored (docs/protocol.md §8.4).
 */
export async function sendListing(ctx: Context, body: CachedBody): Promise<void> {
  ctx.vary('Accept-Encoding');
  const coding = body.buffer.length >= MIN_COMPRESSED ? chosenCoding(ctx) : null;
  if (!coding) {
    sendJson(ctx, null, body);
    return;
  }
  const encoded = await body.encoded(coding);
  ctx.set('Content-Encoding', coding);
  sendJson(ctx, null, encoded);
}

/**
 * A small LRU of serialised responses, dropped as a whole whenever the
 * index generation moves, so a cached body is never staler than the index.
 */
export class ResponseCache {
  private entries = new Map<string, CachedBody>();
  private generation = -1;

  constructor(private readonly capacity = 64) {}

  /** The listing cached under `key`, or one made of the JSON pieces `build` yields. */
  get(generation: number, key: string, build: () => Iterable<string>): CachedBody {
    if (generation !== this.generation) {
      this.entries.clear();
      this.generation = generation;
    }
    let body = this.entries.get(key);
    if (body) {
      this.entries.delete(key);
    } else {
      body = new CachedBody(build());
      if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(key, body);
    return body;
  }
}

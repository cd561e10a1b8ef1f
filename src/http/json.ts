/*
 * JSON responses. imgadm's client verifies Content-MD5 on every JSON body it
 * receives (protocol.md §1.3), so we always send a correct one, with an ETag
 * for conditional GET. Big listings are serialised once and reused (see
 * ResponseCache) until the index changes.
 */
import { createHash } from 'node:crypto';
import type { Context } from 'koa';

export interface JsonBody {
  buffer: Buffer;
  md5: string;
  etag: string;
}

export function jsonBody(value: unknown): JsonBody {
  const buffer = Buffer.from(JSON.stringify(value), 'utf8');
  const md5 = createHash('md5').update(buffer).digest();
  return { buffer, md5: md5.toString('base64'), etag: `"${md5.toString('hex')}"` };
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

/**
 * A small LRU of serialised responses, dropped as a whole whenever the
 * index generation moves, so a cached body is never staler than the index.
 */
export class ResponseCache {
  private entries = new Map<string, JsonBody>();
  private generation = -1;

  constructor(private readonly capacity = 64) {}

  get(generation: number, key: string, build: () => unknown): JsonBody {
    if (generation !== this.generation) {
      this.entries.clear();
      this.generation = generation;
    }
    let body = this.entries.get(key);
    if (body) {
      this.entries.delete(key);
    } else {
      body = jsonBody(build());
      if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(key, body);
    return body;
  }
}

/*
 * Channels on the wire (docs/protocol.md §3.7): which channel a request
 * means, and whether its answers show `channels`. A server without
 * channels configured skips all of this, so a `channel` parameter (imgadm
 * sends one whenever its source URL names a channel) changes nothing.
 */
import type { Context, Next } from 'koa';
import type { Channels, ChannelPick } from '../manifest/channels.js';
import type { ImageRecord } from '../store/store.js';

/**
 * Picks the request's channel (ctx.state.channel, a ChannelPick) before
 * anything else looks at it; a server without channels sets none. `star`
 * allows `channel=*` (every channel): on reads and on DeleteImage, never
 * where an image is published, which needs one channel to land in.
 */
export function reqChannel(channels: Channels | undefined, star: boolean) {
  return async function pickChannel(ctx: Context, next: Next): Promise<void> {
    if (channels) ctx.state.channel = channels.pick(ctx.query.channel, star);
    await next();
  };
}

/**
 * The IMGAPI view of an image for this request, as JSON: the record's own
 * listing entry, with `channels` added (last, as toImgapi() puts them) for
 * API version 2 clients of a server with channels.
 */
export function imgapiJson(ctx: Context, channels: Channels | undefined): (r: ImageRecord) => string {
  if (!channels || ctx.state.apiVersion === '1.0.0') return (r) => r.entry;
  return (r) => `${r.entry.slice(0, -1)},"channels":${JSON.stringify(channels.of(r.facts))}}`;
}

/** A key for cached listings: what, beyond the query string, changes the answer. */
export function viewKey(ctx: Context, channels: Channels | undefined): string {
  if (!channels) return '';
  const pick = ctx.state.channel as ChannelPick;
  return `${'all' in pick ? '*' : pick.name}|${String(ctx.state.apiVersion)}`;
}

/**
 * DSAPI clients (fifo, old imgadm sources) cannot name a channel: they
 * see the default channel, or every channel when there is no default; a
 * `channel` parameter, if one comes, is honoured as on IMGAPI.
 */
export function reqDsapiChannel(channels: Channels | undefined) {
  return async function pickDsapiChannel(ctx: Context, next: Next): Promise<void> {
    if (channels) {
      const named = ctx.query.channel !== undefined && ctx.query.channel !== '';
      ctx.state.channel = named || channels.fallback !== undefined ? channels.pick(ctx.query.channel, true) : { all: true };
    }
    await next();
  };
}

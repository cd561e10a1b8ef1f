/*
 * Steps shared by the routes: turn the :uuid path segment into an image
 * record or a 404. Anything that is not a lowercase UUID is simply not
 * found (never a 400: imgadm gives up on a source that answers 4xx ≠ 404).
 */
import type { Context, Next } from 'koa';
import { errors } from '../errors.js';
import type { ChannelPick, Channels } from '../manifest/channels.js';
import { UUID_RE } from '../manifest/types.js';
import type { ImageRecord, ImageStore } from '../store/store.js';

export interface ImageState {
  image: ImageRecord;
}

/**
 * Anonymous callers see public images only; anyone who authenticated sees
 * them all (sdc-imgapi's public mode, with this server's users as operators).
 */
export function seesPrivate(ctx: Context): boolean {
  return ctx.state.principal !== undefined;
}

/** An image outside the request's channel (reqChannel) is not found either, as in sdc-imgapi. */
export function reqLoadImage(store: ImageStore, channels?: Channels) {
  return async function reqImage(ctx: Context, next: Next): Promise<void> {
    const uuid = String(ctx.params.uuid ?? '');
    const image = UUID_RE.test(uuid) ? store.get(uuid) : undefined;
    if (!image || (!image.isPublic && !seesPrivate(ctx))) throw errors.ResourceNotFound(`image ${uuid} not found`);
    const pick = ctx.state.channel as ChannelPick | undefined;
    if (channels && pick && !channels.holds(pick, image.facts)) {
      throw errors.ResourceNotFound(`image ${uuid} not found in channel ${'name' in pick ? pick.name : '*'}`);
    }
    ctx.state.image = image;
    await next();
  };
}

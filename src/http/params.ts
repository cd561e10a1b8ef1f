/*
 * Steps shared by the routes: turn the :uuid path segment into an image
 * record or a 404. Anything that is not a lowercase UUID is simply not
 * found (never a 400: imgadm gives up on a source that answers 4xx ≠ 404).
 */
import type { Context, Next } from 'koa';
import { ResourceNotFound } from '../errors.js';
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

export function reqLoadImage(store: ImageStore) {
  return async function reqImage(ctx: Context, next: Next): Promise<void> {
    const uuid = String(ctx.params.uuid ?? '');
    const image = UUID_RE.test(uuid) ? store.get(uuid) : undefined;
    if (!image || (!image.manifest.public && !seesPrivate(ctx))) throw ResourceNotFound(`image ${uuid} not found`);
    ctx.state.image = image;
    await next();
  };
}

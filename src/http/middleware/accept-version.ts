/*
 * IMGAPI version negotiation. imgadm sends "~2", its publish client "*",
 * other clients nothing; sdc-imgapi serves 1.0.0 and 2.0.0 and answers any
 * range it cannot satisfy with 400 InvalidVersion.
 */
import type { Context, Next } from 'koa';
import semver from 'semver';
import { InvalidVersion } from '../../errors.js';

const SERVED = ['2.0.0', '1.0.0'];

export async function acceptVersion(ctx: Context, next: Next): Promise<void> {
  const range = ctx.get('accept-version') || ctx.get('x-api-version');
  if (range && !SERVED.some((v) => semver.validRange(range) !== null && semver.satisfies(v, range))) {
    throw InvalidVersion(range);
  }
  await next();
}

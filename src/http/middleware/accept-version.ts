/*
 * IMGAPI version negotiation. imgadm sends "~2", its publish client "*",
 * other clients nothing; sdc-imgapi serves 1.0.0 and 2.0.0 and answers any
 * range it cannot satisfy with 400 InvalidVersion.
 */
import type { Context, Next } from 'koa';
// The two functions alone: all of semver is some 50 modules to load at start.
import satisfies from 'semver/functions/satisfies.js';
import validRange from 'semver/ranges/valid.js';
import { errors } from '../../errors.js';

const SERVED = ['2.0.0', '1.0.0'];

/**
 * Sets ctx.state.apiVersion to the newest version the range allows: no
 * header means 1.0.0, as in sdc-imgapi (2.0.0 differs only in showing
 * `channels`).
 */
export async function acceptVersion(ctx: Context, next: Next): Promise<void> {
  const range = ctx.get('accept-version') || ctx.get('x-api-version');
  const version = range ? SERVED.find((v) => validRange(range) !== null && satisfies(v, range)) : '1.0.0';
  if (version === undefined) throw errors.InvalidVersion(range);
  ctx.state.apiVersion = version;
  await next();
}

/*
 * IMGAPI version negotiation. imgadm sends "~2", its publish client "*",
 * other clients nothing; sdc-imgapi serves 1.0.0 and 2.0.0 and answers any
 * range it cannot satisfy with 400 InvalidVersion.
 */
import type { Context, Next } from 'koa';
import { errors } from '../../errors.js';

const SERVED = ['2.0.0', '1.0.0'];

/**
 * The two functions alone, loaded by the first request that names a
 * range: all of semver is some 50 modules, these two still 20, and a
 * start need not wait for them.
 */
let semver: Promise<(version: string, range: string) => boolean> | undefined;
function loadSemver(): Promise<(version: string, range: string) => boolean> {
  semver ??= Promise.all([import('semver/functions/satisfies.js'), import('semver/ranges/valid.js')])
    .then(([{ default: satisfies }, { default: validRange }]) => (v, range) => validRange(range) !== null && satisfies(v, range));
  return semver;
}

/**
 * Sets ctx.state.apiVersion to the newest version the range allows: no
 * header means 1.0.0, as in sdc-imgapi (2.0.0 differs only in showing
 * `channels`).
 */
export async function acceptVersion(ctx: Context, next: Next): Promise<void> {
  const range = ctx.get('accept-version') || ctx.get('x-api-version');
  const allows = range ? await loadSemver() : null;
  const version = allows ? SERVED.find((v) => allows(v, range)) : '1.0.0';
  if (version === undefined) throw errors.InvalidVersion(range);
  ctx.state.apiVersion = version;
  await next();
}

/*
 * The public base of the absolute URLs we hand out (DSAPI files[].url, the
 * import commands on the catalog page). A configured base_url wins; else the
 * original server's rule, prefix + Host + suffix, where the forwarded
 * headers stand in for Host and scheme only when trust_proxy says a proxy we
 * run set them.
 */
import type { Context } from 'koa';
import type { Config } from '../config/config.js';
import { errors } from '../errors.js';

const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

function firstValue(header: string): string {
  return header.split(',')[0]!.trim();
}

export function publicBaseUrl(ctx: Context, config: Readonly<Config>): string {
  if (config.base_url) return config.base_url;
  let host = ctx.get('host');
  let prefix = config.prefix;
  if (config.trust_proxy) {
    const fwdHost = firstValue(ctx.get('x-forwarded-host'));
    const fwdProto = firstValue(ctx.get('x-forwarded-proto')).toLowerCase();
    if (fwdHost) host = fwdHost;
    if (fwdProto === 'http' || fwdProto === 'https') prefix = `${fwdProto}://`;
  }
  if (!HOST_RE.test(host)) throw errors.InvalidHeader('a valid Host header is required to build absolute URLs');
  return `${prefix}${host}${config.suffix}`.replace(/\/+$/, '');
}

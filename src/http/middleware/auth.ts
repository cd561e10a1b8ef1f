/*
 * Authentication. Credentials, when sent, are always checked (a wrong
 * password is a 401 even on a read, as imgadm sends its URL's userinfo on
 * every request); reads need none unless read_auth is on; every write does.
 * The principal goes on ctx.state.principal for the routes and the audit log.
 */
import type { Context, Next } from 'koa';
import type { Credentials } from '../../credentials.js';
import { ApiError } from '../../errors.js';

const CHALLENGE = { 'WWW-Authenticate': 'Basic realm="smartos-image-server", charset="UTF-8"' };

/**
 * A browser answers a Basic challenge with its own login prompt, then keeps
 * sending what was typed there. The web catalog asks for credentials itself
 * and marks its requests with X-Requested-With: those get no challenge.
 */
export const Unauthorized = (message: string, ctx?: Context) =>
  new ApiError('UnauthorizedError', 401, message, ctx?.get('x-requested-with') ? {} : { headers: CHALLENGE });

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A write a browser sent on behalf of another site: a form POST or a
 * preflight-free fetch() may carry Basic credentials the browser remembers
 * for this server, so CORS alone does not stop it. Browsers mark such
 * requests (Sec-Fetch-Site, else an Origin naming another host); other
 * clients send neither header.
 */
function crossSite(ctx: Context): boolean {
  const site = ctx.get('sec-fetch-site');
  if (site) return site !== 'same-origin' && site !== 'none';
  const origin = ctx.get('origin');
  if (!origin) return false;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return true; // "null" and the like
  }
  return host !== ctx.get('host') && host !== ctx.get('x-forwarded-host');
}

export function authenticate(credentials: Credentials, readAuth: boolean) {
  return async function reqAuthenticate(ctx: Context, next: Next): Promise<void> {
    if (!READ_METHODS.has(ctx.method) && crossSite(ctx)) {
      throw new ApiError('CrossSiteWrite', 403, 'writes from another site\'s page are refused');
    }
    const header = ctx.get('authorization');
    if (header) {
      const principal = await credentials.check(header);
      if (!principal) throw Unauthorized('invalid credentials', ctx);
      ctx.state.principal = principal;
      ctx.state.log = ctx.state.log?.child({ user: principal.name });
    } else if (readAuth && READ_METHODS.has(ctx.method) && ctx.path !== '/ping') {
      throw Unauthorized('this server requires credentials for reads', ctx);
    }
    await next();
  };
}

/** A step that lets only authenticated callers on; `what` says what for. */
export function reqCredentials(what: string) {
  return async function reqAuthenticated(ctx: Context, next: Next): Promise<void> {
    if (!ctx.state.principal) throw Unauthorized(`${what} requires credentials (HTTP Basic or a bearer token)`, ctx);
    await next();
  };
}

/** The step every write route starts with. */
export const reqWriter = reqCredentials('publishing');

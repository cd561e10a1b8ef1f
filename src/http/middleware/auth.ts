/*
 * Authentication. Credentials, when sent, are always checked (a wrong
 * password is a 401 even on a read, as imgadm sends its URL's userinfo on
 * every request); reads need none unless read_auth is on; every write does.
 * The principal goes on ctx.state.principal for the routes and the audit log.
 * Failed logins are limited per client address (ctx.ip: the peer, or
 * X-Forwarded-For under trust_proxy) and per user name.
 */
import type { Context, Next } from 'koa';
import type { Credentials, Refusal } from '../../credentials.js';
import { errors } from '../../errors.js';

const CHALLENGE = { 'WWW-Authenticate': 'Basic realm="smartos-image-server", charset="UTF-8"' };

/**
 * A browser answers a Basic challenge with its own login prompt, then keeps
 * sending what was typed there. The web catalog asks for credentials itself
 * and marks its requests with X-Requested-With: those get no challenge.
 */
export const Unauthorized = (message: string, ctx?: Context) =>
  errors.UnauthorizedError(message, ctx?.get('x-requested-with') ? {} : { headers: CHALLENGE });

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

/**
 * Whom failed logins are counted against: an IPv4 address, or an IPv6
 * /64, since one host commonly holds a whole /64 and could otherwise
 * guess from a fresh address every time.
 */
export function clientKey(ip: string): string {
  const bare = ip.replace(/%.*$/, '');
  if (!bare.includes(':') || /^::ffff:\d/i.test(bare)) return bare;
  const [head = '', tail] = bare.split('::');
  const front = head ? head.split(':') : [];
  const back = tail ? tail.split(':') : [];
  const groups = tail === undefined ? front : [...front, ...Array<string>(8 - front.length - back.length).fill('0'), ...back];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

/** Both carry Retry-After; neither says whether the user name exists. */
function refusal(r: Refusal) {
  const headers = { 'Retry-After': String(r.retryAfter) };
  return r.refused === 'busy'
    ? errors.ServiceUnavailableError('too many password checks waiting; try again later', { headers })
    : errors.TooManyRequests('too many failed logins; try again later', { headers });
}

export function authenticate(credentials: Credentials, readAuth: boolean) {
  return async function reqAuthenticate(ctx: Context, next: Next): Promise<void> {
    if (!READ_METHODS.has(ctx.method) && crossSite(ctx)) {
      throw errors.CrossSiteWrite('writes from another site\'s page are refused');
    }
    const header = ctx.get('authorization');
    if (header) {
      const principal = await credentials.check(header, clientKey(ctx.ip));
      if (!principal) throw Unauthorized('invalid credentials', ctx);
      if ('refused' in principal) throw refusal(principal);
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

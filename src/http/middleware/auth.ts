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

export const Unauthorized = (message: string) =>
  new ApiError('UnauthorizedError', 401, message, { headers: CHALLENGE });

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function authenticate(credentials: Credentials, readAuth: boolean) {
  return async function reqAuthenticate(ctx: Context, next: Next): Promise<void> {
    const header = ctx.get('authorization');
    if (header) {
      const principal = await credentials.check(header);
      if (!principal) throw Unauthorized('invalid credentials');
      ctx.state.principal = principal;
      ctx.state.log = ctx.state.log?.child({ user: principal.name });
    } else if (readAuth && READ_METHODS.has(ctx.method) && ctx.path !== '/ping') {
      throw Unauthorized('this server requires credentials for reads');
    }
    await next();
  };
}

/** A step that lets only authenticated callers on; `what` says what for. */
export function reqCredentials(what: string) {
  return async function reqAuthenticated(ctx: Context, next: Next): Promise<void> {
    if (!ctx.state.principal) throw Unauthorized(`${what} requires credentials (HTTP Basic or a bearer token)`);
    await next();
  };
}

/** The step every write route starts with. */
export const reqWriter = reqCredentials('publishing');

/*
 * The one error taxonomy. Every failure a client can see is an ApiError with
 * an IMGAPI rest code and an HTTP status; http/middleware/errors.ts is the
 * only place that turns one into a response body, and toApiError() is the
 * only place that translates foreign errors.
 */

export interface FieldError {
  field: string;
  code: string;
  message?: string;
}

export class ApiError extends Error {
  readonly restCode: string;
  readonly statusCode: number;
  readonly errors?: FieldError[];
  readonly headers?: Record<string, string>;

  constructor(
    restCode: string,
    statusCode: number,
    message: string,
    opts: { errors?: FieldError[]; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = `${restCode}Error`;
    this.restCode = restCode;
    this.statusCode = statusCode;
    if (opts.errors) this.errors = opts.errors;
    if (opts.headers) this.headers = opts.headers;
  }

  body(): { code: string; message: string; errors?: FieldError[] } {
    return this.errors
      ? { code: this.restCode, message: this.message, errors: this.errors }
      : { code: this.restCode, message: this.message };
  }
}

/* Constructors for the codes we use, named as in sdc-imgapi's errors.js. */

export const ResourceNotFound = (message: string) => new ApiError('ResourceNotFound', 404, message);

export const InvalidParameter = (message: string, errors: FieldError[] = []) =>
  new ApiError('InvalidParameter', 422, message, { errors });

export const ValidationFailed = (message: string, errors: FieldError[]) =>
  new ApiError('ValidationFailed', 422, message, { errors });

export const BadMethod = (method: string, path: string, allowed: string[]) =>
  new ApiError('BadMethod', 405, `${method} is not allowed on ${path}`, {
    headers: { Allow: allowed.join(', ') },
  });

export const InvalidVersion = (range: string) =>
  new ApiError('InvalidVersion', 400, `${range} is not supported by this server`);

export const InvalidHeader = (message: string) => new ApiError('InvalidHeader', 400, message);

export const BadRequest = (message: string) => new ApiError('BadRequestError', 400, message);

export const ImageUuidAlreadyExists = (uuid: string, why = 'already exists') =>
  new ApiError('ImageUuidAlreadyExists', 409, `image uuid "${uuid}" ${why}`);

export const InternalError = (cause?: unknown) =>
  new ApiError('InternalError', 500, 'internal error', { cause });

/** Maps anything thrown inside the server onto the taxonomy. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const status = (err as { status?: unknown; statusCode?: unknown } | null)?.status;
  // Errors raised by Node's http parser or koa's own helpers (e.g. URI
  // decoding) carry a 4xx status and are the client's fault.
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 404) return ResourceNotFound('resource not found');
    return BadRequest((err as Error).message || 'bad request');
  }
  return InternalError(err);
}

/** One line on stderr for a CLI: the message, never a stack. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

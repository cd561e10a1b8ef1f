/*
 * The one error taxonomy, kept as data. ERROR_TABLE names every code a
 * client can ever see, with its HTTP status, whether trying again may help,
 * and what it means; the error constructors, the OpenAPI document and the
 * error list in docs/api.md are all made from it, so none of them can drift.
 * Code matches errors through the constructors (`errors.X.is(err)`), never
 * by comparing strings or statuses; http/middleware/errors.ts is the only
 * place that turns an error into a response body, and toApiError() the only
 * place that translates foreign errors.
 */

export interface FieldError {
  field: string;
  code: string;
  message?: string;
}

export interface ErrorSpec {
  status: number;
  /** Whether the same request may succeed later (a client or a peer may retry it). */
  retryable: boolean;
  description: string;
}

/* Names as sdc-imgapi's errors.js has them, where it has the error at all. */
export const ERROR_TABLE = {
  BadRequestError: {
    status: 400, retryable: false,
    description: 'The request could not be parsed as HTTP, or its URL could not be decoded.',
  },
  Download: {
    status: 400, retryable: false,
    description: 'An image file did not arrive whole: the body ended early, or its size, sha1 or compressed stream does not match what was announced.',
  },
  InvalidHeader: {
    status: 400, retryable: false,
    description: 'A header is missing or unusable (a Host that cannot build absolute URLs, a body that is not JSON).',
  },
  InvalidVersion: {
    status: 400, retryable: false,
    description: 'The Accept-Version range matches none of the API versions served (1.0.0 and 2.0.0).',
  },
  Upload: {
    status: 400, retryable: false,
    description: 'The image file is larger than max_upload_bytes allows.',
  },
  UnauthorizedError: {
    status: 401, retryable: false,
    description: 'Credentials are required and missing, or they are wrong.',
  },
  CrossSiteWrite: {
    status: 403, retryable: false,
    description: 'A browser sent a write on behalf of another site\'s page.',
  },
  ResourceNotFound: {
    status: 404, retryable: false,
    description: 'No such image, file or path (also for an image the caller may not see).',
  },
  BadMethod: {
    status: 405, retryable: false,
    description: 'The path exists but not with this method; Allow lists those it has.',
  },
  ImageUuidAlreadyExists: {
    status: 409, retryable: false,
    description: 'An image with this uuid exists, is being published, or was deleted after it was activated (a uuid is never reused).',
  },
  ImageChanged: {
    status: 409, retryable: true,
    description: 'The image changed between reading it and writing the change; read it again.',
  },
  RequestTimeout: {
    status: 408, retryable: true,
    description: 'The request headers did not arrive within headers_timeout_ms.',
  },
  RequestedRangeNotSatisfiable: {
    status: 416, retryable: false,
    description: 'The byte range lies outside the file.',
  },
  ImageAlreadyActivated: {
    status: 422, retryable: false,
    description: 'ActivateImage on an image that is active or disabled already.',
  },
  ImageFilesImmutable: {
    status: 422, retryable: false,
    description: 'AddImageFile on an image that has been activated: its file can no longer change.',
  },
  ImageHasDependentImages: {
    status: 422, retryable: false,
    description: 'DeleteImage on an image that other images name as their origin.',
  },
  ImageNameVersionTaken: {
    status: 422, retryable: false,
    description: 'import-image: another image already has this name and version.',
  },
  InvalidParameter: {
    status: 422, retryable: false,
    description: 'A query parameter or part of the request has a bad value; errors[] names it.',
  },
  NoActivationNoFile: {
    status: 422, retryable: false,
    description: 'ActivateImage on an image that has no file yet.',
  },
  OriginDoesNotExist: {
    status: 422, retryable: false,
    description: 'The manifest names an origin image this server does not hold.',
  },
  ValidationFailed: {
    status: 422, retryable: false,
    description: 'The manifest breaks imgmanifest\'s rules (or this server\'s stricter ones); errors[] lists each field.',
  },
  TooManyRequests: {
    status: 429, retryable: true,
    description: 'Too many wrong passwords from this client or for this user name; Retry-After says when to try again.',
  },
  RequestHeaderFieldsTooLarge: {
    status: 431, retryable: false,
    description: 'The request headers are too large.',
  },
  InternalError: {
    status: 500, retryable: true,
    description: 'A failure inside the server; the log has the details.',
  },
  ServiceUnavailableError: {
    status: 503, retryable: true,
    description: 'The image is being changed by another process, the server cannot take the request now (Retry-After says when to try again), or serve_dir is read-only.',
  },
  InsufficientStorage: {
    status: 507, retryable: true,
    description: 'The disk that holds serve_dir is full; nothing of the request was kept.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export interface ApiErrorOptions {
  errors?: FieldError[];
  headers?: Record<string, string>;
  cause?: unknown;
}

export class ApiError extends Error {
  readonly restCode: ErrorCode;
  readonly statusCode: number;
  readonly retryable: boolean;
  readonly errors?: FieldError[];
  readonly headers?: Record<string, string>;

  constructor(code: ErrorCode, message: string, opts: ApiErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    const spec: ErrorSpec = ERROR_TABLE[code];
    this.name = `${code}Error`;
    this.restCode = code;
    this.statusCode = spec.status;
    this.retryable = spec.retryable;
    if (opts.errors) this.errors = opts.errors;
    if (opts.headers) this.headers = opts.headers;
  }

  body(): { code: string; message: string; errors?: FieldError[] } {
    return this.errors
      ? { code: this.restCode, message: this.message, errors: this.errors }
      : { code: this.restCode, message: this.message };
  }
}

/** Makes errors of one code, and tells whether something thrown is one. */
export interface ErrorMaker {
  (message: string, opts?: ApiErrorOptions): ApiError;
  readonly code: ErrorCode;
  is(err: unknown): err is ApiError;
}

function maker(code: ErrorCode): ErrorMaker {
  const make = (message: string, opts?: ApiErrorOptions) => new ApiError(code, message, opts);
  return Object.assign(make, {
    code,
    is: (err: unknown): err is ApiError => err instanceof ApiError && err.restCode === code,
  });
}

/** One constructor per code of the table: `throw errors.ResourceNotFound('…')`. */
export const errors = Object.fromEntries(
  (Object.keys(ERROR_TABLE) as ErrorCode[]).map((code) => [code, maker(code)]),
) as { readonly [K in ErrorCode]: ErrorMaker };

/** InvalidParameter for one bad (or missing) field, named in errors[]. */
export function invalidParameter(field: string, message: string, code = 'Invalid'): ApiError {
  return errors.InvalidParameter(message, { errors: [{ field, code }] });
}

/** The file system errors a client can be told about: the store's disk full, read-only or not ours. */
function storageError(err: unknown): ApiError | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return errors.InsufficientStorage('the disk that holds the images is full', { cause: err });
  }
  if (code === 'EROFS') {
    return errors.ServiceUnavailableError('the images are on a read-only file system: nothing can be written', { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return errors.ServiceUnavailableError('the server is not allowed to write where the images are (permission denied)', { cause: err });
  }
  return undefined;
}

/** Maps anything thrown inside the server onto the taxonomy. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  const storage = storageError(err);
  if (storage) return storage;
  const status = (err as { status?: unknown; statusCode?: unknown } | null)?.status;
  // Errors raised by Node's http parser or koa's own helpers (e.g. URI
  // decoding) carry a 4xx status and are the client's fault.
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 404) return errors.ResourceNotFound('resource not found');
    return errors.BadRequestError((err as Error).message || 'bad request');
  }
  return errors.InternalError('internal error', { cause: err });
}

/** One line on stderr for a CLI: the message, never a stack. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

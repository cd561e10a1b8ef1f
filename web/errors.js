/*
 * The API's error answers, {code, message, errors: [{field, code,
 * message}]}, as the page reads and words them, and which input of the
 * publish form each one belongs to. Pure, for the unit tests.
 */

/** An error answer of the API, or a failure to get one (status 0). */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && typeof body.message === 'string' && body.message ? body.message : `The server answered ${status}.`);
    this.status = status;
    this.code = body && typeof body.code === 'string' ? body.code : '';
    this.errors = body && Array.isArray(body.errors) ? body.errors.filter((e) => e && typeof e === 'object') : [];
  }
}

/** The JSON of a 2xx answer (null when there is none), else throws its ApiError. */
export function parseBody(status, text) {
  let data;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (status >= 200 && status < 300) return data;
  throw new ApiError(status, data && typeof data === 'object' ? data : null);
}

/** No answer at all: the connection failed, or was cut (the message says which). */
export const networkError = (message = 'The server could not be reached.') => new ApiError(0, { code: 'NetworkError', message });

const CODE_WORDS = {
  MissingParameter: 'is required',
  Invalid: 'is not valid',
  Duplicate: 'is a duplicate',
};

/** One of an answer's `errors` in words: its own message, else its field and code. */
export function fieldErrorWords(e) {
  if (typeof e.message === 'string' && e.message) return e.message;
  return `"${String(e.field ?? '')}" ${CODE_WORDS[e.code] ?? `was refused (${e.code})`}.`;
}

/** "Disable failed: … (Code)" */
export const failureText = (action, err) => `${action} failed: ${err.message}${err.code ? ` (${err.code})` : ''}`;

/**
 * Which input of the publish form shows an error about `field` (a manifest
 * field such as "files[0].sha1", or "#Code" for an error without one):
 * one of `own` (the manifest fields with inputs of their own), 'file',
 * 'compression', 'channel', 'manifestFile' or 'extra'; null for none. Manifest-wide
 * errors go to the manifest file when one was chosen (`fromFile`), else to
 * the "More fields" box.
 */
export function uploadInputFor(field, { own, fromFile }) {
  const manifest = fromFile ? 'manifestFile' : 'extra';
  const direct = {
    '#ImageUuidAlreadyExists': 'uuid', '#OriginDoesNotExist': 'origin', '#Upload': 'file', '#Download': 'file',
    '#UnauthorizedError': null, manifest, compression: 'compression', file: 'file', channel: 'channel',
  };
  if (Object.hasOwn(direct, field)) return direct[field];
  const top = field.split(/[.[]/)[0];
  if (own.includes(top)) return top;
  if (top === 'files') return 'file';
  if (top === 'v' || top === 'owner') return manifest;
  return field ? 'extra' : null;
}

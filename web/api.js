/*
 * The API client: requests to this server only, with the credentials the
 * publisher gave. Credentials are the API's own (HTTP Basic or a bearer
 * token), sent by the script as an Authorization header; they live in
 * memory, or in this tab's sessionStorage if the publisher asks, never in a
 * cookie. Requests carry X-Requested-With so that a wrong password brings
 * no browser login prompt.
 *
 * Nothing here touches the page or storage until called, so the unit tests
 * can import it in Node.
 */
import { ApiError, networkError, parseBody } from './errors.js';

const AUTH_KEY = 'smartos-image-server.auth';

/** Who is signed in: the Authorization header to send ('' for nobody) and the name to show. */
export const auth = { header: '', user: '' };

/** Takes back the credentials this tab kept, if any. */
export function restoreAuth() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(AUTH_KEY) || 'null');
    if (saved && typeof saved.header === 'string' && typeof saved.user === 'string') Object.assign(auth, saved);
  } catch {
    // no sessionStorage, or nothing usable in it
  }
}

/** Signs in with `header` for `user`, kept in this tab's sessionStorage if `keep`. */
export function signedIn(header, user, keep) {
  auth.header = header;
  auth.user = user;
  try {
    if (keep) sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
    else sessionStorage.removeItem(AUTH_KEY);
  } catch {
    // storage refused: memory only
  }
}

export function signedOut() {
  auth.header = '';
  auth.user = '';
  try {
    sessionStorage.removeItem(AUTH_KEY);
  } catch {
    // nothing stored
  }
}

/** HTTP Basic of UTF-8 `user:password`, as the server decodes it. */
export function basicHeader(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

export function requestHeaders(extra = {}) {
  const out = { Accept: 'application/json', 'X-Requested-With': 'XMLHttpRequest', ...extra };
  if (auth.header) out.Authorization = auth.header;
  return out;
}

/** An API path relative to the page, so the catalog works behind a proxy that serves it under a path. */
export const apiUrl = (path) => new URL(path, document.baseURI).href;

/** This server's public URL, as imgadm should be given it: what the page says, else its origin. */
export function baseUrl() {
  const value = document.querySelector('meta[name="image-server-base"]')?.getAttribute('content') ?? '';
  return (value && !value.includes('{{') ? value : location.origin).replace(/\/+$/, '');
}

/**
 * A read of images in every channel: channel=* and API version 2, so that
 * a server with channels shows each image's `channels`; a server without
 * channels ignores both.
 */
export const readAll = (path) => api('GET', `${path}${path.includes('?') ? '&' : '?'}channel=*`, undefined,
  requestHeaders({ 'Accept-Version': '~2' }));

/** One API call; resolves with the JSON answer, rejects with an ApiError. */
export async function api(method, path, body, headers = requestHeaders()) {
  let res;
  try {
    res = await fetch(apiUrl(path), {
      method,
      headers: body === undefined ? headers : { ...headers, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-cache',
    });
  } catch {
    throw networkError();
  }
  return parseBody(res.status, await res.text());
}

/**
 * Multipart CreateImage with upload progress: the manifest part first, then
 * the file; into `channel` when one is named (else the server's default).
 */
export function uploadImage(manifest, file, { activate, compression, channel, onProgress }) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    const query = new URLSearchParams();
    if (activate) query.set('activate', 'true');
    if (compression) query.set('compression', compression);
    if (channel) query.set('channel', channel);
    const qs = query.toString();
    xhr.open('POST', apiUrl(`images${qs ? `?${qs}` : ''}`));
    for (const [name, value] of Object.entries(requestHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
    xhr.addEventListener('load', () => {
      try {
        resolve(parseBody(xhr.status, xhr.responseText));
      } catch (err) {
        reject(err);
      }
    });
    xhr.addEventListener('error', () => reject(networkError('The connection was lost before the server answered.')));
    xhr.addEventListener('abort', () => reject(new ApiError(0, { code: 'Aborted', message: 'The upload was cancelled.' })));
    const form = new FormData();
    form.append('manifest', JSON.stringify(manifest));
    form.append('file', file, file.name || 'image');
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}

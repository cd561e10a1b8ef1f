/*
 * One upstream image source, as a mirror talks to it: where its listing,
 * manifests and files are (IMGAPI under a base path, keeping ?channel=;
 * DSAPI at …/datasets, files at the path of files[0].url on the upstream's
 * own host, protocol.md §1.2 and §2.4), and a small HTTP client on
 * node:http(s): keep-alive, no compression asked for, no redirects
 * followed, an idle timeout, TLS verification always on (a CA file adds to
 * the system's roots, it never replaces them), Basic credentials taken from
 * the URL's userinfo and never shown again.
 *
 * Every failure is an UpstreamError that says whether trying again may help
 * (`retryable`) and whether it speaks against the upstream's health
 * (`unhealthy`, what the circuit breaker counts): a 404 is neither, a reset
 * connection or a 503 is both.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { VERSION } from '../version.js';

export type UpstreamType = 'imgapi' | 'dsapi';

export class UpstreamError extends Error {
  readonly retryable: boolean;
  readonly unhealthy: boolean;
  readonly status: number | undefined;

  constructor(message: string, opts: { retryable: boolean; unhealthy?: boolean; status?: number; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UpstreamError';
    this.retryable = opts.retryable;
    this.unhealthy = opts.unhealthy ?? opts.retryable;
    this.status = opts.status;
  }
}

export interface UpstreamOptions {
  url: string;
  type: UpstreamType;
  /** PEM file of a private CA, trusted in addition to the system's roots. */
  caFile?: string;
  /** A request fails when no byte moves for this long. */
  idleTimeoutMs?: number;
}

export interface FileResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

const MAX_JSON_BYTES = 256 * 1024 * 1024;
const USER_AGENT = `smartos-image-server/${VERSION} (mirror; node/${process.versions.node})`;

/**
 * imgadm's normalisation (protocol.md §1.2): http:// when no scheme is
 * given, no trailing slash, no default port.
 */
export function normalizeUpstreamUrl(raw: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UpstreamError(`not a URL: ${raw}`, { retryable: false, unhealthy: false });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UpstreamError(`not an http or https URL: ${raw}`, { retryable: false, unhealthy: false });
  }
  url.pathname = url.pathname.replace(/\/+$/, '');
  url.hash = '';
  return url;
}

/** The URL as it may be shown and recorded: without credentials. */
export function displayUrl(url: URL): string {
  const shown = new URL(url.href);
  shown.username = '';
  shown.password = '';
  return shown.href.replace(/\/$/, '');
}

export class Upstream {
  readonly type: UpstreamType;
  /** The normalised URL without credentials, for logs and sidecars. */
  readonly url: string;
  private readonly base: URL;
  /** The base path without a trailing slash ("" at the root). */
  private readonly basePath: string;
  private readonly query: URLSearchParams;
  private readonly authorization: string | undefined;
  private readonly agent: http.Agent;
  private readonly idleTimeoutMs: number;

  constructor(opts: UpstreamOptions) {
    this.type = opts.type;
    const url = normalizeUpstreamUrl(opts.url);
    if (url.username || url.password) {
      const user = decodeURIComponent(url.username);
      const password = decodeURIComponent(url.password);
      this.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    }
    this.url = displayUrl(url);
    this.query = new URLSearchParams(url.search);
    this.base = new URL(url.href);
    this.base.username = '';
    this.base.password = '';
    this.base.search = '';
    let basePath = this.base.pathname.replace(/\/+$/, '');
    if (this.type === 'dsapi' && !/\/datasets$/.test(basePath)) basePath += '/datasets';
    this.basePath = basePath;
    this.base.pathname = basePath || '/';
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    if (this.base.protocol === 'https:') {
      const ca = opts.caFile ? [...tls.rootCertificates, readCa(opts.caFile)] : undefined;
      this.agent = new https.Agent({ keepAlive: true, maxSockets: 8, ...(ca ? { ca } : {}) });
    } else {
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    }
  }

  /** IMGAPI ListImages with these query parameters (the URL's own, e.g. channel, come along). */
  listUrl(params: Record<string, string> = {}): URL {
    if (this.type === 'dsapi') return new URL(this.base.href);
    return this.withQuery(this.at('/images'), params);
  }

  manifestUrl(uuid: string): URL {
    return this.type === 'dsapi' ? this.at(`/${uuid}`) : this.withQuery(this.at(`/images/${uuid}`));
  }

  /**
   * Where files[0] of an image is. DSAPI: the path (and query) of
   * files[0].url, on this upstream's host whatever host the url names; a
   * manifest without a url falls back to /datasets/:uuid/:path or …/file.
   */
  fileUrl(uuid: string, dsapiFile?: { url?: unknown; path?: unknown }): URL {
    if (this.type === 'imgapi') return this.withQuery(this.at(`/images/${uuid}/file`));
    if (typeof dsapiFile?.url === 'string' && dsapiFile.url !== '') {
      let target: URL;
      try {
        target = new URL(dsapiFile.url, this.base);
      } catch {
        target = this.at(`/${uuid}/file`);
      }
      const url = new URL(this.base.href);
      url.pathname = target.pathname;
      url.search = target.search;
      return url;
    }
    const name = typeof dsapiFile?.path === 'string' && dsapiFile.path !== '' ? dsapiFile.path : 'file';
    return this.at(`/${uuid}/${encodeURIComponent(name)}`);
  }

  /** GETs a JSON document. */
  async getJson(url: URL, signal?: AbortSignal): Promise<unknown> {
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
    if (this.type === 'imgapi') headers['accept-version'] = '~2';
    const res = await this.request(url, headers, signal);
    if (res.statusCode! < 200 || res.statusCode! > 299) throw await statusError(url, res);
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res) {
        size += (chunk as Buffer).length;
        if (size > MAX_JSON_BYTES) {
          res.destroy();
          throw new UpstreamError(`${this.show(url)}: answer larger than ${MAX_JSON_BYTES} bytes`, { retryable: false });
        }
        chunks.push(chunk as Buffer);
      }
    } catch (err) {
      throw asUpstreamError(err, `${this.show(url)}: connection lost while reading the answer`);
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw new UpstreamError(`${this.show(url)}: the answer is not JSON`, { retryable: true });
    }
  }

  /**
   * GETs a file, from byte `start` on when start > 0 (a Range request).
   * Resolves on the response headers with status 200 or 206 (and 416,
   * which the caller judges); the caller reads or destroys the body.
   */
  async getFile(url: URL, start: number, signal?: AbortSignal): Promise<FileResponse> {
    const headers: http.OutgoingHttpHeaders = {};
    if (start > 0) headers.range = `bytes=${start}-`;
    const res = await this.request(url, headers, signal);
    const status = res.statusCode!;
    if (status !== 200 && status !== 206 && status !== 416) throw await statusError(url, res);
    const encoding = res.headers['content-encoding'];
    if (encoding && encoding !== 'identity') {
      res.destroy();
      throw new UpstreamError(`${this.show(url)}: the file came with Content-Encoding ${encoding}`, { retryable: false });
    }
    return { status, headers: res.headers, body: res };
  }

  /** Closes idle keep-alive connections, so a command can exit. */
  close(): void {
    this.agent.destroy();
  }

  show(url: URL): string {
    return displayUrl(url);
  }

  private at(suffix: string): URL {
    const url = new URL(this.base.href);
    url.pathname = `${this.basePath}${suffix}`;
    return url;
  }

  private withQuery(url: URL, params: Record<string, string> = {}): URL {
    const query = new URLSearchParams(this.query);
    for (const [key, value] of Object.entries(params)) query.set(key, value);
    url.search = query.toString();
    return url;
  }

  private request(url: URL, extra: http.OutgoingHttpHeaders, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const headers: http.OutgoingHttpHeaders = { 'user-agent': USER_AGENT, ...extra };
    if (this.authorization) headers.authorization = this.authorization;
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { method: 'GET', agent: this.agent, headers, ...(signal ? { signal } : {}) }, (res) => {
        // Idle timeout while the body streams: the socket's timer stays armed.
        resolve(res);
      });
      req.setTimeout(this.idleTimeoutMs, () => {
        req.destroy(new UpstreamError(`${this.show(url)}: no data for ${this.idleTimeoutMs} ms`, { retryable: true }));
      });
      req.on('error', (err) => reject(asUpstreamError(err, `${this.show(url)}`)));
      req.end();
    });
  }
}

function readCa(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UpstreamError(`cannot read the CA file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      { retryable: false, unhealthy: false });
  }
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS|HOSTNAME|ALTNAME/;

/** A network-level failure: retried, unless it is the certificate (retrying will not fix that). */
export function asUpstreamError(err: unknown, what: string): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.name === 'AbortError') return new UpstreamError(`${what}: aborted`, { retryable: false, unhealthy: false, cause: err });
  const code = e?.code ?? '';
  if (TLS_CODES.test(code)) {
    return new UpstreamError(`${what}: TLS certificate not trusted (${code}: ${e.message})`, { retryable: false, unhealthy: true, cause: err });
  }
  const message = e?.message ?? String(err);
  const detail = code && !message.includes(code) ? `${code} ${message}` : message;
  return new UpstreamError(`${what}: ${detail}`, { retryable: true, cause: err });
}

/** The error for an answer that is not a success; the body is read for its message. */
async function statusError(url: URL, res: http.IncomingMessage): Promise<UpstreamError> {
  const status = res.statusCode!;
  let text = '';
  try {
    for await (const chunk of res) {
      if (text.length < 2000) text += (chunk as Buffer).toString('utf8');
    }
  } catch {
    // the status says enough
  }
  let detail = text.trim().slice(0, 300);
  try {
    const body = JSON.parse(text) as { message?: unknown; error?: { message?: unknown } };
    const message = body.message ?? body.error?.message;
    if (typeof message === 'string') detail = message;
  } catch {
    // not JSON
  }
  const shown = displayUrl(url);
  const message = `${shown}: HTTP ${status}${detail ? ` (${detail})` : ''}`;
  if (status >= 300 && status < 400) {
    return new UpstreamError(`${message}; redirects are not followed (to ${String(res.headers.location ?? '?')})`,
      { retryable: false, unhealthy: false, status });
  }
  const transient = status >= 500 || status === 408 || status === 429;
  return new UpstreamError(message, { retryable: transient, unhealthy: transient, status });
}

/*
 * One upstream image source, as a mirror talks to it: where its listing,
 * manifests and files are (IMGAPI under a base path, keeping ?channel=;
 * DSAPI at …/datasets, files at the path of files[0].url on the upstream's
 * own host, docs/protocol.md §1.2 and §2.4), and how its JSON is read.
 * Requests go through the shared HTTP client (fetch/client.ts), with Basic
 * credentials taken from the URL's userinfo and never shown again; every
 * failure is an UpstreamError (fetch/errors.ts).
 */
import type http from 'node:http';
import { HttpClient, type FileResponse } from '../fetch/client.js';
import { asUpstreamError, statusError, UpstreamError } from '../fetch/errors.js';
import { displayUrl } from '../fetch/url.js';
import { VERSION } from '../version.js';
import { JsonArraySplitter, NotAnArray, TrailingGarbage, type ArrayEntry } from './jsonarray.js';

export type UpstreamType = 'imgapi' | 'dsapi';

export interface UpstreamOptions {
  url: string;
  type: UpstreamType;
  /** PEM file of a private CA, trusted in addition to the system's roots. */
  caFile?: string;
  /** A request fails when no byte moves for this long. */
  idleTimeoutMs?: number;
}

/** The bytes a listing may still take, of `total`. */
export interface ByteBudget {
  total: number;
  left: number;
}

/** A single manifest's most (a listing is read element by element instead). */
const MAX_JSON_BYTES = 1024 * 1024;
const USER_AGENT = `smartos-image-server/${VERSION} (mirror; node/${process.versions.node})`;

/**
 * imgadm's normalisation (docs/protocol.md §1.2): http:// when no scheme is
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

export class Upstream {
  readonly type: UpstreamType;
  /** The normalised URL without credentials, for logs and sidecars. */
  readonly url: string;
  private readonly base: URL;
  /** The base path without a trailing slash ("" at the root). */
  private readonly basePath: string;
  private readonly query: URLSearchParams;
  /** Where every request of this upstream goes through. */
  readonly client: HttpClient;

  constructor(opts: UpstreamOptions) {
    this.type = opts.type;
    const url = normalizeUpstreamUrl(opts.url);
    let authorization: string | undefined;
    if (url.username || url.password) {
      const user = decodeURIComponent(url.username);
      const password = decodeURIComponent(url.password);
      authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
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
    this.client = new HttpClient({
      userAgent: USER_AGENT,
      ...(authorization ? { authorization } : {}),
      // A CA file only matters to https; an http upstream does not read it.
      ...(opts.caFile && this.base.protocol === 'https:' ? { caFile: opts.caFile } : {}),
      stallMs: opts.idleTimeoutMs ?? 60_000,
    });
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
   * GETs a JSON array and hands its elements to `consume` as they arrive,
   * those that end in one chunk together, each at most `maxEntryBytes` (a
   * bigger one comes as its size only).
   * Every byte counts against `budget`, shared by the answers of one
   * listing: an endless or huge listing fails when it runs out.
   */
  async getJsonArray<T>(url: URL, consume: (entries: AsyncIterable<ArrayEntry[]>) => Promise<T>,
    limits: { maxEntryBytes: number; budget: ByteBudget }, signal?: AbortSignal): Promise<T> {
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
    if (this.type === 'imgapi') headers['accept-version'] = '~2';
    const res = await this.request(url, headers, signal);
    if (res.statusCode! < 200 || res.statusCode! > 299) throw await statusError(url, res);
    const shown = this.show(url);
    async function* entries(): AsyncGenerator<ArrayEntry[]> {
      const splitter = new JsonArraySplitter(limits.maxEntryBytes);
      try {
        for await (const chunk of res) {
          limits.budget.left -= (chunk as Buffer).length;
          if (limits.budget.left < 0) {
            throw new UpstreamError(`${shown}: the listing is larger than ${limits.budget.total} bytes`, { retryable: false });
          }
          yield [...splitter.feed(chunk as Buffer)];
        }
      } catch (err) {
        if (err instanceof NotAnArray) throw new UpstreamError(`${shown}: the listing is not a JSON array`, { retryable: false });
        if (err instanceof TrailingGarbage) throw new UpstreamError(`${shown}: the answer is not JSON`, { retryable: true });
        throw asUpstreamError(err, `${shown}: connection lost while reading the answer`);
      }
      if (!splitter.done) throw new UpstreamError(`${shown}: the answer ended inside the array`, { retryable: true });
    }
    try {
      return await consume(entries());
    } finally {
      res.destroy();
    }
  }

  /** GETs a file, from byte `start` on (fetch/client.ts). */
  getFile(url: URL, start: number, signal?: AbortSignal): Promise<FileResponse> {
    return this.client.getFile(url, start, signal);
  }

  /** Closes idle keep-alive connections, so a command can exit. */
  close(): void {
    this.client.close();
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
    return this.client.get(url, extra, signal);
  }
}

/*
 * The HTTP client every fetch from another server goes through (a mirror's
 * upstream, a cluster peer), on node:http(s): keep-alive, no compression
 * asked for, no redirects followed, a stall timeout (no byte for that long
 * and the request fails), TLS verification always on (a CA file adds to
 * the system's roots, it never replaces them), and Basic credentials that
 * are sent but never shown.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { asUpstreamError, statusError, UpstreamError } from './errors.js';
import { displayUrl } from './url.js';

export interface ClientOptions {
  userAgent: string;
  /** The Authorization header to send, if the other side wants one. */
  authorization?: string;
  /** PEM file of a private CA, trusted in addition to the system's roots. */
  caFile?: string;
  /** A request fails when no byte moves for this long. */
  stallMs?: number;
  /** Connections at once to one host. */
  maxSockets?: number;
}

export interface FileResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

export class HttpClient {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  readonly stallMs: number;

  constructor(private readonly opts: ClientOptions) {
    this.stallMs = opts.stallMs ?? 60_000;
    const maxSockets = opts.maxSockets ?? 8;
    // The CA is read now, so that a bad path fails when the command starts, not at the first download.
    const ca = opts.caFile ? [...tls.rootCertificates, readCa(opts.caFile)] : undefined;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets, ...(ca ? { ca } : {}) });
  }

  /** GETs `url`; resolves on the response headers, whatever the status. The caller reads or destroys the body. */
  get(url: URL, extra: http.OutgoingHttpHeaders = {}, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const headers: http.OutgoingHttpHeaders = { 'user-agent': this.opts.userAgent, ...extra };
    if (this.opts.authorization) headers.authorization = this.opts.authorization;
    const https_ = url.protocol === 'https:';
    const mod = https_ ? https : http;
    const agent = https_ ? this.httpsAgent : this.httpAgent;
    return new Promise((resolve, reject) => {
      // The stall timer stays armed on the socket while the body streams.
      const req = mod.request(url, { method: 'GET', agent, headers, ...(signal ? { signal } : {}) }, resolve);
      req.setTimeout(this.stallMs, () => {
        req.destroy(new UpstreamError(`${displayUrl(url)}: no data for ${this.stallMs} ms`, { retryable: true }));
      });
      req.on('error', (err) => reject(asUpstreamError(err, displayUrl(url))));
      req.end();
    });
  }

  /**
   * GETs a file, from byte `start` on when start > 0 (a Range request).
   * Resolves on the response headers with status 200 or 206 (and 416,
   * which the caller judges); the caller reads or destroys the body.
   */
  async getFile(url: URL, start: number, signal?: AbortSignal): Promise<FileResponse> {
    const res = await this.get(url, start > 0 ? { range: `bytes=${start}-` } : {}, signal);
    const status = res.statusCode!;
    if (status !== 200 && status !== 206 && status !== 416) throw await statusError(url, res);
    const encoding = res.headers['content-encoding'];
    if (encoding && encoding !== 'identity') {
      res.destroy();
      throw new UpstreamError(`${displayUrl(url)}: the file came with Content-Encoding ${encoding}`, { retryable: false });
    }
    return { status, headers: res.headers, body: res };
  }

  /** Closes idle keep-alive connections, so a command can exit. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
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

/*
 * How a fetch from another server fails (an upstream of a mirror, a peer of
 * the cluster). Every failure is an UpstreamError that says whether trying
 * again may help (`retryable`) and whether it speaks against the other
 * server's health (`unhealthy`, what a circuit breaker counts): a 404 is
 * neither, a reset connection or a 503 is both. BadBytes is a file whose
 * bytes are proven not to be the ones its manifest names: trying the same
 * source again is pointless, another source may do.
 */
import type http from 'node:http';
import { displayUrl } from './url.js';

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

/**
 * The file that arrived is not the one the manifest names (sha1, md5 or
 * size); it was discarded. `keptFrom` bytes of it came from an earlier
 * attempt, perhaps from another source.
 */
export class BadBytes extends UpstreamError {
  constructor(message: string, readonly keptFrom: number) {
    super(message, { retryable: true });
    this.name = 'BadBytes';
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
export async function statusError(url: URL, res: http.IncomingMessage): Promise<UpstreamError> {
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

/*
 * Listening and shutting down. TCP or a unix socket (a stale socket file is
 * replaced, a live one is left alone); no request timeout, because an image
 * upload or download may take hours on a slow link: a request must keep
 * making progress instead (idle_timeout_ms without a byte either way ends
 * it), and its headers must arrive within headers_timeout_ms. Idle
 * keep-alive connections live past the several seconds imgadm spends
 * between its manifest and file requests.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import type Koa from 'koa';
import type { Duplex } from 'node:stream';
import type { Config } from '../config/config.js';
import { errors, type ApiError } from '../errors.js';
import { jsonBody } from './json.js';

export interface Listening {
  server: http.Server;
  /** http://host:port for TCP, or the socket path. */
  where: string;
  /** Stops accepting, lets requests in flight finish for up to drainMs, then cuts the rest. */
  close(drainMs: number): Promise<void>;
}

export async function listen(app: Koa, config: Readonly<Config>): Promise<Listening> {
  const server = http.createServer(
    {
      requestTimeout: 0,
      keepAliveTimeout: config.keep_alive_timeout_ms,
      headersTimeout: config.headers_timeout_ms,
      // Node checks for late headers on this interval (30 s by default), which would stretch a short timeout.
      connectionsCheckingInterval: Math.min(30_000, Math.ceil(config.headers_timeout_ms / 4)),
      // The routes that need a Host (absolute URLs) answer its absence themselves, in JSON.
      requireHostHeader: false,
    },
    app.callback(),
  );
  server.on('clientError', answerUnparsable);
  // With no 'timeout' listener, Node destroys a socket idle this long; the request's streams then fail and clean up.
  server.setTimeout(config.idle_timeout_ms);
  let where: string;
  if (typeof config.listen_port === 'string') {
    const socketPath = config.listen_port;
    await removeStaleSocket(socketPath);
    await bind(server, { path: socketPath });
    await fs.chmod(socketPath, parseInt(config.socket_mode, 8));
    where = socketPath;
  } else {
    await bind(server, { port: config.listen_port, host: config.listen_address });
    const addr = server.address() as net.AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    where = `http://${host}:${addr.port}`;
  }
  return { server, where, close: (drainMs) => drain(server, drainMs) };
}

/**
 * Requests Node's parser rejects never reach Koa; answer them in the same
 * JSON error shape as everything else, then close the connection.
 */
function answerUnparsable(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  // With a request in flight, the parser failed inside its body: the client
  // ended it before its Content-Length (§3.9 calls that a Download error).
  const midBody = Boolean((socket as Duplex & { _httpMessage?: unknown })._httpMessage);
  let error: ApiError;
  if (err.code === 'HPE_HEADER_OVERFLOW') error = errors.RequestHeaderFieldsTooLarge('the request headers are too large');
  else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') error = errors.RequestTimeout('the request headers took too long to arrive');
  else if (midBody) error = errors.Download('the request body ended before its Content-Length');
  else error = errors.BadRequestError('the request could not be parsed as HTTP');
  const body = jsonBody(error.body());
  socket.end([
    `HTTP/1.1 ${error.statusCode} ${http.STATUS_CODES[error.statusCode]}`,
    'Content-Type: application/json',
    `Content-Length: ${body.buffer.length}`,
    `Content-MD5: ${body.md5}`,
    'Connection: close',
    '',
    body.buffer.toString('utf8'),
  ].join('\r\n'));
}

function bind(server: http.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  const st = await fs.lstat(socketPath).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket()) throw new Error(`${socketPath} exists and is not a socket; refusing to replace it`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new Error(`another server is listening on ${socketPath}`);
  await fs.unlink(socketPath);
}

function drain(server: http.Server, drainMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), drainMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

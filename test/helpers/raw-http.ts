/*
 * Raw HTTP/1.1 over a socket, for the requests a client library would
 * tidy up: absolute-form targets, odd headers, huge paths.
 */
import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Sends `request` verbatim (ending it with Connection: close) and parses the reply. */
export function rawRequest(target: { port: number; host?: string } | { path: string }, request: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = 'path' in target ? net.connect(target.path) : net.connect(target.port, target.host ?? '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (err) {
        reject(err);
      }
    });
    socket.write(request);
  });
}

function parseResponse(buf: Buffer): RawResponse {
  const split = buf.indexOf('\r\n\r\n');
  if (split === -1) throw new Error(`no HTTP response: ${buf.toString('latin1').slice(0, 200)}`);
  const [statusLine, ...lines] = buf.subarray(0, split).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = buf.subarray(split + 4);
  if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  return { status: Number(statusLine!.split(' ')[1]), headers, body };
}

function dechunk(buf: Buffer): Buffer {
  const parts: Buffer[] = [];
  let i = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', i);
    const size = parseInt(buf.subarray(i, eol).toString('latin1'), 16);
    if (!size) return Buffer.concat(parts);
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
}

export function portOf(url: string): number {
  return Number(new URL(url).port);
}

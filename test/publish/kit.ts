/*
 * What the publishing tests share: writers' credentials in the config
 * format the server reads, a node:http client that sends request bodies
 * (Buffers, streams) exactly as given, imgadm's publish requests over a raw
 * socket, hand-built multipart bodies, and snapshots of serve_dir to prove
 * that a refused request stored nothing.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { hashPassword, hashToken, newToken } from '../../src/credentials.js';
import { isSnapshotWrite } from '../helpers/conformance.js';
import { sha1 } from '../helpers/images.js';
import { startServer, type TestServer } from '../helpers/server.js';

export const USER = 'alice';
export const PASSWORD = 'correct horse battery staple';
export const TOKEN_NAME = 'ci';
export const TOKEN = newToken();

/** ln=10 keeps the tests fast; the format is the one `image-server passwd` prints. */
const passwordHash = hashPassword(PASSWORD, 10);

export const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
export const BEARER = `Bearer ${TOKEN}`;

/** `users` and `tokens` for a config: alice with PASSWORD, and the token TOKEN named "ci". */
export async function writers(): Promise<{ users: Record<string, { password: string }>; tokens: Record<string, string> }> {
  return { users: { [USER]: { password: await passwordHash } }, tokens: { [TOKEN_NAME]: hashToken(TOKEN) } };
}

/** A server on port 0 with its own serve_dir, alice and the token allowed to write. */
export async function writableServer(
  t: ExecutionContext,
  opts: { serveDir?: string; config?: Record<string, unknown> } = {},
): Promise<TestServer & { port: number }> {
  const server = await startServer(t, { ...opts, config: { ...(await writers()), ...opts.config } });
  // The MD5 worker records what it computes in server.json: let it finish
  // before a test snapshots serve_dir.
  await server.store.digestsIdle();
  return { ...server, port: Number(new URL(server.url).port) };
}

export interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export const parse = <T = any>(res: Res): T => JSON.parse(res.body.toString('utf8')) as T;

export interface CallOptions {
  headers?: Record<string, string | number>;
  /** Buffer or string: sent as is, with its Content-Length unless headers give one. */
  body?: Buffer | string;
  /** Authorization header; BASIC unless null (anonymous) or another value. */
  auth?: string | null;
  agent?: http.Agent | false;
}

/** One request with node:http; nothing added but Host and what `opts` says. */
export function call(base: string, method: string, target: string, opts: CallOptions = {}): Promise<Res> {
  const headers: Record<string, string | number> = { ...opts.headers };
  const auth = opts.auth === undefined ? BASIC : opts.auth;
  if (auth !== null) headers.authorization = auth;
  if (opts.body !== undefined && !Object.keys(headers).some((h) => /^(content-length|transfer-encoding)$/i.test(h))) {
    headers['content-length'] = Buffer.byteLength(opts.body);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(target, base), { method, headers, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export const jsonBody = (value: unknown) => ({
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(value),
});

/** A manifest as `imgadm create` makes it: no owner, state, public or published_at. */
export function minimalManifest(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    v: 2,
    uuid: randomUUID(),
    name: 'pubtest',
    version: '1.0.0',
    type: 'zone-dataset',
    os: 'smartos',
    description: 'published by a test',
    ...fields,
  };
}

/** AdminImportImage, then AddImageFile, then ActivateImage; returns the active image. */
export async function publish(
  base: string,
  manifest: Record<string, unknown>,
  bytes: Buffer,
  compression = 'gzip',
  auth: string = BASIC,
): Promise<Record<string, any>> {
  const uuid = String(manifest.uuid);
  const imported = await call(base, 'POST', `/images/${uuid}?action=import`, { ...jsonBody(manifest), auth });
  if (imported.status !== 200) throw new Error(`import: ${imported.status} ${imported.body}`);
  const put = await call(base, 'PUT', `/images/${uuid}/file?compression=${compression}&sha1=${sha1(bytes)}`, { body: bytes, auth });
  if (put.status !== 200) throw new Error(`file: ${put.status} ${put.body}`);
  const activated = await call(base, 'POST', `/images/${uuid}?action=activate`, { auth });
  if (activated.status !== 200) throw new Error(`activate: ${activated.status} ${activated.body}`);
  return parse(activated);
}

/* --- raw sockets ------------------------------------------------------ */

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export function parseRaw(buf: Buffer): RawResponse {
  const split = buf.indexOf('\r\n\r\n');
  if (split === -1) throw new Error(`no HTTP response: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`);
  const [statusLine, ...lines] = buf.subarray(0, split).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(statusLine!.split(' ')[1]), headers, body: buf.subarray(split + 4) };
}

/**
 * Writes `head` (lines without the final blank line) and `body` on a fresh
 * socket and reads until the server closes. `halfClose` ends our side after
 * writing, as a client does that has nothing more to send.
 */
export function rawExchange(port: number, head: string[], body: Buffer = Buffer.alloc(0), opts: { halfClose?: boolean } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      try {
        resolve(parseRaw(Buffer.concat(chunks)));
      } catch (err) {
        reject(err);
      }
    });
    socket.write(Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'), body]));
    if (opts.halfClose) socket.end();
  });
}

/* --- imgadm publish on the wire (docs/protocol.md §1.3, §1.6, §1.7) ----------- */

export const IMGADM_UA = 'imgadm/3.9.5 (node/v6.17.1; OpenSSL/1.1.1t)';
const md5 = (b: Buffer) => createHash('md5').update(b).digest('base64');

/** Headers every publish request carries: the publish client's, with the URL's userinfo as Basic. */
function imgadmHead(method: string, target: string, port: number, auth: string | null, runId: string): string[] {
  const head = [
    `${method} ${target} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    `x-request-id: ${runId}`,
    'accept: application/json',
    `user-agent: ${IMGADM_UA}`,
    'accept-version: *',
    `date: ${new Date().toUTCString()}`,
  ];
  if (auth) head.push(`authorization: ${auth}`);
  return head;
}

/** imgadm's four publish calls, byte for byte as the wire capture shows them. */
export function imgadmWire(port: number, auth: string | null = BASIC, runId = randomUUID()) {
  const jsonCall = (method: string, target: string, body: Buffer) => rawExchange(port, [
    ...imgadmHead(method, target, port, auth, runId),
    'content-type: application/json',
    `content-length: ${body.length}`,
    `content-md5: ${md5(body)}`,
    'Connection: close',
  ], body);
  return {
    importImage: (manifest: Record<string, unknown>) =>
      jsonCall('POST', `/images/${String(manifest.uuid)}?action=import`, Buffer.from(JSON.stringify(manifest))),
    addFile: (uuid: string, bytes: Buffer, compression: string, fileSha1: string) => rawExchange(port, [
      ...imgadmHead('PUT', `/images/${uuid}/file?compression=${compression}&sha1=${fileSha1}`, port, auth, runId),
      // sic: the vendored client's default header wins over application/octet-stream
      'content-type: application/json',
      `Content-Length: ${bytes.length}`,
      'Connection: close',
    ], bytes),
    // restify's JSON client serialises a missing body as {}
    activate: (uuid: string) => jsonCall('POST', `/images/${uuid}?action=activate`, Buffer.from('{}')),
    remove: (uuid: string) => rawExchange(port, [
      ...imgadmHead('DELETE', `/images/${uuid}`, port, auth, runId),
      'content-length: 0',
      'Connection: close',
    ]),
  };
}

/* --- multipart ----------------------------------------------------------- */

export interface Part {
  name: string;
  /** A file part when set. */
  filename?: string;
  contentType?: string;
  data: Buffer | string;
}

/** A multipart/form-data body as `curl -F name=@file` builds it. */
export function multipart(parts: Part[]): { boundary: string; body: Buffer; contentType: string } {
  const boundary = `------------------------${randomBytes(12).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${part.filename ? `; filename="${part.filename}"` : ''}`;
    const lines = [`--${boundary}`, `Content-Disposition: ${disposition}`];
    if (part.contentType) lines.push(`Content-Type: ${part.contentType}`);
    chunks.push(Buffer.from(`${lines.join('\r\n')}\r\n\r\n`), Buffer.from(part.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { boundary, body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** The usual two parts: the manifest as JSON, then the file. */
export function manifestAndFile(manifest: Record<string, unknown>, bytes: Buffer) {
  return multipart([
    { name: 'manifest', filename: 'manifest.json', contentType: 'application/json', data: JSON.stringify(manifest) },
    { name: 'file', filename: 'image.zfs', contentType: 'application/octet-stream', data: bytes },
  ]);
}

/** The head of an upload sent byte by byte (to be cut short): request line, the writer's token, type and length. */
export function uploadHead(requestLine: string, contentType: string, length: number): Buffer {
  return Buffer.from(`${[
    `${requestLine} HTTP/1.1`,
    'Host: 127.0.0.1',
    `Authorization: ${BEARER}`,
    `Content-Type: ${contentType}`,
    `Content-Length: ${length}`,
    'Connection: close',
  ].join('\r\n')}\r\n\r\n`);
}

/* --- serve_dir ------------------------------------------------------------ */

/** What the server keeps for its own use: not "stored" data (folders only while empty). */
const INFRA = new Set(['.staging', '.locks', '.trash', '.deleted', '.index-cache.json']);

/**
 * Every file under serve_dir with its size and sha1, and every non-empty
 * folder, sorted: two equal snapshots mean nothing was stored or changed.
 */
export function snapshot(serveDir: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = path.join(dir, entry.name);
      const name = rel ? `${rel}/${entry.name}` : entry.name;
      if (rel === '.staging' && isSnapshotWrite(entry.name)) continue;
      if (entry.isDirectory()) {
        const before = out.length;
        walk(abs, name);
        if (out.length === before && !(rel === '' && INFRA.has(entry.name))) out.push(`${name}/`);
      } else if (!(rel === '' && INFRA.has(entry.name))) {
        const bytes = fs.readFileSync(abs);
        out.push(`${name} ${bytes.length} ${sha1(bytes)}`);
      }
    }
  };
  walk(serveDir, '');
  return out.sort();
}

/** The files of an image folder other than its manifest and sidecar. */
export function dataFiles(serveDir: string, uuid: string): string[] {
  try {
    return fs.readdirSync(path.join(serveDir, uuid)).filter((n) => n !== 'manifest.json' && n !== 'server.json').sort();
  } catch {
    return [];
  }
}

export function readJson(file: string): Record<string, any> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, any>;
}

/*
 * What the mirror tests share: upstream stand-ins (small node:http servers
 * written here, speaking IMGAPI or DSAPI the way real upstreams do, with
 * hooks to misbehave), a way to publish into a real upstream instance of
 * this server, a captured logger, and checks that serve_dir never holds a
 * partial or corrupt image.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { ExecutionContext } from 'ava';
import { createLogger, type Logger } from '../../src/log.js';
import { Mirror, type EngineOptions, type MirrorSpec } from '../../src/mirror/engine.js';
import { publishable } from '../../src/manifest/publish.js';
import type { Compression } from '../../src/manifest/types.js';
import { ImageStore } from '../../src/store/store.js';
import type { ImageWriter } from '../../src/store/writer.js';
import { REPO_ROOT, sha1, tmpDir, v2Manifest } from '../helpers/images.js';
import { assertConforms } from '../helpers/conformance.js';
import type { TestServer } from '../helpers/server.js';

export const FAST_RETRY = { attempts: 3, baseMs: 5, maxMs: 20 };

export interface Recorded {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface StandIn {
  url: string;
  requests: Recorded[];
  port: number;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

/** A node:http(s) server on a free loopback port, every request recorded, closed in teardown. */
export async function standIn(t: ExecutionContext, handler: Handler, tls?: { key: string; cert: string }): Promise<StandIn> {
  const requests: Recorded[] = [];
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    Promise.resolve(handler(req, res)).catch((err: unknown) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  };
  const server = tls ? https.createServer(tls, onRequest) : http.createServer(onRequest);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const port = (server.address() as AddressInfo).port;
  return { url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, requests, port };
}

export function sendJson(res: http.ServerResponse, body: unknown, status = 200): void {
  const text = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': text.length });
  res.end(text);
}

/** Sends `bytes`, honouring a single "bytes=N-" range unless told to ignore ranges. */
export function sendBytes(req: http.IncomingMessage, res: http.ServerResponse, bytes: Buffer, opts: { ranges?: boolean } = {}): void {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (m && opts.ranges !== false) {
    const start = Number(m[1]);
    if (start >= bytes.length) {
      res.writeHead(416, { 'content-range': `bytes */${bytes.length}` });
      res.end();
      return;
    }
    res.writeHead(206, {
      'content-type': 'application/octet-stream',
      'content-length': bytes.length - start,
      'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}`,
      'accept-ranges': 'bytes',
    });
    res.end(bytes.subarray(start));
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length, 'accept-ranges': 'bytes' });
  res.end(bytes);
}

/**
 * Sends the headers of the whole file (or, from `start` on, of a 206 range)
 * and `cut` bytes of it, then drops the connection.
 */
export function sendCut(res: http.ServerResponse, bytes: Buffer, cut: number, start = 0): void {
  if (start > 0) {
    res.writeHead(206, {
      'content-type': 'application/octet-stream',
      'content-length': bytes.length - start,
      'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}`,
    });
  } else {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length });
  }
  res.write(bytes.subarray(start, start + cut), () => {
    // Flushed to the kernel: the client gets these bytes, then the connection ends early.
    setTimeout(() => res.socket?.destroy(), 20);
  });
}

const MAGIC: Record<Compression, Buffer> = {
  none: Buffer.alloc(0),
  gzip: Buffer.from([0x1f, 0x8b, 0x08, 0x00]),
  bzip2: Buffer.from('BZh9'),
  xz: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
};

/**
 * `size` random bytes that begin as a file of this compression does, so
 * the mirror's check of the bytes agrees with the label.
 */
export function bytesOf(compression: Compression, size: number): Buffer {
  const bytes = randomBytes(size);
  MAGIC[compression].copy(bytes);
  // Random bytes must not look compressed when they are meant not to be.
  if (compression === 'none') bytes[0] = 0;
  return bytes;
}

export interface StandImage {
  manifest: Record<string, unknown>;
  bytes: Buffer;
}

let nanoClock = Date.parse('2017-01-10T00:00:00.000Z');

/**
 * An IMGAPI manifest shaped like dsapid's encoder writes it: nanosecond
 * published_at, files[].md5 in hex (docs/protocol.md §6.1).
 */
export function dsapidImgapiImage(fields: Record<string, unknown> = {}, size = 64): StandImage {
  const bytes = bytesOf('gzip', size);
  nanoClock += 1000;
  const published = new Date(nanoClock).toISOString().replace(/\.(\d{3})Z$/, '.$1456789Z');
  return {
    bytes,
    manifest: {
      v: 2,
      uuid: randomUUID(),
      name: 'base-64',
      version: `16.4.${nanoClock % 100000}`,
      description: 'shape emitted by dsapid',
      os: 'smartos',
      type: 'zone-dataset',
      urn: 'smartos:smartos:base-64:16.4.1',
      state: 'active',
      disabled: false,
      public: true,
      published_at: published,
      owner: 'a979f956-12cb-4216-bf4c-ae73e6f14dde',
      requirements: { networks: [{ name: 'net0', description: 'public' }] },
      files: [{ md5: createHash('md5').update(bytes).digest('hex'), sha1: sha1(bytes), size, compression: 'gzip' }],
      ...fields,
    },
  };
}

export interface ImgapiStandInOptions {
  /** dsapid's /images: no limit, no marker, everything every time. */
  ignoreMarker?: boolean;
  /** Handles a file request itself when it returns true. */
  onFile?: (req: http.IncomingMessage, res: http.ServerResponse, image: StandImage) => boolean;
}

/**
 * IMGAPI as sdc-imgapi pages it: at most 1000 per answer, ordered by
 * (published_at, uuid), marker inclusive; GetImage in any state; the file
 * with ranges.
 */
export function imgapiHandler(images: StandImage[], opts: ImgapiStandInOptions = {}): Handler {
  const sorted = () => [...images].sort((a, b) => String(a.manifest.published_at).localeCompare(String(b.manifest.published_at))
    || String(a.manifest.uuid).localeCompare(String(b.manifest.uuid)));
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'images') return sendJson(res, { code: 'ResourceNotFound', message: 'no such route' }, 404);
    if (parts.length === 1) {
      let list = sorted().filter((i) => i.manifest.state === 'active');
      if (opts.ignoreMarker) return sendJson(res, list.map((i) => i.manifest));
      for (const key of ['name', 'os', 'type']) {
        const want = url.searchParams.get(key);
        if (want) list = list.filter((i) => i.manifest[key] === want);
      }
      const marker = url.searchParams.get('marker');
      if (marker) {
        const at = list.findIndex((i) => i.manifest.uuid === marker);
        list = at === -1 ? [] : list.slice(at);
      }
      const limit = Math.min(Number(url.searchParams.get('limit') ?? 1000), 1000);
      return sendJson(res, list.slice(0, limit).map((i) => i.manifest));
    }
    const image = images.find((i) => i.manifest.uuid === parts[1]);
    if (!image) return sendJson(res, { code: 'ResourceNotFound', message: `image ${parts[1]} not found` }, 404);
    if (parts.length === 2) return sendJson(res, image.manifest);
    if (parts[2] === 'file') {
      if (opts.onFile?.(req, res, image)) return undefined;
      return sendBytes(req, res, image.bytes);
    }
    return sendJson(res, { code: 'ResourceNotFound', message: 'no such route' }, 404);
  };
}

export function captureLog(level: 'debug' | 'info' | 'warn' = 'debug'): { log: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) records.push(JSON.parse(line));
      done();
    },
  });
  return { log: createLogger(level, sink), records };
}

export interface Target {
  store: ImageStore;
  writer: ImageWriter;
  serveDir: string;
}

/** A mirror into `target` with quick retries, closed in teardown. */
export function mirrorInto(t: ExecutionContext, target: Target, spec: MirrorSpec,
  tuning: Partial<Omit<EngineOptions, 'store' | 'writer' | 'log'>> = {}, log = captureLog().log): Mirror {
  const mirror = new Mirror(spec, { store: target.store, writer: target.writer, log, retry: FAST_RETRY, idleTimeoutMs: 5000, ...tuning });
  t.teardown(() => mirror.close());
  return mirror;
}

export interface Published {
  uuid: string;
  bytes: Buffer;
  sha1: string;
  manifest: Record<string, unknown>;
}

/** Publishes an image into a running upstream instance through its import transaction. */
export async function publish(server: TestServer, fields: Record<string, unknown> = {},
  opts: { size?: number; compression?: Compression } = {}): Promise<Published> {
  const compression = opts.compression ?? 'gzip';
  const bytes = bytesOf(compression, opts.size ?? 1024);
  const manifest = v2Manifest(bytes, { ...fields, files: [{ sha1: sha1(bytes), size: bytes.length, compression }] });
  if (manifest.state === 'unactivated') delete manifest.published_at;
  await server.writer.create(publishable(structuredClone(manifest)), { via: 'http', by: 'test' }, {
    file: { source: Readable.from([bytes]), compression, expect: { sha1: sha1(bytes), size: bytes.length, maxBytes: bytes.length } },
  });
  return { uuid: String(manifest.uuid), bytes, sha1: sha1(bytes), manifest };
}

/** Every path under `dir`, relative, sorted (folders end in /). */
export function treeOf(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        out.push(`${p}/`);
        walk(p);
      } else {
        out.push(p);
      }
    }
  };
  if (fs.existsSync(dir)) walk('');
  return out.sort();
}

/**
 * serve_dir holds only whole images: every image folder loads, its file
 * has the manifest's size and sha1, and no import is left staged.
 */
export async function assertOnlyWholeImages(t: ExecutionContext, serveDir: string): Promise<string[]> {
  const store = await ImageStore.open({ serveDir, log: captureLog('warn').log, watch: false });
  await store.close();
  const folders = fs.readdirSync(serveDir).filter((n) => /^[0-9a-f-]{36}$/.test(n));
  t.deepEqual([...store.brokenImages().keys()], [], 'no broken image folder');
  t.is(store.list().length, folders.length, 'every image folder loads');
  for (const record of store.list()) {
    const file = record.files[0];
    if (!file) continue;
    const bytes = fs.readFileSync(store.layout.filePath(record.uuid, file.name));
    t.is(sha1(bytes), record.manifest.files[0]!.sha1, `${record.uuid}: file matches its manifest`);
    t.is(bytes.length, record.manifest.files[0]!.size);
  }
  assertConforms(t, serveDir, 'after the mirror', { partials: true });
  return folders;
}

export function partials(serveDir: string): { name: string; size: number }[] {
  const dir = path.join(serveDir, '.mirror');
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).map((name) => ({ name, size: fs.statSync(path.join(dir, name)).size }));
}

export const IMAGE_SERVER = path.join(REPO_ROOT, 'scripts', 'image-server');

/** Runs the CLI without blocking this process (upstreams in this process keep answering). */
export function runCli(t: ExecutionContext, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(IMAGE_SERVER, args, { cwd: tmpDir(t), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.on('error', reject);
    proc.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

export function fileRequests(requests: Recorded[], uuid?: string): Recorded[] {
  return requests.filter((r) => /\/file(\?|$)|\/datasets\/[^/]+\/[^/?]+/.test(r.url) && (!uuid || r.url.includes(uuid)));
}

/*
 * Requests that try to crash, stall or exhaust the server (issue 11):
 * uploads cut short or abandoned, refused uploads whose client keeps
 * trickling, headers and bodies that stall. The server runs as a child
 * process, so a crash is a dead process and its file descriptors and
 * connections can be counted from outside.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { tmpDir, v1Manifest, v2Manifest, writeImage } from '../helpers/images.js';
import { waitFor } from '../helpers/server.js';
import { spawnServer, type Child } from '../cli/spawn.js';
import { assertApiError } from './kit.js';
import {
  BASIC, call, minimalManifest, multipart, parseRaw, publish, snapshot, writableServer, writers,
} from '../publish/kit.js';
import { assertConforms, stagingEntries } from '../helpers/conformance.js';

interface Hostile extends Child {
  port: number;
  serveDir: string;
}

async function server(t: ExecutionContext, config: Record<string, unknown> = {}): Promise<Hostile> {
  const serveDir = tmpDir(t);
  const child = await spawnServer(t, { serve_dir: serveDir, ...(await writers()), ...config });
  return { ...child, port: Number(new URL(child.where).port), serveDir };
}

const head = (port: number, method: string, target: string, headers: Record<string, string | number>) =>
  Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${
    Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`, 'latin1');

interface Conn {
  socket: net.Socket;
  /** Everything the server sent, once it closed the connection. */
  closed: Promise<Buffer>;
}

function connect(port: number): Conn {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  // The server may reset a connection it refused while we still write.
  socket.on('error', () => undefined);
  const closed = new Promise<Buffer>((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks))));
  return { socket, closed };
}

/** One request on a fresh connection; resolves with what came back when the server closed it. */
function exchange(port: number, bytes: Buffer): Promise<Buffer> {
  const conn = connect(port);
  conn.socket.write(bytes);
  return conn.closed;
}

async function ping(port: number): Promise<number> {
  return parseRaw(await exchange(port, head(port, 'GET', '/ping', { Connection: 'close' }))).status;
}

function alive(child: Child): boolean {
  return child.proc.exitCode === null && child.proc.signalCode === null;
}

const fdCount = (child: Child) => fs.readdirSync(`/proc/${child.proc.pid}/fd`).length;

/** A multipart CreateImage body whose parts are cut after `keep` bytes: no closing boundary. */
function cutForm(parts: Parameters<typeof multipart>[0], keep: number) {
  const form = multipart(parts);
  return { contentType: form.contentType, body: form.body.subarray(0, keep), whole: form.body };
}

test('a multipart upload that ends at its Content-Length without the closing boundary is a 400, never a crash', async (t) => {
  const srv = await server(t);
  t.is(await ping(srv.port), 200, 'the server has handled a request before');
  const manifest = () => JSON.stringify(minimalManifest());
  const file = randomBytes(300_000);
  // Cut inside the file part (sniffed, or compression given), inside the
  // manifest part, inside an ignored part, and right before the closing boundary.
  const shapes = [
    { query: '', parts: [{ name: 'manifest', data: manifest() }, { name: 'file', filename: 'f', data: file }], cut: 150_000 },
    { query: '', parts: [{ name: 'manifest', data: manifest() }, { name: 'file', filename: 'f', data: file }], cut: 400 },
    { query: '?compression=gzip', parts: [{ name: 'manifest', data: manifest() }, { name: 'file', filename: 'f', data: file }], cut: 250_000 },
    { query: '', parts: [{ name: 'manifest', filename: 'm.json', data: manifest() }, { name: 'file', filename: 'f', data: file }], cut: 100 },
    { query: '', parts: [{ name: 'other', filename: 'o', data: file }, { name: 'manifest', data: manifest() }], cut: 10_000 },
  ];
  for (let i = 0; i < 10; i++) {
    const shape = shapes[i % shapes.length]!;
    const form = cutForm(shape.parts, shape.cut > 1000 ? shape.cut : multipart(shape.parts).body.length - shape.cut);
    const reply = parseRaw(await exchange(srv.port, Buffer.concat([
      head(srv.port, 'POST', `/images${shape.query}`, {
        Authorization: BASIC, 'Content-Type': form.contentType, 'Content-Length': form.body.length, Connection: 'close',
      }),
      form.body,
    ])));
    t.true(alive(srv), `try ${i + 1}: the server is still running`);
    t.is(reply.status, 400, `try ${i + 1}: ${reply.body.toString()}`);
    t.is(JSON.parse(reply.body.toString()).code, 'Download');
    t.is(await ping(srv.port), 200);
  }
  await waitFor(() => stagingEntries(srv.serveDir).length === 0);
  t.deepEqual(fs.readdirSync(srv.serveDir).filter((n) => !n.startsWith('.')), [], 'nothing was published');
});

test('multipart uploads whose client hangs up leave no file descriptor and no staging folder behind', async (t) => {
  const srv = await server(t);
  t.is(await ping(srv.port), 200);
  const seen = new Set<string>();
  const abortOne = async () => {
    const form = multipart([{ name: 'manifest', data: JSON.stringify(minimalManifest()) }, { name: 'file', filename: 'f', data: randomBytes(100_000) }]);
    const conn = connect(srv.port);
    conn.socket.write(head(srv.port, 'POST', '/images', {
      Authorization: BASIC, 'Content-Type': form.contentType, 'Content-Length': form.body.length + 1_000_000,
    }));
    conn.socket.write(form.body);
    // The upload has begun its import (a staging folder of its own) when the client goes.
    await waitFor(() => stagingEntries(srv.serveDir).some((n) => !seen.has(n)));
    for (const n of stagingEntries(srv.serveDir)) seen.add(n);
    conn.socket.destroy();
    await conn.closed;
  };
  // The first import starts the threads that hash every import (digest-pool.ts); they stay.
  await abortOne();
  await waitFor(() => stagingEntries(srv.serveDir).length === 0, 10_000).catch(() => undefined);
  const before = fdCount(srv);
  for (let i = 0; i < 40; i++) await abortOne();
  await waitFor(() => stagingEntries(srv.serveDir).length === 0, 10_000).catch(() => undefined);
  assertConforms(t, srv.serveDir, 'every staging folder is removed');
  await waitFor(() => fdCount(srv) <= before, 10_000).catch(() => undefined);
  t.true(fdCount(srv) <= before, `${fdCount(srv)} file descriptors open, ${before} before the 40 uploads`);
  t.is(await ping(srv.port), 200);
});

/** Sends one byte every 100 ms until the connection closes. */
function trickle(conn: Conn): void {
  const timer = setInterval(() => conn.socket.write('x'), 100);
  void conn.closed.then(() => clearInterval(timer));
}

test('a refused upload closes its connection, however slowly the client goes on sending the body', async (t) => {
  const srv = await server(t);
  const conns: Conn[] = [];
  t.teardown(() => conns.forEach((c) => c.socket.destroy()));
  for (let i = 0; i < 60; i++) {
    const conn = connect(srv.port);
    conns.push(conn);
    const uuid = randomUUID();
    conn.socket.write(i % 2 === 0
      ? head(srv.port, 'PUT', `/images/${uuid}/file?compression=none`, { 'Content-Length': 10_000_000 })
      : head(srv.port, 'POST', '/images', { 'Content-Type': 'multipart/form-data; boundary=xyz', 'Content-Length': 10_000_000 }));
    trickle(conn);
  }
  const replies = await Promise.race([
    Promise.all(conns.map((c) => c.closed)),
    waitFor(() => false, 15_000).then(() => undefined, () => undefined),
  ]);
  const open = conns.filter((c) => !c.socket.destroyed).length;
  t.is(open, 0, `${open} of ${conns.length} refused connections are still open`);
  for (const reply of replies ?? []) {
    const res = parseRaw(reply);
    t.is(res.status, 401);
    t.is(res.headers.connection, 'close');
  }
  t.is(await ping(srv.port), 200);
});

test('headers that do not arrive within headers_timeout_ms: 408, connection closed', async (t) => {
  const srv = await server(t, { headers_timeout_ms: 1000 });
  const conn = connect(srv.port);
  t.teardown(() => conn.socket.destroy());
  conn.socket.write(`GET /ping HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nX-Slow: `);
  trickle(conn);
  const res = parseRaw(await conn.closed);
  t.is(res.status, 408);
  t.is(JSON.parse(res.body.toString()).code, 'RequestTimeout');
  t.is(await ping(srv.port), 200);
});

async function unactivated(srv: Hostile): Promise<string> {
  const manifest = minimalManifest();
  const body = Buffer.from(JSON.stringify(manifest));
  const res = parseRaw(await exchange(srv.port, Buffer.concat([head(srv.port, 'POST', `/images/${String(manifest.uuid)}?action=import`, {
    Authorization: BASIC, 'Content-Type': 'application/json', 'Content-Length': body.length, Connection: 'close',
  }), body])));
  if (res.status !== 200) throw new Error(`import: ${res.status} ${res.body.toString()}`);
  return String(manifest.uuid);
}

/* --- requests the HTTP layer and the store must refuse cleanly (item 7) --- */

test('a multipart upload without a usable boundary: 400 InvalidHeader, not a 500', async (t) => {
  const srv = await writableServer(t);
  const form = multipart([{ name: 'manifest', data: JSON.stringify(minimalManifest()) }, { name: 'file', filename: 'f', data: randomBytes(100) }]);
  for (const contentType of ['multipart/form-data', 'multipart/form-data; boundary=', `multipart/mixed; boundary=${form.boundary}`]) {
    const res = await call(srv.url, 'POST', '/images', { headers: { 'content-type': contentType }, body: form.body });
    assertApiError(t, res, 400, 'InvalidHeader');
  }
  assertConforms(t, srv.serveDir, 'when done');
});

test('a multipart upload with two "file" parts is refused, and neither file is published', async (t) => {
  const srv = await writableServer(t);
  const before = snapshot(srv.serveDir);
  for (const manifestAsFile of [false, true]) {
    const manifest = minimalManifest();
    const form = multipart([
      manifestAsFile ? { name: 'manifest', filename: 'm.json', data: JSON.stringify(manifest) } : { name: 'manifest', data: JSON.stringify(manifest) },
      { name: 'file', filename: 'a', data: randomBytes(200_000) },
      { name: 'file', filename: 'b', data: randomBytes(1000) },
    ]);
    const res = await call(srv.url, 'POST', '/images?activate=true', { headers: { 'content-type': form.contentType }, body: form.body });
    const err = assertApiError(t, res, 422, 'InvalidParameter');
    t.deepEqual(err.errors, [{ field: 'file', code: 'Invalid' }]);
    t.is((await call(srv.url, 'GET', `/images/${String(manifest.uuid)}`)).status, 404);
  }
  await waitFor(() => stagingEntries(srv.serveDir).length === 0);
  t.deepEqual(snapshot(srv.serveDir), before, 'nothing stored');
});

test('an anonymous ?marker= naming a private image is answered exactly as an unknown uuid', async (t) => {
  const srv = await writableServer(t);
  await publish(srv.url, minimalManifest({ public: true }), randomBytes(100));
  const secret = await publish(srv.url, minimalManifest({ public: false }), randomBytes(100));
  const unknown = randomUUID();
  const anonymous = async (marker: string) => {
    const res = await call(srv.url, 'GET', `/images?marker=${marker}`, { auth: null });
    return { status: res.status, body: res.body.toString().replaceAll(marker, 'UUID') };
  };
  t.deepEqual(await anonymous(String(secret.uuid)), await anonymous(unknown));
  t.is((await call(srv.url, 'GET', `/images?marker=${String(secret.uuid)}`)).status, 200, 'an operator still pages from it');
});

test('the public /metrics does not count private images', async (t) => {
  const srv = await writableServer(t);
  const active = async () => {
    const text = (await call(srv.url, 'GET', '/metrics', { auth: null })).body.toString();
    return Number(/^image_server_images\{state="active"\} (\d+)$/m.exec(text)?.[1]);
  };
  await publish(srv.url, minimalManifest({ public: true }), randomBytes(100));
  t.is(await active(), 1);
  await publish(srv.url, minimalManifest({ public: false }), randomBytes(100));
  t.is(await active(), 1, 'a private image does not show');
});

test('a manifest.json that is a symlink is not read, wherever it points', async (t) => {
  const parent = tmpDir(t);
  const serveDir = path.join(parent, 'serve');
  fs.mkdirSync(serveDir);
  const bytes = randomBytes(1024);
  const outside = v2Manifest(bytes, { name: 'outside' });
  fs.writeFileSync(path.join(parent, 'manifest.json'), JSON.stringify(outside));
  const dir = path.join(serveDir, String(outside.uuid));
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'file.zfs.gz'), bytes);
  fs.symlinkSync(path.join(parent, 'manifest.json'), path.join(dir, 'manifest.json'));
  const srv = await writableServer(t, { serveDir });
  t.is((await call(srv.url, 'GET', `/images/${String(outside.uuid)}`)).status, 404);
  t.regex(String(srv.store.brokenImages().get(String(outside.uuid))), /symbolic link/);
});

test('folders written by other tools are held to the publish rules: markup in a name, a javascript: URL are skipped with one warning', async (t) => {
  const serveDir = tmpDir(t);
  const bytes = randomBytes(1024);
  const good = writeImage(serveDir, v2Manifest(bytes), { bytes });
  const markup = writeImage(serveDir, v2Manifest(bytes, { name: '<img src=x onerror=alert(1)>' }), { bytes });
  const script = writeImage(serveDir, v2Manifest(bytes, { homepage: 'javascript:alert(1)' }), { bytes });
  const legacy = writeImage(serveDir, v1Manifest(bytes, 'v1.zfs.gz', { name: '<b>v1</b>' }), { bytes, fileName: 'v1.zfs.gz' });
  const srv = await writableServer(t, { serveDir });
  t.is((await call(srv.url, 'GET', `/images/${good.uuid}`, { auth: null })).status, 200);
  for (const bad of [markup, script, legacy]) {
    t.is((await call(srv.url, 'GET', `/images/${bad.uuid}`)).status, 404, String(bad.manifest.name));
    t.is((await call(srv.url, 'GET', `/datasets/${bad.uuid}`)).status, 404);
    t.is(srv.logs.filter((l) => l.level === 40 && JSON.stringify(l).includes(bad.uuid)).length, 1, 'one warning');
  }
});

// Alone (serial tests run first): on a loaded machine a busy server is silent too.
test.serial('an upload that stalls for idle_timeout_ms is cut and cleaned up; a slow one that keeps moving completes', async (t) => {
  const srv = await server(t, { idle_timeout_ms: 5000 });
  const bytes = randomBytes(60_000);
  const put = (uuid: string) => head(srv.port, 'PUT', `/images/${uuid}/file?compression=none`, {
    Authorization: BASIC, 'Content-Length': bytes.length, Connection: 'close',
  });
  const [stalledUuid, slowUuid] = [await unactivated(srv), await unactivated(srv)];

  const stalled = connect(srv.port);
  t.teardown(() => stalled.socket.destroy());
  stalled.socket.write(Buffer.concat([put(stalledUuid), bytes.subarray(0, 20_000)]));
  await stalled.closed;
  await waitFor(() => stagingEntries(srv.serveDir).length === 0);
  const image = JSON.parse(fs.readFileSync(path.join(srv.serveDir, stalledUuid, 'manifest.json'), 'utf8'));
  t.deepEqual(image.files, [], 'the stalled upload left no file');

  // 6 × 10 KB, 1.5 s apart: longer in all than the idle timeout, never idle that long.
  const slow = connect(srv.port);
  t.teardown(() => slow.socket.destroy());
  slow.socket.write(put(slowUuid));
  for (let off = 0; off < bytes.length; off += 10_000) {
    slow.socket.write(bytes.subarray(off, off + 10_000));
    await new Promise((r) => setTimeout(r, 1500));
  }
  const res = parseRaw(await slow.closed);
  t.is(res.status, 200, res.body.toString());
  t.is(JSON.parse(res.body.toString()).files[0].size, bytes.length);
});

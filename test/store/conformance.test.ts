/*
 * Store conformance: every way an image enters the store (HTTP PUT,
 * multipart POST, import-image, a mirror download, a cluster pull), each
 * aborted in every
 * way it can be (bytes that do not match their hash, a body that ends
 * short, the other side hanging up mid-stream, SIGKILL of the process doing
 * the work). Afterwards serve_dir must hold exactly what the layout module
 * describes (test/helpers/conformance.ts): no staging folder, lock, trash,
 * stray partial or temp file; the image that was there before is untouched;
 * and nothing of the aborted image is served. An abort that kills the
 * process is judged after the next start, which is when the store clears
 * what a dead process left; every other abort is judged as it stands, once
 * the server has had its chance to clean up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import test, { type ExecutionContext } from 'ava';
import { sealLine } from '../../src/cli/seal.js';
import { ImageStore } from '../../src/store/store.js';
import { assertConforms, assertConformsSoon, stagingEntries, strayEntries, type Allowed } from '../helpers/conformance.js';
import { sha1, tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { waitFor } from '../helpers/server.js';
import { spawnServer, writeConfig, type Child } from '../cli/spawn.js';
import { IMPORT_IMAGE, fingerprint } from '../gz/kit.js';
import { IMAGE_SERVER, captureLog, dsapidImgapiImage, imgapiHandler, sendBytes, standIn, type StandImage } from '../mirror/kit.js';
import { ETCD, EtcdProcess, Node, testPrefix, until } from '../cluster/kit.js';
import { testNeeding } from '../helpers/system-tools.js';
import { BEARER, call, jsonBody, manifestAndFile, minimalManifest, uploadHead, writers } from '../publish/kit.js';

const ABORTS = ['bad hash', 'short body', 'hang-up', 'SIGKILL'] as const;
type Abort = (typeof ABORTS)[number];

/** A serve_dir holding one image, and how to tell it was left alone. */
interface World {
  serveDir: string;
  before: Record<string, string>;
  existing: string;
}

function world(t: ExecutionContext): World {
  const serveDir = tmpDir(t, 'imgsrv-serve-');
  const bytes = randomBytes(4096);
  const image = writeImage(serveDir, v2Manifest(bytes), { bytes, md5: true });
  return { serveDir, before: fingerprint(path.join(serveDir, image.uuid)), existing: image.uuid };
}

/** Bytes that have reached any transaction in .staging. */
function stagedBytes(serveDir: string): number {
  let total = 0;
  for (const txn of stagingEntries(serveDir)) {
    try {
      for (const name of fs.readdirSync(path.join(serveDir, '.staging', txn))) {
        total += fs.statSync(path.join(serveDir, '.staging', txn, name)).size;
      }
    } catch {
      // published or removed between the readdir and the stat
    }
  }
  return total;
}

/** The verdict: the layout holds, the old image is untouched, the new one has no file on disk. */
async function judge(t: ExecutionContext, w: World, what: string, uuid: string, allowed: Allowed = {}): Promise<void> {
  // Whatever still runs for the aborted request gets its moment to clean up;
  // a deadline, not a sleep, decides.
  await waitFor(() => strayEntries(w.serveDir, allowed).length === 0, 15_000).catch(() => undefined);
  assertConforms(t, w.serveDir, what, allowed);
  t.deepEqual(fingerprint(path.join(w.serveDir, w.existing)), w.before, `${what}: the image already there is untouched`);
  const dir = path.join(w.serveDir, uuid);
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n !== 'manifest.json' && n !== 'server.json') : [];
  t.deepEqual(files, [], `${what}: no file of the aborted image is stored`);
}

/** What a store opening on serve_dir does after a crash: clears what the dead process left. */
async function nextStart(serveDir: string): Promise<void> {
  const store = await ImageStore.open({ serveDir, log: captureLog('warn').log, watch: false });
  await store.close();
  await store.digestsIdle();
}

/* --- HTTP: AddImageFile (PUT) and CreateImage as multipart ----------------- */

interface RawUpload {
  head: Buffer;
  body: Buffer;
}

function putUpload(uuid: string, bytes: Buffer, claimedSha1: string): RawUpload {
  return { head: uploadHead(`PUT /images/${uuid}/file?compression=gzip&sha1=${claimedSha1}`, 'application/octet-stream', bytes.length), body: bytes };
}

function multipartUpload(manifest: Record<string, unknown>, bytes: Buffer): RawUpload {
  const form = manifestAndFile(manifest, bytes);
  return { head: uploadHead('POST /images?activate=true', form.contentType, form.body.length), body: form.body };
}

/** Sends the head and the first `cut` bytes of the body; resolves with the socket and its answer so far. */
async function sendPart(port: number, upload: RawUpload, cut: number) {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise((resolve) => socket.once('connect', resolve));
  await new Promise((resolve) => socket.write(Buffer.concat([upload.head, upload.body.subarray(0, cut)]), resolve));
  return { socket, closed, answer: () => Buffer.concat(chunks).toString('latin1') };
}

async function httpServer(t: ExecutionContext, w: World): Promise<Child & { port: number }> {
  const child = await spawnServer(t, { serve_dir: w.serveDir, ...(await writers()) });
  return { ...child, port: Number(new URL(child.where).port) };
}

async function abortHttp(t: ExecutionContext, kind: 'put' | 'multipart', abort: Abort): Promise<void> {
  const w = world(t);
  let server = await httpServer(t, w);
  const bytes = gzipSync(randomBytes(1024 * 1024), { level: 0 });
  const manifest = minimalManifest();
  const uuid = String(manifest.uuid);
  let upload: RawUpload;
  if (kind === 'put') {
    const created = await call(server.where, 'POST', `/images/${uuid}?action=import`, { ...jsonBody(manifest), auth: BEARER });
    t.is(created.status, 200, `AdminImportImage: ${created.body}`);
    upload = putUpload(uuid, bytes, abort === 'bad hash' ? sha1('something else') : sha1(bytes));
  } else {
    const described = abort === 'bad hash' ? { files: [{ sha1: sha1('something else'), size: bytes.length, compression: 'gzip' }] } : {};
    upload = multipartUpload({ ...manifest, ...described }, bytes);
  }
  const what = `${kind}, ${abort}`;
  if (abort === 'bad hash') {
    const sent = await sendPart(server.port, upload, upload.body.length);
    await sent.closed;
    t.regex(sent.answer(), /^HTTP\/1\.1 4\d\d /, `${what}: refused`);
  } else {
    const sent = await sendPart(server.port, upload, Math.floor(upload.body.length / 2));
    await waitFor(() => stagedBytes(w.serveDir) > 0, 15_000);
    if (abort === 'short body') sent.socket.end();
    if (abort === 'hang-up') sent.socket.destroy();
    if (abort === 'SIGKILL') {
      server.proc.kill('SIGKILL');
      await server.exited;
      sent.socket.destroy();
      server = await httpServer(t, w);
    }
    await sent.closed;
  }
  await judge(t, w, what, uuid);
  const ping = await call(server.where, 'GET', '/ping');
  t.is(ping.status, 200, `${what}: the server still answers`);
  const listed = await call(server.where, 'GET', `/images/${uuid}`, { auth: BEARER });
  if (kind === 'put') {
    t.is(listed.status, 200, `${what}: the image made by AdminImportImage is still there`);
    t.is(JSON.parse(listed.body.toString()).state, 'unactivated', `${what}: and it has no file`);
  } else {
    t.is(listed.status, 404, `${what}: no image was made`);
  }
}

/* --- import-image ------------------------------------------------------- */

function startImport(t: ExecutionContext, w: World): { child: ChildProcess; done: Promise<{ status: number | null; stderr: string }> } {
  const config = writeConfig(t, { serve_dir: w.serveDir });
  const child = spawn(IMPORT_IMAGE, ['--config', config, '--sealed', 'conformance', '1.0.0', 'an import cut short'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin!.on('error', () => undefined);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout!.resume();
  const done = new Promise<{ status: number | null; stderr: string }>((resolve) => {
    child.once('close', (status) => resolve({ status, stderr }));
  });
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await done;
  });
  return { child, done };
}

async function abortImport(t: ExecutionContext, abort: Abort): Promise<void> {
  const w = world(t);
  const bytes = gzipSync(randomBytes(1024 * 1024), { level: 0 });
  const { child, done } = startImport(t, w);
  const what = `import-image, ${abort}`;
  if (abort === 'bad hash') {
    child.stdin!.end(Buffer.concat([bytes, Buffer.from(sealLine(bytes.length, sha1('something else')))]));
  } else {
    child.stdin!.write(bytes.subarray(0, bytes.length >> 1));
    await waitFor(() => stagedBytes(w.serveDir) > 0, 15_000);
    if (abort === 'short body') child.stdin!.end();
    // What sshd does to the forced command when the connection drops.
    if (abort === 'hang-up') child.kill('SIGHUP');
    if (abort === 'SIGKILL') child.kill('SIGKILL');
  }
  const r = await done;
  t.not(r.status, 0, `${what}: import-image failed`);
  if (abort === 'bad hash' || abort === 'short body') t.regex(r.stderr, /nothing was published/, what);
  if (abort === 'SIGKILL' || abort === 'hang-up') await nextStart(w.serveDir);
  await judge(t, w, what, '00000000-0000-0000-0000-000000000000');
  t.deepEqual(fs.readdirSync(w.serveDir).filter((n) => n !== w.existing && /^[0-9a-f-]{36}$/.test(n)), [], `${what}: no image folder was made`);
}

/* --- a mirror download ---------------------------------------------------- */

/**
 * An upstream whose file answers go wrong as `abort` says: other bytes of
 * the same size, a body that ends (properly framed) half-way, or one that
 * stops half-way and holds the connection until it is cut.
 */
async function badUpstream(t: ExecutionContext, image: StandImage, abort: Abort) {
  let served = false;
  const open = new Set<http.ServerResponse>();
  const upstream = await standIn(t, imgapiHandler([image], {
    onFile: (req, res) => {
      served = true;
      const half = image.bytes.subarray(0, image.bytes.length >> 1);
      if (abort === 'bad hash') sendBytes(req, res, randomBytes(image.bytes.length), { ranges: false });
      else if (abort === 'short body') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': half.length });
        res.end(half);
      } else if (abort === 'hang-up') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': image.bytes.length });
        res.write(half, () => setTimeout(() => res.socket?.destroy(), 50));
      } else {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': image.bytes.length });
        res.write(half);
        open.add(res);
      }
      return true;
    },
  }));
  t.teardown(() => {
    for (const res of open) res.destroy();
  });
  return { url: upstream.url, served: () => served };
}

async function abortMirror(t: ExecutionContext, abort: Abort): Promise<void> {
  const w = world(t);
  const image = dsapidImgapiImage({}, 1024 * 1024);
  const upstream = await badUpstream(t, image, abort);
  const config = writeConfig(t, { serve_dir: w.serveDir });
  const child = spawn(IMAGE_SERVER, ['--config', config, 'mirror', upstream.url, '--type', 'imgapi'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout.resume();
  const done = new Promise<number | null>((resolve) => child.once('close', (status) => resolve(status)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await done;
  });
  const what = `mirror, ${abort}`;
  if (abort === 'SIGKILL') {
    await waitFor(() => upstream.served() && (stagedBytes(w.serveDir) > 0 || partialBytes(w.serveDir) > 0), 15_000);
    child.kill('SIGKILL');
    await done;
    await nextStart(w.serveDir);
  } else {
    const status = await done;
    t.not(status, 0, `${what}: the mirror run reports the failure: ${stderr}`);
  }
  // A download cut short is kept to resume from; one with wrong bytes is not.
  await judge(t, w, what, String(image.manifest.uuid), { partials: abort !== 'bad hash' });
  t.false(fs.existsSync(path.join(w.serveDir, String(image.manifest.uuid))), `${what}: no image folder was made`);
}

function partialBytes(serveDir: string): number {
  try {
    return fs.readdirSync(path.join(serveDir, '.mirror')).reduce((n, f) => n + fs.statSync(path.join(serveDir, '.mirror', f)).size, 0);
  } catch {
    return 0;
  }
}

for (const abort of ABORTS) {
  test.serial(`HTTP PUT (AddImageFile), ${abort}: serve_dir holds only what the layout describes`, (t) => abortHttp(t, 'put', abort));
  test.serial(`multipart POST /images, ${abort}: serve_dir holds only what the layout describes`, (t) => abortHttp(t, 'multipart', abort));
  test.serial(`import-image, ${abort}: serve_dir holds only what the layout describes`, (t) => abortImport(t, abort));
  test.serial(`mirror download, ${abort}: serve_dir holds only what the layout describes`, (t) => abortMirror(t, abort));
}

test('the check itself finds each kind of leftover', (t) => {
  const serveDir = tmpDir(t, 'imgsrv-serve-');
  const uuid = randomUUID();
  writeImage(serveDir, v2Manifest(randomBytes(16), { uuid }));
  t.deepEqual(strayEntries(serveDir), []);
  fs.mkdirSync(path.join(serveDir, '.staging', '1-x'), { recursive: true });
  fs.mkdirSync(path.join(serveDir, '.locks'));
  fs.writeFileSync(path.join(serveDir, '.locks', uuid), '');
  fs.mkdirSync(path.join(serveDir, '.mirror'));
  fs.writeFileSync(path.join(serveDir, '.mirror', `${uuid}-${'a'.repeat(40)}.partial`), 'x');
  fs.writeFileSync(path.join(serveDir, '.mirror', 'junk'), 'x');
  fs.writeFileSync(path.join(serveDir, uuid, '.manifest.json.tmp'), '{}');
  fs.mkdirSync(path.join(serveDir, 'tmp-folder'));
  fs.writeFileSync(path.join(serveDir, 'README'), 'hello');
  t.deepEqual(strayEntries(serveDir, { foreign: ['README'] }), [
    `.locks/${uuid}: left behind`,
    '.mirror/junk: a partial download left behind',
    `.mirror/${uuid}-${'a'.repeat(40)}.partial: a partial download left behind`,
    '.staging/1-x: left behind',
    `${uuid}/.manifest.json.tmp: not a data file name`,
    'tmp-folder: not in the layout',
  ].sort());
  t.deepEqual(strayEntries(serveDir, { foreign: ['README'], partials: true }).filter((s) => s.startsWith('.mirror')), [
    '.mirror/junk: not a name .mirror holds',
  ]);
});

/* --- a cluster pull ------------------------------------------------------ */

/**
 * A peer is another of our servers, so its answer cannot be short by its
 * own framing: the network cutting it is the hang-up case. B pulls from A
 * through a proxy that holds each transfer mid-file.
 */
testNeeding(ETCD, 'etcd', 'etcd-server').serial('cluster pull, hang-up, SIGKILL and bad hash: serve_dir holds only what the layout describes', async (t) => {
  t.timeout(150_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  const a = await Node.start(t, 'a', etcd, prefix, { proxy: true });
  const b = await Node.start(t, 'b', etcd, prefix);
  const size = 4 * 1024 * 1024;
  const midway = () => until('B receiving mid-file', () => b.partials().some((f) => f.size >= 256 * 1024), 60_000);
  const served = (uuid: string, sha: string) => until(`B serving ${uuid}`, async () => (await b.image(uuid)) !== undefined
    && (await b.fileSha1(uuid)) === sha, 90_000);

  a.proxy!.holdAfter(1024 * 1024);
  const cut = await a.publishLarge(size);
  await midway();
  a.proxy!.cut();
  a.proxy!.restore();
  a.proxy!.release();
  await served(cut.uuid, cut.sha1);
  await assertConformsSoon(t, b.serveDir, 'cluster pull, hang-up, then pulled again', { partials: true });

  a.proxy!.holdAfter(1024 * 1024);
  const killed = await a.publishLarge(size);
  await midway();
  await b.kill9();
  a.proxy!.release();
  await b.start();
  await served(killed.uuid, killed.sha1);
  await assertConformsSoon(t, b.serveDir, 'cluster pull, SIGKILL, then pulled after the restart', { partials: true });

  // A's copy goes bad while B is down: same size, one byte flipped at the end.
  t.is(await b.stop(), 0);
  const bad = await a.publishLarge(size);
  const file = fs.readdirSync(path.join(a.serveDir, bad.uuid)).find((n) => n !== 'manifest.json' && n !== 'server.json')!;
  const fd = fs.openSync(path.join(a.serveDir, bad.uuid, file), 'r+');
  const last = Buffer.alloc(1);
  fs.readSync(fd, last, 0, 1, size - 1);
  fs.writeSync(fd, Buffer.from([last[0]! ^ 0xff]), 0, 1, size - 1);
  fs.closeSync(fd);
  await b.start();
  await until('B refusing the bad bytes', () => b.child.logs.some((r) => typeof r.msg === 'string' && r.msg.startsWith('pull failed')), 60_000);
  t.is(await b.image(bad.uuid), undefined, 'B never serves the bad copy');
  t.is(await b.stop(), 0, 'B stops cleanly');
  assertConforms(t, b.serveDir, 'cluster pull, bad hash, after a clean stop');
  t.false(fs.existsSync(path.join(b.serveDir, bad.uuid)), 'no folder of the bad copy on B');
});

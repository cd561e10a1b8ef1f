/*
 * X-Accel-Redirect: with `x_accel_redirect` set, nginx sends the bytes of a
 * whole-file download from the internal location in
 * etc/nginx-image-server.conf. Two real stacks on the same serve_dir, one
 * with the setting and one without, must answer every file request alike:
 * status, body bytes and every header a client can see (Date and the
 * request id aside). The server's audit log proves which answers nginx sent.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { ExecutionContext } from 'ava';
import { md5b64, sha1, tmpDir, v1Manifest, v2Manifest, writeImage } from '../helpers/images.js';
import { imgapiClient, p } from '../helpers/legacy-clients.js';
import { waitFor } from '../helpers/server.js';
import { testNeeding } from '../helpers/system-tools.js';
import { NGINX, startStack, type Stack } from './nginx.js';

const test = testNeeding(NGINX, 'nginx', 'nginx');
const OFFLOAD = '/_image_files/';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(base: string, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    http.request(`${base}${path}`, { method, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject).end();
  });
}

/** What a client sees of an answer, minus what differs between any two answers. */
function visible(a: Answer): Record<string, unknown> {
  const { date: _date, 'x-request-id': _id, ...headers } = a.headers;
  return { status: a.status, headers, bodySha1: sha1(a.body), bodyLength: a.body.length };
}

async function stacks(t: ExecutionContext, config: Record<string, unknown> = {}) {
  const serveDir = tmpDir(t, 'imgsrv-serve-');
  // nginx's workers run as nobody: they read serve_dir themselves now.
  fs.chmodSync(serveDir, 0o755);
  const v2Bytes = randomBytes(3_000_000);
  const v2 = writeImage(serveDir, v2Manifest(v2Bytes, { name: 'modern' }), { bytes: v2Bytes, md5: true });
  const v1Bytes = randomBytes(200_000);
  const v1Name = 'orgbase-1.0.0.zfs.gz';
  const v1 = writeImage(serveDir, v1Manifest(v1Bytes, v1Name), { bytes: v1Bytes, fileName: v1Name, md5: true });
  const odd = randomBytes(50_000);
  // A legal file name that would need escaping in a URI: the server sends it itself.
  const spaced = writeImage(serveDir, v2Manifest(odd, { name: 'spaced' }), { bytes: odd, fileName: 'with space.zfs.gz', md5: true });
  const offloading = await startStack(t, { serve_dir: serveDir, x_accel_redirect: OFFLOAD, ...config });
  const direct = await startStack(t, { serve_dir: serveDir, ...config });
  return { offloading, direct, v1, v2, spaced };
}

/** The audit records of file requests the stack's server handled so far. */
function audits(stack: Stack, path: string): Record<string, unknown>[] {
  return stack.server.logs.filter((r) => r.audit === true && r.path === path);
}

test('offloaded downloads match direct ones byte for byte and header for header', async (t) => {
  const { offloading, direct, v1, v2, spaced } = await stacks(t);
  const v2Path = `/images/${v2.uuid}/file`;
  const etag = `"${v2.sha1}"`;
  const cases: [string, string, string, Record<string, string>][] = [
    ['whole file', 'GET', v2Path, {}],
    ['whole file over DSAPI', 'GET', `/datasets/${v1.uuid}/${v1.fileName}`, {}],
    ['a name that needs escaping', 'GET', `/images/${spaced.uuid}/file`, {}],
    ['HEAD', 'HEAD', v2Path, {}],
    ['a range', 'GET', v2Path, { Range: 'bytes=1000-1999' }],
    ['a range to the end', 'GET', v2Path, { Range: 'bytes=2999000-' }],
    ['an unsatisfiable range', 'GET', v2Path, { Range: 'bytes=5000000-' }],
    ['If-Range that holds', 'GET', v2Path, { Range: 'bytes=0-9', 'If-Range': etag }],
    ['If-Range that does not', 'GET', v2Path, { Range: 'bytes=0-9', 'If-Range': '"other"' }],
    ['If-None-Match that matches: 304', 'GET', v2Path, { 'If-None-Match': etag }],
    ['If-None-Match that does not', 'GET', v2Path, { 'If-None-Match': '"other"' }],
    ['If-Modified-Since now: 304', 'GET', v2Path, { 'If-Modified-Since': new Date(Date.now() + 1000).toUTCString() }],
    ['If-Modified-Since long ago', 'GET', v2Path, { 'If-Modified-Since': 'Mon, 01 Jan 2001 00:00:00 GMT' }],
    ['If-Match another ETag', 'GET', v2Path, { 'If-Match': '"other"' }],
    ['no such image', 'GET', `/images/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}/file`, {}],
  ];
  for (const [label, method, path, headers] of cases) {
    const [a, b] = await Promise.all([request(offloading.base, path, method, headers), request(direct.base, path, method, headers)]);
    t.deepEqual(visible(a), visible(b), label);
  }
  const whole = await request(offloading.base, v2Path);
  t.is(whole.status, 200);
  t.is(sha1(whole.body), v2.sha1, 'the bytes nginx sent are the file');
  t.is(whole.headers['content-md5'], md5b64(v2Bytes(v2)), 'Content-MD5 survives the redirect');
  t.is(whole.headers.etag, etag, 'the ETag is the sha1, not nginx\'s');
  t.is(whole.headers['accept-ranges'], 'bytes');
  t.is(whole.headers['access-control-allow-origin'], '*');
  t.truthy(whole.headers['x-request-id']);

  // Whole-file GETs went through nginx; everything else was sent by the server.
  const sentByNginx = (stack: Stack, path: string) => audits(stack, path).filter((r) => Number(r.offloaded_bytes) > 0);
  // An audit record is written once its response has closed: the last may still be on its way.
  const requests = cases.filter(([, , path]) => path === v2Path).length + 1;
  await waitFor(() => audits(offloading, v2Path).length === requests && audits(direct, v2Path).length === requests - 1);
  t.is(sentByNginx(offloading, v2Path).length, 4, 'the whole-file GETs of the v2 image (three cases and one more) were offloaded');
  for (const r of sentByNginx(offloading, v2Path)) {
    t.is(r.offloaded_bytes, 3_000_000);
    t.true(Number(r.bytes) < 10_000, 'the server itself wrote headers only');
  }
  t.is(sentByNginx(offloading, `/datasets/${v1.uuid}/${v1.fileName}`).length, 1, 'DSAPI downloads too');
  t.deepEqual(sentByNginx(offloading, `/images/${spaced.uuid}/file`), [], 'a name that needs escaping is sent by the server');
  t.deepEqual(sentByNginx(direct, v2Path), [], 'without the setting nothing is offloaded');
});

function v2Bytes(image: { dir: string; fileName: string }): Buffer {
  return fs.readFileSync(`${image.dir}/${image.fileName}`);
}

test('sdc-clients getImageFile through the offloading stack: its Content-MD5 check passes', async (t) => {
  const { offloading, v2 } = await stacks(t);
  const client = imgapiClient(t, offloading.base);
  const file = `${tmpDir(t)}/download`;
  await p<void>((cb) => client.getImageFile(v2.uuid, file, (err) => cb(err)));
  t.is(sha1(fs.readFileSync(file)), v2.sha1);
  await waitFor(() => audits(offloading, `/images/${v2.uuid}/file`).length > 0);
  t.is(audits(offloading, `/images/${v2.uuid}/file`)[0]!.offloaded_bytes, 3_000_000, 'nginx sent the bytes');
});

test('a file swapped behind the index is not handed to nginx', async (t) => {
  // Without inotify the index still names the old file when the request comes.
  const { offloading, v2 } = await stacks(t, { watch_fs: false });
  const path = `/images/${v2.uuid}/file`;
  t.is((await request(offloading.base, path)).status, 200);
  // Replaced by rename: another inode with other bytes of the same size.
  fs.writeFileSync(`${v2.dir}/.swap`, randomBytes(3_000_000));
  fs.renameSync(`${v2.dir}/.swap`, `${v2.dir}/${v2.fileName}`);
  const after = await request(offloading.base, path);
  t.is(after.status, 404, 'the server checks the file before nginx sends it');
});

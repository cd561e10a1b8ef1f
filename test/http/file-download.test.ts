/*
 * GetImageFile and the DSAPI file routes (docs/protocol.md §1.5 step 5, §3.6):
 * the exact stored bytes with every header imgadm and sniffle check, plus
 * conditional GET and byte ranges for curl and mirrors.
 */
import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { rawRequest, portOf } from '../helpers/raw-http.js';
import { startServer } from '../helpers/server.js';
import { md5b64, sha1, tmpDir, v1Manifest, writeImage, type ImageOnDisk } from '../helpers/images.js';
import { addImage, assertApiError, json, request, type Res } from './kit.js';

const MTIME = new Date('2024-01-02T03:04:05.000Z');
const MTIME_HTTP = 'Tue, 02 Jan 2024 03:04:05 GMT';

function touch(img: ImageOnDisk): void {
  fs.utimesSync(path.join(img.dir, img.fileName), MTIME, MTIME);
}

async function setup(t: ExecutionContext) {
  const root = tmpDir(t);
  const withMd5 = addImage(root, {}, { size: 3 * 1024 * 1024 + 17, md5: true, fileName: 'big.zfs.gz' });
  const noMd5 = addImage(root, {}, { size: 4096 });
  const v1bytes = randomBytes(2000);
  const v1 = writeImage(root, v1Manifest(v1bytes, 'orgbase-1.0.0.zfs.gz'), { bytes: v1bytes, fileName: 'orgbase-1.0.0.zfs.gz' });
  for (const img of [withMd5, noMd5, v1]) touch(img);
  const srv = await startServer(t, { serveDir: root });
  return { srv, withMd5, noMd5, v1 };
}

function fileUrls(base: string, img: ImageOnDisk): string[] {
  return [`${base}/images/${img.uuid}/file`, `${base}/datasets/${img.uuid}/${img.fileName}`, `${base}/datasets/${img.uuid}/file`];
}

function assertWholeFile(t: ExecutionContext, res: Res, img: ImageOnDisk, what: string): void {
  t.is(res.status, 200, what);
  t.is(res.headers['content-length'], String(img.bytes.length), what);
  t.is(res.headers['content-type'], 'application/octet-stream', what);
  t.is(res.headers.etag, `"${img.sha1}"`, what);
  t.is(res.headers['last-modified'], MTIME_HTTP, what);
  t.is(res.headers['content-encoding'], undefined, what);
  t.is(res.headers['transfer-encoding'], undefined, what);
  t.is(res.headers.location, undefined, what);
  t.is(res.body.length, img.bytes.length, what);
  t.is(sha1(res.body), (img.manifest.files as { sha1: string }[])[0]!.sha1, what);
}

test('the file comes back byte for byte with Content-Length = files[0].size and the checksum headers', async (t) => {
  const { srv, withMd5, noMd5, v1 } = await setup(t);
  for (const img of [withMd5, noMd5, v1]) {
    const size = (img.manifest.files as { size: number }[])[0]!.size;
    t.is(size, img.bytes.length);
    for (const url of fileUrls(srv.url, img)) {
      const res = await request(url);
      assertWholeFile(t, res, img, url);
      if (img === withMd5) t.is(res.headers['content-md5'], md5b64(img.bytes), url);
    }
  }
});

test('Content-MD5 is sent only when known, and then it is right', async (t) => {
  const root = tmpDir(t);
  const recorded = addImage(root, {}, { md5: true });
  const unrecorded = addImage(root);
  // Bytes that disagree with the manifest's sha1 never earn an MD5.
  const doubtful = addImage(root, {}, { size: 1024 });
  const lie = { ...doubtful.manifest, files: [{ sha1: '0'.repeat(40), size: 1024, compression: 'gzip' }] };
  fs.writeFileSync(path.join(doubtful.dir, 'manifest.json'), JSON.stringify(lie));
  const srv = await startServer(t, { serveDir: root });
  const md5Of = async (img: ImageOnDisk) =>
    (await request(`${srv.url}/images/${img.uuid}/file`)).headers['content-md5'] as string | undefined;

  t.is(await md5Of(recorded), md5b64(recorded.bytes));
  // The server may work out a missing MD5 in the background; until then it sends none.
  t.true([undefined, md5b64(unrecorded.bytes)].includes(await md5Of(unrecorded)));
  t.true([undefined, md5b64(doubtful.bytes)].includes(await md5Of(doubtful)));
  await srv.store.digestsIdle();
  t.is(await md5Of(recorded), md5b64(recorded.bytes));
  for (const img of [recorded, unrecorded, doubtful]) {
    const md5 = await md5Of(img);
    t.true(md5 === undefined || md5 === md5b64(img.bytes), img.uuid);
  }
  t.is(await md5Of(doubtful), undefined);
});

test('a recorded Content-MD5 is base64 of the binary digest, not hex', async (t) => {
  const { srv, withMd5 } = await setup(t);
  const res = await request(`${srv.url}/images/${withMd5.uuid}/file`);
  const md5 = String(res.headers['content-md5']);
  t.is(Buffer.from(md5, 'base64').toString('hex'), createHash('md5').update(res.body).digest('hex'));
  t.is(md5.length, 24);
});

test('If-None-Match and If-Modified-Since give 304 without a body', async (t) => {
  const { srv, noMd5 } = await setup(t);
  for (const url of fileUrls(srv.url, noMd5)) {
    const byEtag = await request(url, { headers: { 'if-none-match': `"${noMd5.sha1}"` } });
    t.is(byEtag.status, 304, url);
    t.is(byEtag.body.length, 0, url);
    t.is(byEtag.headers.etag, `"${noMd5.sha1}"`, url);
    const byDate = await request(url, { headers: { 'if-modified-since': MTIME_HTTP } });
    t.is(byDate.status, 304, url);
    t.is(byDate.body.length, 0);
    const later = await request(url, { headers: { 'if-modified-since': 'Wed, 01 Jan 2025 00:00:00 GMT' } });
    t.is(later.status, 304, url);
    assertWholeFile(t, await request(url, { headers: { 'if-none-match': '"0000000000000000000000000000000000000000"' } }), noMd5, url);
    assertWholeFile(t, await request(url, { headers: { 'if-modified-since': 'Mon, 01 Jan 2024 00:00:00 GMT' } }), noMd5, url);
  }
});

test('a single byte range is 206 with Content-Range and exactly those bytes', async (t) => {
  const { srv, withMd5 } = await setup(t);
  const size = withMd5.bytes.length;
  const cases: [string, number, number][] = [
    ['bytes=0-0', 0, 0],
    ['bytes=10-99', 10, 99],
    [`bytes=${size - 100}-`, size - 100, size - 1],
    ['bytes=-100', size - 100, size - 1],
    [`bytes=1000-${size + 5000}`, 1000, size - 1],
  ];
  for (const url of fileUrls(srv.url, withMd5)) {
    for (const [range, start, end] of cases) {
      const res = await request(url, { headers: { range } });
      t.is(res.status, 206, `${url} ${range}`);
      t.is(res.headers['content-range'], `bytes ${start}-${end}/${size}`, range);
      t.is(res.headers['content-length'], String(end - start + 1), range);
      t.is(res.headers['content-type'], 'application/octet-stream');
      // The MD5 describes the whole file, not the part.
      t.is(res.headers['content-md5'], undefined, range);
      t.true(res.body.equals(withMd5.bytes.subarray(start, end + 1)), range);
    }
  }
});

test('an unsatisfiable range is 416 with Content-Range: bytes */size', async (t) => {
  const { srv, noMd5 } = await setup(t);
  for (const url of fileUrls(srv.url, noMd5)) {
    for (const range of ['bytes=4096-', 'bytes=5000-6000']) {
      const res = await request(url, { headers: { range } });
      assertApiError(t, res, 416, 'RequestedRangeNotSatisfiable');
      t.is(res.headers['content-range'], 'bytes */4096', range);
      t.is(res.headers.etag, undefined);
    }
  }
});

test('several ranges, a malformed Range or another unit get the whole file', async (t) => {
  const { srv, noMd5 } = await setup(t);
  const url = `${srv.url}/images/${noMd5.uuid}/file`;
  for (const range of ['bytes=0-9,20-29', 'bytes=0-9, 100-199, 300-', 'bytes=abc', 'items=0-9']) {
    const res = await request(url, { headers: { range } });
    assertWholeFile(t, res, noMd5, range);
    t.is(res.headers['content-range'], undefined, range);
  }
});

test('If-Range decides between the range and the whole file', async (t) => {
  const { srv, noMd5 } = await setup(t);
  const url = `${srv.url}/images/${noMd5.uuid}/file`;
  const stale = await request(url, { headers: { range: 'bytes=0-9', 'if-range': '"0123456789abcdef0123456789abcdef01234567"' } });
  assertWholeFile(t, stale, noMd5, 'etag mismatch');
  const oldDate = await request(url, { headers: { range: 'bytes=0-9', 'if-range': 'Mon, 01 Jan 2024 00:00:00 GMT' } });
  assertWholeFile(t, oldDate, noMd5, 'date before Last-Modified');
  const fresh = await request(url, { headers: { range: 'bytes=0-9', 'if-range': `"${noMd5.sha1}"` } });
  t.is(fresh.status, 206);
  t.true(fresh.body.equals(noMd5.bytes.subarray(0, 10)));
  const sameDate = await request(url, { headers: { range: 'bytes=0-9', 'if-range': MTIME_HTTP } });
  t.is(sameDate.status, 206);
});

test('Accept-Encoding: gzip changes nothing: no Content-Encoding, no chunking, same bytes', async (t) => {
  const { srv, withMd5 } = await setup(t);
  for (const url of fileUrls(srv.url, withMd5)) {
    const res = await request(url, { headers: { 'accept-encoding': 'gzip, deflate, br' } });
    assertWholeFile(t, res, withMd5, url);
    const raw = await rawRequest({ port: portOf(srv.url) },
      `GET ${new URL(url).pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n`);
    t.is(raw.status, 200);
    t.false('transfer-encoding' in raw.headers);
    t.false('content-encoding' in raw.headers);
    t.is(raw.headers['content-length'], String(withMd5.bytes.length));
    t.true(raw.body.equals(withMd5.bytes));
  }
});

test('Accept: application/json on the file GET still gets the file (imgadm sends it)', async (t) => {
  const { srv, noMd5 } = await setup(t);
  for (const url of fileUrls(srv.url, noMd5)) {
    const res = await request(url, { headers: { accept: 'application/json', 'accept-version': '~2' } });
    assertWholeFile(t, res, noMd5, url);
  }
});

test('files of unactivated and disabled images download over IMGAPI (origins must stay fetchable)', async (t) => {
  const root = tmpDir(t);
  const unactivated = addImage(root, { state: 'unactivated', published_at: undefined });
  const disabled = addImage(root, { state: 'disabled', disabled: true });
  const noFile = addImage(root, { state: 'unactivated', published_at: undefined, files: [] });
  fs.rmSync(path.join(noFile.dir, noFile.fileName));
  fs.rmSync(path.join(noFile.dir, 'server.json'));
  const { url } = await startServer(t, { serveDir: root });
  for (const img of [unactivated, disabled]) {
    const res = await request(`${url}/images/${img.uuid}/file`);
    t.is(res.status, 200);
    t.is(res.headers['content-length'], String(img.bytes.length));
    t.is(sha1(res.body), img.sha1);
  }
  t.is(json(await request(`${url}/images/${noFile.uuid}`)).state, 'unactivated');
  assertApiError(t, await request(`${url}/images/${noFile.uuid}/file`), 404, 'ResourceNotFound');
});

test('?index picks files[N]; a missing index or a non-number finds no file', async (t) => {
  const { srv, noMd5 } = await setup(t);
  const base = `${srv.url}/images/${noMd5.uuid}/file`;
  assertWholeFile(t, await request(`${base}?index=0`), noMd5, 'index=0');
  for (const q of ['index=1', 'index=abc', 'index=-1', 'index=0x0']) {
    assertApiError(t, await request(`${base}?${q}`), 404, 'ResourceNotFound');
  }
});

test('DSAPI: a disabled image is shown with disabled: true but not listed; an unactivated one is 404', async (t) => {
  const root = tmpDir(t);
  const active = addImage(root);
  const disabled = addImage(root, { state: 'disabled', disabled: true });
  const unactivated = addImage(root, { state: 'unactivated', published_at: undefined });
  const { url } = await startServer(t, { serveDir: root });
  const listed = json(await request(`${url}/datasets`)).map((d: { uuid: string }) => d.uuid);
  t.deepEqual(listed, [active.uuid]);
  const shown = await request(`${url}/datasets/${disabled.uuid}`);
  t.is(shown.status, 200);
  t.is(json(shown).disabled, true);
  t.is(json(await request(`${url}/datasets/${active.uuid}`)).disabled, undefined);
  assertApiError(t, await request(`${url}/datasets/${unactivated.uuid}`), 404, 'ResourceNotFound');
  assertApiError(t, await request(`${url}/datasets/${unactivated.uuid}/file`), 404, 'ResourceNotFound');
  assertApiError(t, await request(`${url}/datasets/${unactivated.uuid}/${unactivated.fileName}`), 404, 'ResourceNotFound');
  // DSAPI hands out only files imgadm could import.
  assertApiError(t, await request(`${url}/datasets/${disabled.uuid}/${disabled.fileName}`), 404, 'ResourceNotFound');
});

test('a DSAPI file name that the image does not have is 404', async (t) => {
  const { srv, noMd5 } = await setup(t);
  for (const name of ['file0.zfs', 'manifest.json', 'server.json', 'FILE', 'file0.zfs.gz.partial']) {
    assertApiError(t, await request(`${srv.url}/datasets/${noMd5.uuid}/${name}`), 404, 'ResourceNotFound');
  }
});

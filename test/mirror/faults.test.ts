/*
 * Upstreams that fail mid-way: a connection cut in the middle of a file
 * (the next attempt resumes with a Range request, in the same run or the
 * next), an upstream that ignores Range, and one that serves wrong bytes.
 * serve_dir never shows a partial or corrupt image, and the next run
 * completes once the upstream behaves.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { count, failed } from '../../src/mirror/report.js';
import { sha1 } from '../helpers/images.js';
import { startServer } from '../helpers/server.js';
import { request } from '../http/kit.js';
import {
  assertOnlyWholeImages, dsapidImgapiImage, fileRequests, imgapiHandler, mirrorInto, partials, sendBytes, sendCut, standIn,
  type StandImage,
} from './kit.js';

const SIZE = 256 * 1024;
const CUT = 100 * 1024;

function bigImage(): StandImage {
  const image = dsapidImgapiImage({ name: 'big' }, 16);
  const bytes = randomBytes(SIZE);
  const files = image.manifest.files as Record<string, unknown>[];
  image.manifest.files = [{ sha1: sha1(bytes), size: SIZE, compression: files[0]!.compression }];
  return { manifest: image.manifest, bytes };
}

test('a connection cut mid-file: nothing is published, the next run resumes with Range and completes', async (t) => {
  const image = bigImage();
  const uuid = String(image.manifest.uuid);
  let cuts = 1;
  const upstream = await standIn(t, imgapiHandler([image], {
    onFile: (_req, res, img) => {
      if (cuts-- <= 0) return false;
      sendCut(res, img.bytes, CUT);
      return true;
    },
  }));
  const local = await startServer(t);
  const once = { attempts: 1, baseMs: 5, maxMs: 10 };
  const first = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }, { retry: once }).run();
  t.true(failed(first));
  t.regex(first.results[0]!.error!, /connection lost|ended after|aborted|ECONNRESET/);
  t.false(fs.existsSync(path.join(local.serveDir, uuid)), 'no image folder');
  t.deepEqual(await assertOnlyWholeImages(t, local.serveDir), []);
  const [partial] = partials(local.serveDir);
  t.truthy(partial, 'the bytes received wait in .mirror');
  t.true(partial!.size > 0 && partial!.size <= CUT, `partial of ${partial?.size} bytes`);
  const local404 = await request(`${local.url}/images/${uuid}`);
  t.is(local404.status, 404, 'the partial is never visible');

  const second = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }, { retry: once }).run();
  t.false(failed(second), JSON.stringify(second.results));
  const [, resumed] = fileRequests(upstream.requests, uuid);
  t.is(resumed!.headers.range, `bytes=${partial!.size}-`, 'the second attempt asks only for what is missing');
  t.is(second.results[0]!.resumedFrom, partial!.size);
  t.is(second.results[0]!.bytes, SIZE - partial!.size);
  const served = await request(`${local.url}/images/${uuid}/file`);
  t.is(sha1(served.body), sha1(image.bytes), 'the bytes are right');
  t.deepEqual(partials(local.serveDir), [], 'the partial is gone');
  await assertOnlyWholeImages(t, local.serveDir);
});

test('within one run, the retry after a cut resumes with Range', async (t) => {
  const image = bigImage();
  let cuts = 2;
  const upstream = await standIn(t, imgapiHandler([image], {
    onFile: (req, res, img) => {
      if (cuts-- <= 0) return false;
      // Each attempt gets 50 KiB further.
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      sendCut(res, img.bytes, 50 * 1024, start);
      return true;
    },
  }));
  const local = await startServer(t);
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }).run();
  t.false(failed(report), JSON.stringify(report.results));
  const ranges = fileRequests(upstream.requests).map((r) => r.headers.range);
  t.is(ranges.length, 3);
  t.is(ranges[0], undefined);
  t.regex(ranges[1]!, /^bytes=\d+-$/);
  t.regex(ranges[2]!, /^bytes=\d+-$/);
  t.true(Number(/\d+/.exec(ranges[2]!)![0]) > Number(/\d+/.exec(ranges[1]!)![0]), 'each resume starts further on');
  t.is(sha1((await request(`${local.url}/images/${String(image.manifest.uuid)}/file`)).body), sha1(image.bytes));
});

test('an upstream that ignores Range sends the whole file again, and the copy is still right', async (t) => {
  const image = bigImage();
  let cuts = 1;
  const upstream = await standIn(t, imgapiHandler([image], {
    onFile: (req, res, img) => {
      if (cuts-- > 0) sendCut(res, img.bytes, CUT);
      else sendBytes(req, res, img.bytes, { ranges: false });
      return true;
    },
  }));
  const local = await startServer(t);
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }).run();
  t.false(failed(report), JSON.stringify(report.results));
  t.truthy(fileRequests(upstream.requests)[1]!.headers.range);
  t.is(report.results[0]!.resumedFrom, 0);
  t.is(sha1((await request(`${local.url}/images/${String(image.manifest.uuid)}/file`)).body), sha1(image.bytes));
});

test('wrong bytes (sha1 mismatch) are never published; the next run completes once the upstream behaves', async (t) => {
  const image = bigImage();
  const good = dsapidImgapiImage({ name: 'good' }, 512);
  const uuid = String(image.manifest.uuid);
  let corrupt = true;
  const upstream = await standIn(t, imgapiHandler([image, good], {
    onFile: (req, res, img) => {
      if (!corrupt || img !== image) return false;
      const wrong = Buffer.from(img.bytes);
      wrong[SIZE >> 1] ^= 0xff;
      sendBytes(req, res, wrong);
      return true;
    },
  }));
  const local = await startServer(t);
  const mirror = mirrorInto(t, local, { url: upstream.url, type: 'imgapi' });
  const first = await mirror.run();
  const bad = first.results.find((r) => r.uuid === uuid)!;
  t.is(bad.outcome, 'failed');
  t.regex(bad.error!, /sha1 [0-9a-f]{40}, the manifest says/);
  t.is(fileRequests(upstream.requests, uuid).length, 3, 'tried three times, each from the start');
  t.true(fileRequests(upstream.requests, uuid).every((r) => r.headers.range === undefined), 'wrong bytes are not resumed from');
  t.is(count(first, 'copied'), 1, 'the good image is copied anyway');
  t.deepEqual(await assertOnlyWholeImages(t, local.serveDir), [String(good.manifest.uuid)]);
  t.deepEqual(partials(local.serveDir), [], 'the corrupt download is discarded');
  t.is((await request(`${local.url}/images/${uuid}`)).status, 404);

  corrupt = false;
  const second = await mirror.run();
  t.false(failed(second), JSON.stringify(second.results));
  t.deepEqual(second.results.map((r) => [r.uuid, r.outcome]).sort(), [[uuid, 'copied'], [String(good.manifest.uuid), 'present']].sort());
  t.is(sha1((await request(`${local.url}/images/${uuid}/file`)).body), sha1(image.bytes));
  await assertOnlyWholeImages(t, local.serveDir);
});

test('a file longer than its manifest says is cut off and discarded', async (t) => {
  const image = bigImage();
  let tooLong = true;
  const upstream = await standIn(t, imgapiHandler([image], {
    onFile: (_req, res, img) => {
      if (!tooLong) return false;
      const body = Buffer.concat([img.bytes, Buffer.alloc(1000)]);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(body);
      return true;
    },
  }));
  const local = await startServer(t);
  const mirror = mirrorInto(t, local, { url: upstream.url, type: 'imgapi' });
  const first = await mirror.run();
  t.regex(first.results[0]!.error!, /more bytes than/);
  t.deepEqual(await assertOnlyWholeImages(t, local.serveDir), []);
  t.deepEqual(partials(local.serveDir), []);
  tooLong = false;
  t.false(failed(await mirror.run()));
});

test('an upstream that stalls mid-file times out, and the retry resumes', async (t) => {
  const image = bigImage();
  let stalls = 1;
  const upstream = await standIn(t, imgapiHandler([image], {
    onFile: (_req, res, img) => {
      if (stalls-- <= 0) return false;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': img.bytes.length });
      res.write(img.bytes.subarray(0, CUT));
      // …and nothing more, until the client gives up.
      return true;
    },
  }));
  const local = await startServer(t);
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }, { idleTimeoutMs: 300 }).run();
  t.false(failed(report), JSON.stringify(report.results));
  const [, retry] = fileRequests(upstream.requests);
  t.regex(retry!.headers.range!, /^bytes=\d+-$/);
  t.true(report.results[0]!.resumedFrom! > 0);
  t.is(sha1((await request(`${local.url}/images/${String(image.manifest.uuid)}/file`)).body), sha1(image.bytes));
});

test('a finished download is moved into the import, not copied: the published file is the partial itself', async (t) => {
  const image = bigImage();
  const uuid = String(image.manifest.uuid);
  const upstream = await standIn(t, imgapiHandler([image]));
  const local = await startServer(t);
  // What an earlier run fetched whole, then could not publish (stopped just before).
  const partial = await local.store.partialFile(uuid, sha1(image.bytes));
  fs.writeFileSync(partial, image.bytes);
  const inode = fs.statSync(partial).ino;
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }).run();
  t.false(failed(report), JSON.stringify(report.results));
  t.deepEqual(fileRequests(upstream.requests, uuid), [], 'nothing fetched again');
  const record = local.store.get(uuid)!;
  t.is(fs.statSync(local.store.layout.filePath(uuid, record.files[0]!.name)).ino, inode, 'the same file, moved');
  t.deepEqual(partials(local.serveDir), []);
  await assertOnlyWholeImages(t, local.serveDir);
});

/*
 * Upstream images this server refuses, each skipped on its own while the
 * rest of the run goes on: an origin that is not a uuid, a file larger
 * than max_upload_bytes (refused before a byte is fetched, or as soon as
 * the upstream sends more than it announced; no partial download is
 * kept), and a manifest the publish API would turn down (HTML in the
 * name, a javascript: URL), which the store's gate refuses too.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import test from 'ava';
import { errors } from '../../src/errors.js';
import { count } from '../../src/mirror/report.js';
import type { Manifest } from '../../src/manifest/types.js';
import { sha1, v2Manifest } from '../helpers/images.js';
import { startServer } from '../helpers/server.js';
import {
  assertOnlyWholeImages, captureLog, dsapidImgapiImage, fileRequests, imgapiHandler, mirrorInto, partials, standIn,
} from './kit.js';

test('an origin that is not a uuid skips that image only', async (t) => {
  const good = dsapidImgapiImage({ name: 'good' });
  const bad = ['../../etc/passwd', 'NOT-A-UUID', 42, { uuid: randomUUID() }].map((origin) => dsapidImgapiImage({ name: 'bad', origin }));
  const upstream = await standIn(t, imgapiHandler([...bad, good]));
  const local = await startServer(t);
  const { log, records } = captureLog('info');
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }, {}, log).run();
  t.is(report.error, undefined);
  t.is(count(report, 'copied'), 1);
  t.truthy(local.store.get(String(good.manifest.uuid)));
  t.is(count(report, 'failed'), bad.length);
  const warned = records.filter((r) => r.msg === 'mirror: upstream manifest cannot be mirrored');
  t.is(warned.length, bad.length, 'one warning each');
  t.true(warned.every((r) => /origin is not a uuid/.test(String(r.err))));
  t.deepEqual(upstream.requests.filter((r) => !r.url.startsWith('/images?') && r.url !== '/images'
    && !r.url.includes(String(good.manifest.uuid))), [], 'nothing is asked for on behalf of the bad ones');
  await assertOnlyWholeImages(t, local.serveDir);
});

test('a file larger than max_upload_bytes is refused before it is fetched, and a partial of it is removed', async (t) => {
  const small = dsapidImgapiImage({ name: 'small' }, 512);
  const big = dsapidImgapiImage({ name: 'big' }, 4096);
  const upstream = await standIn(t, imgapiHandler([small, big]));
  const local = await startServer(t);
  // What a run under a larger limit left behind.
  const partial = await local.store.partialFile(String(big.manifest.uuid), sha1(big.bytes));
  fs.writeFileSync(partial, big.bytes.subarray(0, 1000));
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }, { maxFileBytes: 1024 }).run();
  t.is(count(report, 'copied'), 1);
  const refused = report.results.find((r) => r.uuid === big.manifest.uuid);
  t.is(refused?.outcome, 'failed');
  t.regex(refused?.error ?? '', /4096 bytes is larger than max_upload_bytes \(1024\)/);
  t.deepEqual(fileRequests(upstream.requests, String(big.manifest.uuid)), [], 'not a byte of it is asked for');
  t.deepEqual(partials(local.serveDir), [], 'the partial is gone');
  await assertOnlyWholeImages(t, local.serveDir);
});

test('an upstream that streams more than the manifest says is cut off, and its bytes are not kept', async (t) => {
  const liar = dsapidImgapiImage({ name: 'liar' }, 512);
  const sent = Buffer.concat([liar.bytes, randomBytes(64 * 1024)]);
  const upstream = await standIn(t, imgapiHandler([liar], {
    onFile: (_req, res) => {
      // No Content-Length: only the bytes themselves show the lie.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(sent);
      return true;
    },
  }));
  const local = await startServer(t);
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }, { maxFileBytes: 1024 }).run();
  t.is(count(report, 'copied'), 0);
  t.regex(report.results[0]?.error ?? '', /more bytes than the 512 the manifest says/);
  t.deepEqual(partials(local.serveDir), [], 'no partial is kept');
  t.deepEqual(await assertOnlyWholeImages(t, local.serveDir), []);
});

const UNPUBLISHABLE: [string, Record<string, unknown>][] = [
  ['HTML in the name', { name: '<script>alert(1)</script>' }],
  ['a javascript: homepage', { homepage: 'javascript:alert(document.cookie)' }],
  ['a javascript: EULA', { eula: 'JaVaScRiPt:alert(1)' }],
];

test('manifests the publish API refuses are skipped with one warning each, before their files are fetched', async (t) => {
  const good = dsapidImgapiImage({ name: 'good' });
  const bad = UNPUBLISHABLE.map(([, fields]) => dsapidImgapiImage(fields));
  const upstream = await standIn(t, imgapiHandler([...bad, good]));
  const local = await startServer(t);
  const { log, records } = captureLog('info');
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }, {}, log).run();
  t.is(count(report, 'copied'), 1);
  t.is(count(report, 'failed'), bad.length);
  t.deepEqual(local.store.list().map((r) => r.uuid), [String(good.manifest.uuid)]);
  for (const image of bad) t.deepEqual(fileRequests(upstream.requests, String(image.manifest.uuid)), []);
  t.is(records.filter((r) => r.msg === 'mirror: cannot mirror image').length, bad.length, 'one warning each');
  await assertOnlyWholeImages(t, local.serveDir);
});

for (const [what, fields] of UNPUBLISHABLE) {
  test(`the store's gate refuses ${what}, whoever hands it in`, async (t) => {
    const local = await startServer(t);
    const bytes = randomBytes(64);
    const manifest = v2Manifest(bytes, { ...fields, files: [{ sha1: sha1(bytes), size: 64, compression: 'none' }] });
    const error = await t.throwsAsync(local.writer.create(manifest as unknown as Manifest, { via: 'mirror', by: 'mirror' }, {
      file: { source: Readable.from([bytes]), compression: 'none', expect: { sha1: sha1(bytes), size: 64, maxBytes: 64 } },
    }));
    t.true(errors.ValidationFailed.is(error), String(error));
    t.deepEqual(local.store.list(), []);
    t.deepEqual(await assertOnlyWholeImages(t, local.serveDir), []);
  });
}

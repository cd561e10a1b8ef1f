/*
 * Upstreams that label a file's compression wrongly (a gzip file as
 * "none", the pitfall imgadm fails on): the copy is stored with the
 * compression its bytes have, under the file name that goes with it, and
 * a warning names the upstream. Over IMGAPI and over DSAPI.
 */
import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import type { Compression } from '../../src/manifest/types.js';
import { count } from '../../src/mirror/report.js';
import { sha1 } from '../helpers/images.js';
import { startServer } from '../helpers/server.js';
import { request } from '../http/kit.js';
import { assertOnlyWholeImages, bytesOf, captureLog, dsapidImgapiImage, imgapiHandler, mirrorInto, sendBytes, sendJson, standIn } from './kit.js';

const CASES: [string, Compression, Buffer][] = [
  ['a gzip file labelled none', 'none', gzipSync(Buffer.from('a zfs send stream, compressed'.repeat(50)))],
  ['an xz file labelled gzip', 'gzip', bytesOf('xz', 4000)],
  ['a raw file labelled bzip2', 'bzip2', bytesOf('none', 4000)],
];

function mislabelled(label: Compression, bytes: Buffer, fields: Record<string, unknown> = {}) {
  const image = dsapidImgapiImage(fields);
  image.bytes = bytes;
  image.manifest.files = [{ sha1: sha1(bytes), size: bytes.length, compression: label }];
  return image;
}

test('over IMGAPI: each mislabelled file is stored with the compression its bytes have, and a warning names the upstream', async (t) => {
  const images = CASES.map(([, label, bytes]) => mislabelled(label, bytes));
  const honest = dsapidImgapiImage({ name: 'honest' });
  const upstream = await standIn(t, imgapiHandler([...images, honest]));
  const local = await startServer(t);
  const { log, records } = captureLog('info');
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }, {}, log).run();
  t.is(count(report, 'copied'), images.length + 1, JSON.stringify(report.results));
  const truths: Compression[] = ['gzip', 'xz', 'none'];
  for (const [i, image] of images.entries()) {
    const record = local.store.get(String(image.manifest.uuid))!;
    t.is(record.manifest.files[0]!.compression, truths[i], CASES[i]![0]);
    t.regex(record.files[0]!.name, { gzip: /\.zfs\.gz$/, xz: /\.zfs\.xz$/, none: /\.zfs$/, bzip2: /\.zfs\.bz2$/ }[truths[i]!]);
    const served = await request(`${local.url}/images/${String(image.manifest.uuid)}`);
    t.is(JSON.parse(served.body.toString()).files[0].compression, truths[i], 'what imgadm is told');
  }
  t.is(local.store.get(String(honest.manifest.uuid))!.manifest.files[0]!.compression, 'gzip');
  const warnings = records.filter((r) => /labels this file's compression wrongly/.test(String(r.msg)));
  t.is(warnings.length, images.length, 'one warning per mislabelled file, none for the honest one');
  t.true(warnings.every((r) => r.upstream === upstream.url && String(r.msg).includes(upstream.url)));
  // Images are copied two at a time: the warnings come in either order.
  const pairs = (xs: unknown[][]) => xs.map((x) => JSON.stringify(x)).sort();
  t.deepEqual(pairs(warnings.map((r) => [r.labelled, r.actual])), pairs(CASES.map(([, label], i) => [label, truths[i]])));
  await assertOnlyWholeImages(t, local.serveDir);
});

test('over DSAPI: a gzip file labelled none is stored as gzip', async (t) => {
  const [, , bytes] = CASES[0]!;
  const uuid = randomUUID();
  const manifest = {
    uuid, name: 'dsimage', version: '1.0.0', urn: 'sdc:sdc:dsimage:1.0.0', type: 'zone-dataset', os: 'smartos',
    description: 'labelled none', published_at: '2014-01-21T05:44Z', creator_uuid: randomUUID(), creator_name: 'sdc',
    vendor_uuid: randomUUID(), platform_type: 'smartos', cloud_name: 'sdc', restricted_to_uuid: null, state: 'active',
    files: [{ path: 'dsimage.zfs', sha1: sha1(bytes), size: bytes.length, compression: 'none', url: `http://elsewhere/datasets/${uuid}/dsimage.zfs` }],
  };
  const upstream = await standIn(t, (req, res) => {
    const url = req.url ?? '/';
    if (url === '/datasets') return sendJson(res, [manifest]);
    if (url === `/datasets/${uuid}/dsimage.zfs`) return sendBytes(req, res, bytes);
    return sendJson(res, { error: { message: 'Not found', code: 404 } }, 404);
  });
  const local = await startServer(t);
  const { log, records } = captureLog('info');
  const report = await mirrorInto(t, local, { url: `${upstream.url}/datasets`, type: 'dsapi' }, {}, log).run();
  t.is(count(report, 'copied'), 1, JSON.stringify(report.results));
  t.is(local.store.get(uuid)!.manifest.files[0]!.compression, 'gzip');
  t.is(records.filter((r) => /labels this file's compression wrongly/.test(String(r.msg))).length, 1);
  await assertOnlyWholeImages(t, local.serveDir);
});

/*
 * Where the requests go, as imgadm would send them (docs/protocol.md §1.2): an
 * IMGAPI under a path prefix with ?channel= on every request, Basic
 * credentials from the URL's userinfo that are never recorded, and DSAPI
 * URLs with or without the /datasets suffix.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { failed } from '../../src/mirror/report.js';
import { Upstream } from '../../src/mirror/upstream.js';
import { startServer } from '../helpers/server.js';
import { dsapidImgapiImage, imgapiHandler, mirrorInto, standIn } from './kit.js';

test('an IMGAPI under a prefix, with a channel and credentials in the URL', async (t) => {
  const image = dsapidImgapiImage({ name: 'chan' }, 128);
  (image.manifest.files as Record<string, unknown>[])[0]!.dataset_guid = '13523958443296387226';
  const inner = imgapiHandler([image]);
  const upstream = await standIn(t, (req, res) => {
    if (!req.url?.startsWith('/prefix/')) {
      res.writeHead(404).end();
      return;
    }
    req.url = req.url.slice('/prefix'.length);
    return inner(req, res);
  });
  const local = await startServer(t);
  const url = `http://mirror%40ops:s3cr%3At@127.0.0.1:${upstream.port}/prefix/?channel=dev`;
  const report = await mirrorInto(t, local, { url, type: 'imgapi' }).run();
  t.false(failed(report), JSON.stringify({ error: report.error, results: report.results }));
  t.deepEqual(upstream.requests.map((r) => r.url), [
    '/prefix/images?channel=dev',
    `/prefix/images/${String(image.manifest.uuid)}/file?channel=dev`,
  ]);
  const basic = `Basic ${Buffer.from('mirror@ops:s3cr:t').toString('base64')}`;
  t.true(upstream.requests.every((r) => r.headers.authorization === basic));
  t.true(upstream.requests.every((r) => r.headers['accept-encoding'] === undefined), 'no compression asked for');
  t.is(report.upstream, `http://127.0.0.1:${upstream.port}/prefix?channel=dev`, 'normalised, without credentials');
  const sidecar = fs.readFileSync(path.join(local.serveDir, String(image.manifest.uuid), 'server.json'), 'utf8');
  t.false(sidecar.includes('s3cr'), 'credentials are never recorded');
  t.false(JSON.stringify(report).includes('s3cr'));
  t.is(local.store.get(String(image.manifest.uuid))!.manifest.files[0]!.dataset_guid, '13523958443296387226', 'file facts kept');
  t.is(local.store.get(String(image.manifest.uuid))!.manifest.files[0]!.compression, 'gzip');
});

test('DSAPI and IMGAPI URLs as imgadm normalises them', (t) => {
  const uuid = '8d1c5b3e-2f4a-4c6b-8e9d-0a1b2c3d4e63';
  const ds = (url: string) => new Upstream({ url, type: 'dsapi' });
  t.is(ds('http://h').listUrl().href, 'http://h/datasets');
  t.is(ds('h:8080/datasets/').listUrl().href, 'http://h:8080/datasets');
  t.is(ds('https://h:443/datasets').manifestUrl(uuid).href, `https://h/datasets/${uuid}`);
  const file = { url: `https://elsewhere.example/datasets/${uuid}/base%20x.zfs.gz`, path: 'base x.zfs.gz' };
  t.is(ds('http://h/datasets').fileUrl(uuid, file).href, `http://h/datasets/${uuid}/base%20x.zfs.gz`, 'the path of files[0].url, on the upstream');
  t.is(ds('http://h/datasets').fileUrl(uuid, { url: `/datasets/${uuid}/f.gz` }).href, `http://h/datasets/${uuid}/f.gz`);
  t.is(ds('http://h/datasets').fileUrl(uuid, { path: 'f.gz' }).href, `http://h/datasets/${uuid}/f.gz`);
  t.is(ds('http://h/datasets').fileUrl(uuid, {}).href, `http://h/datasets/${uuid}/file`);
  const im = new Upstream({ url: 'https://images.example.org/api/', type: 'imgapi' });
  t.is(im.listUrl({ marker: uuid, limit: '1000' }).href, `https://images.example.org/api/images?marker=${uuid}&limit=1000`);
  t.is(im.fileUrl(uuid).href, `https://images.example.org/api/images/${uuid}/file`);
  t.throws(() => new Upstream({ url: 'ftp://h', type: 'imgapi' }), { message: /not an http or https URL/ });
});

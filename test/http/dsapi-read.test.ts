/*
 * The DSAPI views (docs/protocol.md §2): v1 manifests that current imgadm's own
 * upgrader (imgmanifest) turns into exactly what IMGAPI serves, absolute
 * percent-encoded file URLs that lead back to the file, and the legacy
 * serve_dir style of the original server.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { portOf, rawRequest } from '../helpers/raw-http.js';
import { OPERATOR_AUTH, startServer } from '../helpers/server.js';
import { fixture, sha1, tmpDir, v1Manifest, v2Manifest, writeImage, type ImageOnDisk } from '../helpers/images.js';
import { addImage, assertJson, assertSchema, json, request, uuidsOf } from './kit.js';

const imgmanifest = createRequire(import.meta.url)('imgmanifest') as {
  upgradeManifest(m: Record<string, unknown>): Record<string, unknown>;
};

const ZERO = '00000000-0000-0000-0000-000000000000';
type Dataset = { uuid: string; [key: string]: any };

async function dataset(t: ExecutionContext, url: string, uuid: string, headers: Record<string, string> = {}): Promise<Dataset> {
  const res = await request(`${url}/datasets/${uuid}`, { headers });
  assertJson(t, res, 200);
  const body = json(res);
  assertSchema(t, 'GET /datasets/{uuid} 200', body);
  return body;
}

async function datasets(t: ExecutionContext, url: string, query = '', headers: Record<string, string> = {}): Promise<Dataset[]> {
  const res = await request(`${url}/datasets${query}`, { headers });
  assertJson(t, res, 200);
  const body = json(res);
  assertSchema(t, 'GET /datasets 200', body);
  return body;
}

function v1Image(root: string, fileName: string, fields: Record<string, unknown> = {}, bytes = randomBytes(1500)): ImageOnDisk {
  return writeImage(root, v1Manifest(bytes, fileName, fields), { bytes, fileName });
}

/** What imgadm does with a DSAPI manifest before importing it, compared with what IMGAPI says. */
async function assertUpgradesToImgapi(t: ExecutionContext, url: string, ds: Dataset): Promise<void> {
  const upgraded = imgmanifest.upgradeManifest(structuredClone(ds));
  t.is(upgraded.state, ds.disabled ? 'disabled' : 'active');
  t.deepEqual(upgraded, json(await request(`${url}/images/${ds.uuid}`)));
}

test('a v1 manifest is served as v1: creator_uuid, no owner/v/state, numeric size, explicit compression', async (t) => {
  const root = tmpDir(t);
  const img = v1Image(root, 'orgbase-1.0.0.zfs.gz');
  const srv = await startServer(t, { serveDir: root });
  const ds = await dataset(t, srv.url, img.uuid);
  t.is(ds.creator_uuid, '5f0b7d2a-1c3e-4b8f-9e6d-7a8b9c0d1e2f');
  t.is(ds.creator_name, 'internal');
  t.is(ds.vendor_uuid, '5f0b7d2a-1c3e-4b8f-9e6d-7a8b9c0d1e2f');
  t.is(ds.cloud_name, 'internal');
  t.is(ds.urn, 'internal:internal:orgbase:1.0.0');
  for (const key of ['owner', 'v', 'state', 'public', 'activated']) t.false(key in ds, key);
  t.deepEqual(ds.files, [{
    path: 'orgbase-1.0.0.zfs.gz',
    sha1: img.sha1,
    size: 1500,
    compression: 'gzip',
    url: `${srv.url}/datasets/${img.uuid}/orgbase-1.0.0.zfs.gz`,
  }]);
  await assertUpgradesToImgapi(t, srv.url, ds);
});

test('files[].url is absolute and percent-encoded, and both its path and the URL itself fetch the file', async (t) => {
  const root = tmpDir(t);
  const spaced = v1Image(root, 'org base 1.0.0.zfs.gz');
  const unicode = addImage(root, {}, { fileName: 'bäse#1?100%.zfs.gz' });
  const srv = await startServer(t, { serveDir: root });
  const cases: [ImageOnDisk, string][] = [[spaced, 'org%20base%201.0.0.zfs.gz'], [unicode, 'b%C3%A4se%231%3F100%25.zfs.gz']];
  for (const [img, encoded] of cases) {
    const ds = await dataset(t, srv.url, img.uuid);
    const fileUrl: string = ds.files[0].url;
    t.is(fileUrl, `${srv.url}/datasets/${img.uuid}/${encoded}`);
    t.is(ds.files[0].path, img.fileName);
    t.notThrows(() => new URL(fileUrl));
    t.notRegex(fileUrl, /[\s\u0080-\uffff]/);
    const viaPath = await request(fileUrl);
    t.is(viaPath.status, 200, fileUrl);
    t.is(sha1(viaPath.body), img.sha1);
    // imgadm's dsapi client puts the whole url on the request line.
    const viaAbsolute = await rawRequest({ port: portOf(srv.url) }, `GET ${fileUrl} HTTP/1.1\r\nHost: 127.0.0.1:${portOf(srv.url)}\r\nConnection: close\r\n\r\n`);
    t.is(viaAbsolute.status, 200);
    t.is(viaAbsolute.headers['content-length'], String(img.bytes.length));
    t.true(viaAbsolute.body.equals(img.bytes));
  }
});

test('an .xz file without compression in the manifest is served with compression "xz"', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(1000);
  const m = fixture('synthesized/v1-xz-without-compression.pitfall.dsmanifest.json');
  const file = (m.files as Record<string, unknown>[])[0]!;
  Object.assign(file, { sha1: sha1(bytes), size: bytes.length });
  t.false('compression' in file);
  writeImage(root, m, { bytes, fileName: 'xzthing-1.0.0.zfs.xz' });
  const plain = v1Image(root, 'plain.zfs', {}, Buffer.concat([Buffer.alloc(1), randomBytes(99)]));
  const srv = await startServer(t, { serveDir: root });
  const ds = await dataset(t, srv.url, String(m.uuid));
  t.is(ds.files[0].compression, 'xz');
  t.is(json(await request(`${srv.url}/images/${m.uuid}`)).files[0].compression, 'xz');
  // Without the explicit field imgadm's upgrader would have said "none".
  t.is((imgmanifest.upgradeManifest(structuredClone(ds)).files as { compression: string }[])[0]!.compression, 'xz');
  await assertUpgradesToImgapi(t, srv.url, ds);
  const plainDs = await dataset(t, srv.url, plain.uuid);
  t.is(plainDs.files[0].compression, 'none');
});

test('a magic number that contradicts the label of a file written by another tool wins; a label with no magic to contradict it stands', async (t) => {
  const root = tmpDir(t);
  const gz = gzipSync(randomBytes(2000));
  // A v1 manifest whose writer derived "none" from the file name.
  const v1 = v1Image(root, 'named-plain.zfs', {}, gz);
  (v1.manifest.files as Record<string, unknown>[])[0]!.compression = 'none';
  fs.writeFileSync(path.join(v1.dir, 'manifest.json'), JSON.stringify(v1.manifest));
  const v2 = writeImage(root, v2Manifest(gz, { files: [{ sha1: sha1(gz), size: gz.length, compression: 'bzip2' }] }), { bytes: gz });
  // Random bytes have no magic number: the label stands.
  const noise = randomBytes(900);
  const plain = writeImage(root, v2Manifest(noise), { bytes: noise });
  const srv = await startServer(t, { serveDir: root });
  const ds = await dataset(t, srv.url, v1.uuid);
  t.is(ds.files[0].compression, 'gzip');
  await assertUpgradesToImgapi(t, srv.url, ds);
  t.is(json(await request(`${srv.url}/images/${v2.uuid}`)).files[0].compression, 'gzip');
  t.is(json(await request(`${srv.url}/images/${plain.uuid}`)).files[0].compression, 'gzip');
  t.is(JSON.parse(fs.readFileSync(path.join(v1.dir, 'manifest.json'), 'utf8')).files[0].compression, 'none',
    'the folder itself is left as its writer made it');
});

test('the url base is prefix + Host + suffix', async (t) => {
  const root = tmpDir(t);
  const img = addImage(root);
  const plain = await startServer(t, { serveDir: root });
  const ds = await dataset(t, plain.url, img.uuid, { host: 'images.example.net:8080' });
  t.is(ds.files[0].url, `http://images.example.net:8080/datasets/${img.uuid}/${img.fileName}`);
  const tls = await startServer(t, { serveDir: root, config: { prefix: 'https://', suffix: ':8443' } });
  const ds2 = await dataset(t, tls.url, img.uuid, { host: 'images.example.net' });
  t.is(ds2.files[0].url, `https://images.example.net:8443/datasets/${img.uuid}/${img.fileName}`);
  const listed = await datasets(t, tls.url, '', { host: 'images.example.net' });
  t.is(listed[0]!.files[0].url, ds2.files[0].url);
});

test('the listing is not cached across Host headers', async (t) => {
  const root = tmpDir(t);
  const img = addImage(root);
  const srv = await startServer(t, { serveDir: root });
  const a = await datasets(t, srv.url, '', { host: 'a.example' });
  const b = await datasets(t, srv.url, '', { host: 'b.example' });
  t.is(a[0]!.files[0].url, `http://a.example/datasets/${img.uuid}/${img.fileName}`);
  t.is(b[0]!.files[0].url, `http://b.example/datasets/${img.uuid}/${img.fileName}`);
});

test('a configured base_url wins over Host and forwarded headers', async (t) => {
  const root = tmpDir(t);
  const img = addImage(root);
  const srv = await startServer(t, { serveDir: root, config: { base_url: 'https://mirror.example.com/', trust_proxy: true } });
  const headers = { host: 'internal:8080', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' };
  const ds = await dataset(t, srv.url, img.uuid, headers);
  t.is(ds.files[0].url, `https://mirror.example.com/datasets/${img.uuid}/${img.fileName}`);
  t.is((await datasets(t, srv.url, '', headers))[0]!.files[0].url, ds.files[0].url);
  // Behind a proxy that mounts the server under a prefix.
  const prefixed = await startServer(t, { serveDir: root, config: { base_url: 'https://example.net/smartos/' } });
  t.is((await dataset(t, prefixed.url, img.uuid)).files[0].url, `https://example.net/smartos/datasets/${img.uuid}/${img.fileName}`);
});

test('X-Forwarded-Host/-Proto are used only with trust_proxy', async (t) => {
  const root = tmpDir(t);
  const img = addImage(root);
  const headers = { host: '127.0.0.1:9999', 'x-forwarded-host': 'images.example.net, proxy.internal', 'x-forwarded-proto': 'https' };
  const untrusted = await startServer(t, { serveDir: root });
  t.is((await dataset(t, untrusted.url, img.uuid, headers)).files[0].url,
    `http://127.0.0.1:9999/datasets/${img.uuid}/${img.fileName}`);
  t.is((await datasets(t, untrusted.url, '', headers))[0]!.files[0].url,
    `http://127.0.0.1:9999/datasets/${img.uuid}/${img.fileName}`);
  const trusted = await startServer(t, { serveDir: root, config: { trust_proxy: true } });
  t.is((await dataset(t, trusted.url, img.uuid, headers)).files[0].url,
    `https://images.example.net/datasets/${img.uuid}/${img.fileName}`);
  t.is((await datasets(t, trusted.url, '', headers))[0]!.files[0].url,
    `https://images.example.net/datasets/${img.uuid}/${img.fileName}`);
  const oddProto = await dataset(t, trusted.url, img.uuid, { ...headers, 'x-forwarded-proto': 'javascript' });
  t.is(oddProto.files[0].url, `http://images.example.net/datasets/${img.uuid}/${img.fileName}`);
});

test('the listing is newest first and holds only active images', async (t) => {
  const root = tmpDir(t);
  const old = v1Image(root, 'old.zfs.gz');
  const a = addImage(root);
  const b = addImage(root, { state: 'disabled', disabled: true });
  const c = addImage(root);
  addImage(root, { state: 'unactivated', published_at: undefined });
  const srv = await startServer(t, { serveDir: root });
  const list = await datasets(t, srv.url);
  t.deepEqual(uuidsOf(list), [c.uuid, a.uuid, old.uuid]);
  t.false(uuidsOf(list).includes(b.uuid));
  for (const ds of list) await assertUpgradesToImgapi(t, srv.url, ds);
});

test('ListDatasets filters name, version, os and type exactly', async (t) => {
  const root = tmpDir(t);
  const a = addImage(root, { name: 'base-64', version: '1.0.0' });
  const b = addImage(root, { name: 'base-64', version: '2.0.0', type: 'lx-dataset', os: 'linux' });
  const srv = await startServer(t, { serveDir: root });
  t.deepEqual(uuidsOf(await datasets(t, srv.url, '?name=base-64')), [b.uuid, a.uuid]);
  t.deepEqual(uuidsOf(await datasets(t, srv.url, '?name=base')), []);
  t.deepEqual(uuidsOf(await datasets(t, srv.url, '?version=1.0.0')), [a.uuid]);
  t.deepEqual(uuidsOf(await datasets(t, srv.url, '?os=linux')), [b.uuid]);
  t.deepEqual(uuidsOf(await datasets(t, srv.url, '?type=zone-dataset&name=base-64')), [a.uuid]);
});

test('a v2 image appears in DSAPI with creator_uuid = owner and upgrades back to itself', async (t) => {
  const root = tmpDir(t);
  const img = addImage(root, { tags: { role: 'os' }, requirements: { min_platform: { '7.0': '20240101T000000Z' } } });
  const priv = addImage(root, { public: false, acl: ['33333333-3333-4333-8333-333333333333'] });
  const srv = await startServer(t, { serveDir: root });
  const ds = await dataset(t, srv.url, img.uuid);
  t.is(ds.creator_uuid, img.manifest.owner);
  for (const key of ['owner', 'v', 'state', 'public', 'creator_name', 'vendor_uuid']) t.false(key in ds, key);
  t.deepEqual(ds.tags, { role: 'os' });
  t.deepEqual(ds.files, [{ ...(img.manifest.files as object[])[0], path: img.fileName, url: `${srv.url}/datasets/${img.uuid}/${img.fileName}` }]);
  await assertUpgradesToImgapi(t, srv.url, ds);
  // The upgrader asserts restricted_to_uuid never comes with public.
  // Only an authenticated caller sees a private image.
  t.is((await request(`${srv.url}/datasets/${priv.uuid}`)).status, 404);
  t.false(uuidsOf(await datasets(t, srv.url)).includes(priv.uuid));
  const pds = await dataset(t, srv.url, priv.uuid, { authorization: OPERATOR_AUTH });
  t.is(pds.restricted_to_uuid, '33333333-3333-4333-8333-333333333333');
  t.false('public' in pds);
  const upgraded = imgmanifest.upgradeManifest(structuredClone(pds));
  t.is(upgraded.public, false);
  t.deepEqual(upgraded.acl, ['33333333-3333-4333-8333-333333333333']);
});

test('image-creator, image-creator-uuid and image-vendor-uuid fill in what a v2 image lacks', async (t) => {
  const root = tmpDir(t);
  const owned = addImage(root, { owner: '44444444-4444-4444-8444-444444444444' });
  const anonymous = addImage(root, { owner: ZERO });
  const legacy = v1Image(root, 'legacy.zfs.gz');
  const config = {
    'image-creator': 'acme',
    'image-creator-uuid': '55555555-5555-4555-8555-555555555555',
    'image-vendor-uuid': '66666666-6666-4666-8666-666666666666',
  };
  const srv = await startServer(t, { serveDir: root, config });
  const o = await dataset(t, srv.url, owned.uuid);
  t.is(o.creator_uuid, '44444444-4444-4444-8444-444444444444');
  t.is(o.creator_name, 'acme');
  t.is(o.vendor_uuid, '66666666-6666-4666-8666-666666666666');
  const a = await dataset(t, srv.url, anonymous.uuid);
  t.is(a.creator_uuid, '55555555-5555-4555-8555-555555555555');
  t.is(a.creator_name, 'acme');
  // A v1 manifest's own creator and vendor are kept.
  const l = await dataset(t, srv.url, legacy.uuid);
  t.is(l.creator_uuid, '5f0b7d2a-1c3e-4b8f-9e6d-7a8b9c0d1e2f');
  t.is(l.creator_name, 'internal');
  t.is(l.vendor_uuid, '5f0b7d2a-1c3e-4b8f-9e6d-7a8b9c0d1e2f');

  // Without configuration the zero owner is still a non-empty creator_uuid.
  const bare = await startServer(t, { serveDir: root });
  const b = await dataset(t, bare.url, anonymous.uuid);
  t.is(b.creator_uuid, ZERO);
  t.false('creator_name' in b);
  t.false('vendor_uuid' in b);
  await assertUpgradesToImgapi(t, bare.url, b);
});

test('a legacy nshalman-style serve_dir is served by both APIs', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(3000);
  const m = fixture('synthesized/nshalman-import-image-style.dsmanifest.json');
  const file = (m.files as Record<string, unknown>[])[0]!;
  Object.assign(file, { sha1: sha1(bytes), size: bytes.length, url: '-automatic-' });
  writeImage(root, m, { bytes, fileName: String(file.path) });
  const other = v1Image(root, 'other-2.0.0.zfs.gz', { published_at: '2015-02-03T04:05Z' });
  const srv = await startServer(t, { serveDir: root });
  const uuid = String(m.uuid);

  const ds = await dataset(t, srv.url, uuid);
  t.is(ds.files[0].url, `${srv.url}/datasets/${uuid}/orgbase-1.0.0.zfs.gz`);
  t.is(ds.published_at, '2014-01-21T05:44:00.000Z');
  t.is(ds.creator_uuid, m.creator_uuid);
  t.is(sha1((await request(ds.files[0].url)).body), sha1(bytes));

  const image = json(await request(`${srv.url}/images/${uuid}`));
  assertSchema(t, 'GET /images/{uuid} 200', image);
  const oracle = (JSON.parse(JSON.stringify(fixture('upgrade-oracle/oracle.json'))) as { fixture: string; upgraded: Dataset }[])
    .find((e) => e.fixture === 'synthesized/nshalman-import-image-style.dsmanifest.json')!.upgraded;
  t.deepEqual(image, {
    ...oracle,
    published_at: '2014-01-21T05:44:00.000Z',
    files: [{ sha1: sha1(bytes), size: bytes.length, compression: 'gzip' }],
  });
  t.regex(image.published_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/);
  await assertUpgradesToImgapi(t, srv.url, ds);

  t.deepEqual(uuidsOf(await datasets(t, srv.url)), [other.uuid, uuid]);
  const images = json(await request(`${srv.url}/images`));
  t.deepEqual(uuidsOf(images), [uuid, other.uuid]);
  t.is(images[1].published_at, '2015-02-03T04:05:00.000Z');
});

/*
 * The DSAPI client imgadm uses for "dsapi" sources (sdc-clients@11.3.1
 * lib/dsapi.js, installed as sdc-clients-dsapi) against a real server: ping,
 * the v1 listing, GetImage, and the download, which requests files[0].url
 * verbatim (an absolute-form request target) from the source's host.
 * The client checks nothing on the download, so the test checks size and sha1.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import test, { type ExecutionContext } from 'ava';
import { sha1, tmpDir, v1Manifest, v2Manifest, writeImage, type ImageOnDisk } from '../helpers/images.js';
import { startServer } from '../helpers/server.js';
import { DSAPI, imgmanifest, noopLog, p, type DsapiClient, type Manifest, type RestLikeError } from '../helpers/legacy-clients.js';

function client(t: ExecutionContext, url: string): DsapiClient {
  const c = new DSAPI({ url, retry: false, proxy: false, log: noopLog });
  t.teardown(() => c.close());
  return c;
}

function getImage(c: DsapiClient, uuid: string): Promise<Manifest> {
  return new Promise((resolve, reject) => c.getImage(uuid, (err, image) => (err ? reject(err) : resolve(image!))));
}

/** Downloads through getImageFileStream and hashes on the way, as imgadm does. */
function download(c: DsapiClient, uuid: string): Promise<{ bytes: Buffer; sha1: string; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    c.getImageFileStream(uuid, (err, res) => {
      if (err || !res) {
        res?.resume();
        reject(err);
        return;
      }
      const hash = createHash('sha1');
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        chunks.push(chunk);
      });
      res.on('error', reject);
      res.on('end', () => resolve({ bytes: Buffer.concat(chunks), sha1: hash.digest('hex'), res }));
      res.resume();
    });
  });
}

interface Catalog {
  v1: ImageOnDisk;
  v2: ImageOnDisk;
  disabled: ImageOnDisk;
  unactivated: ImageOnDisk;
}

/** An import-image style v1 folder, a v2 image, and two images DSAPI must not list. */
function catalog(root: string): Catalog {
  const v1Bytes = randomBytes(70_000);
  const v1Name = 'orgbase-1.0.0.zfs.gz';
  const v1 = writeImage(root, v1Manifest(v1Bytes, v1Name), { bytes: v1Bytes, fileName: v1Name });
  const v2Bytes = randomBytes(90_000);
  const v2 = writeImage(root, v2Manifest(v2Bytes, { name: 'modern' }), { bytes: v2Bytes, md5: true });
  const dBytes = randomBytes(100);
  const disabled = writeImage(root, v2Manifest(dBytes, { name: 'old', state: 'disabled', disabled: true }), { bytes: dBytes });
  const uBytes = randomBytes(100);
  const unactivated = writeImage(root, v2Manifest(uBytes, { name: 'wip', state: 'unactivated' }), { bytes: uBytes });
  return { v1, v2, disabled, unactivated };
}

/** What every v1 manifest served to imgadm's dsapi source must look like. */
function assertV1Shape(t: ExecutionContext, m: Manifest, img: ImageOnDisk, base: string): void {
  const label = `${img.uuid} (${String(img.manifest.name)})`;
  t.is(m.uuid, img.uuid, label);
  for (const key of ['v', 'owner', 'state', 'public', 'activated']) t.false(key in m, `${label}: no ${key} in a v1 manifest`);
  t.is(typeof m.creator_uuid, 'string', label);
  t.not(m.creator_uuid, '', `${label}: empty creator_uuid makes imgadm fail`);
  for (const key of ['name', 'version', 'os', 'type']) t.is(m[key], img.manifest[key], `${label} ${key}`);
  t.regex(String(m.published_at), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/, label);
  const files = m.files as Record<string, unknown>[];
  t.is(files.length, 1, label);
  const f = files[0]!;
  t.is(f.sha1, img.sha1, label);
  t.is(f.size, img.bytes.length, `${label}: size is a JSON number equal to the file's`);
  t.is(f.path, img.fileName, label);
  t.is(f.url, `${base}/datasets/${img.uuid}/${encodeURIComponent(img.fileName)}`, `${label}: absolute url on this server`);
}

test('ping answers 200', async (t) => {
  const { url } = await startServer(t);
  const c = client(t, url);
  const [body, res] = await p<unknown>((cb) => c.ping(cb));
  const pong = body as Record<string, unknown>;
  t.is(res?.statusCode, 200);
  t.is(pong.ping, 'pong');
});

test('listImages returns every active image, once, in v1 shape; disabled and unactivated ones are left out', async (t) => {
  const root = tmpDir(t);
  const cat = catalog(root);
  const { url, store } = await startServer(t, { serveDir: root });
  const c = client(t, url);
  const [list, res] = await p<Manifest[]>((cb) => c.listImages(cb));
  t.is(res?.statusCode, 200);
  t.deepEqual(list.map((m) => m.uuid).sort(), [cat.v1.uuid, cat.v2.uuid].sort());
  for (const img of [cat.v1, cat.v2]) assertV1Shape(t, list.find((m) => m.uuid === img.uuid)!, img, url);

  // The import-image folder keeps its legacy identity.
  const v1 = list.find((m) => m.uuid === cat.v1.uuid)!;
  for (const key of ['creator_uuid', 'creator_name', 'vendor_uuid', 'cloud_name', 'urn']) {
    t.is(v1[key], cat.v1.manifest[key], `v1 ${key}`);
  }
  t.is(Date.parse(String(v1.published_at)), Date.parse('2014-01-21T05:44:00Z'), 'minute-precision date kept as the same instant');
  // The v2 image is presented in v1 form: its owner becomes creator_uuid.
  t.is(list.find((m) => m.uuid === cat.v2.uuid)!.creator_uuid, cat.v2.manifest.owner);

  // A larger listing: every active image exactly once (DSAPI has no paging).
  for (let i = 0; i < 300; i++) {
    const b = randomBytes(8);
    writeImage(root, v1Manifest(b, `bulk-${i}.zfs.bz2`, { name: `bulk${i}` }), { bytes: b, fileName: `bulk-${i}.zfs.bz2` });
  }
  // The rescan a poll would make, done now: this test is about the listing, not the poll.
  await store.rescan();
  const c2 = client(t, url);
  const [big] = await p<Manifest[]>((cb) => c2.listImages(cb));
  t.is(big.length, 302);
  t.is(new Set(big.map((m) => m.uuid)).size, 302);
});

test('getImage returns the same v1 manifest the listing does; upgradeManifest makes it importable', async (t) => {
  const root = tmpDir(t);
  const cat = catalog(root);
  const { url } = await startServer(t, { serveDir: root });
  const c = client(t, url);
  const [list] = await p<Manifest[]>((cb) => c.listImages(cb));
  for (const img of [cat.v1, cat.v2]) {
    const m = await getImage(c, img.uuid);
    assertV1Shape(t, m, img, url);
    t.deepEqual(m, list.find((x) => x.uuid === img.uuid));
    const up = imgmanifest.upgradeManifest(m);
    t.is(up.v, 2);
    t.is(up.state, 'active');
    t.is(up.owner, m.creator_uuid);
    t.deepEqual(up.files, [{ sha1: img.sha1, size: img.bytes.length, compression: 'gzip' }]);
  }
});

test('an incremental image names its origin in the listing and in getImage; imgmanifest\'s upgrade keeps it', async (t) => {
  const root = tmpDir(t);
  const cat = catalog(root);
  const bytes = randomBytes(500);
  const incremental = writeImage(root, v2Manifest(bytes, { name: 'modern-plus', origin: cat.v2.uuid }), { bytes });
  const { url } = await startServer(t, { serveDir: root });
  const c = client(t, url);
  const [list] = await p<Manifest[]>((cb) => c.listImages(cb));
  const listed = list.find((m) => m.uuid === incremental.uuid)!;
  const got = await getImage(c, incremental.uuid);
  for (const [how, m] of [['listImages', listed], ['getImage', got]] as const) {
    assertV1Shape(t, m, incremental, url);
    t.is(m.origin, cat.v2.uuid, how);
    const up = imgmanifest.upgradeManifest(m);
    t.is(up.v, 2, how);
    t.is(up.origin, cat.v2.uuid, `${how}: the upgrade keeps origin`);
    t.deepEqual(imgmanifest.validateMinimalManifest(up), null, how);
  }
  t.false('origin' in list.find((m) => m.uuid === cat.v2.uuid)!, 'an image without origin gets none');
});

test('getImage of a disabled image shows it as disabled; unactivated and unknown ones are 404', async (t) => {
  const root = tmpDir(t);
  const cat = catalog(root);
  const { url } = await startServer(t, { serveDir: root });
  const c = client(t, url);
  const d = await getImage(c, cat.disabled.uuid);
  t.is(d.disabled, true);
  t.is(imgmanifest.upgradeManifest(d).state, 'disabled', 'imgadm would refuse to import it, but show works');
  for (const uuid of [cat.unactivated.uuid, randomUUID()]) {
    const err = (await t.throwsAsync(getImage(c, uuid), { any: true })) as RestLikeError;
    t.is(err.statusCode, 404, uuid);
  }
});

test('getImageFileStream downloads the import-image v1 folder and the v2 image: exact bytes and sha1', async (t) => {
  const root = tmpDir(t);
  const cat = catalog(root);
  const { url } = await startServer(t, { serveDir: root });
  const c = client(t, url);
  for (const img of [cat.v1, cat.v2]) {
    const m = await getImage(c, img.uuid);
    const f = (m.files as { sha1: string; size: number }[])[0]!;
    const got = await download(c, img.uuid);
    t.is(got.res.statusCode, 200);
    t.is(got.res.headers['content-length'], String(f.size), 'imgadm requires an exact Content-Length');
    t.is(got.res.headers['content-encoding'], undefined);
    t.is(got.bytes.length, f.size);
    t.is(got.sha1, f.sha1);
    t.true(got.bytes.equals(img.bytes));
    t.is(sha1(got.bytes), img.sha1);
  }
});

test('getImageFileStream works when files[0].url names another host (absolute-form target routed by path)', async (t) => {
  const root = tmpDir(t);
  const cat = catalog(root);
  const base = 'http://images.example.invalid:8080';
  const { url } = await startServer(t, { serveDir: root, config: { base_url: base } });
  const c = client(t, url);
  for (const img of [cat.v1, cat.v2]) {
    const m = await getImage(c, img.uuid);
    assertV1Shape(t, m, img, base);
    const got = await download(c, img.uuid);
    t.is(got.res.statusCode, 200);
    t.true(got.bytes.equals(img.bytes));
    t.is(got.sha1, img.sha1);
  }
});

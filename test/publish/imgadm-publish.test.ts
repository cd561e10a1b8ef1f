/*
 * `imgadm publish -m manifest.json -f file http://alice:pw@host` replayed on
 * the wire (docs/protocol.md §1.6–1.7, Appendix A): AdminImportImage, AddImageFile
 * labelled application/json, ActivateImage with `{}`, and on failure the
 * DELETE imgadm sends before the user retries. Then the same publish through
 * the sdc-clients@13 IMGAPI client. Each published image is read back
 * through IMGAPI and DSAPI and must carry the same bytes and sha1.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { IncomingMessage } from 'node:http';
import test, { type ExecutionContext } from 'ava';
import { fixture, fixtureBytes, md5b64, sha1, tmpDir, writeImage } from '../helpers/images.js';
import { IMGAPI, noopLog, p, type ImgapiClient, type Manifest, type RestLikeError } from '../helpers/legacy-clients.js';
import {
  BASIC, PASSWORD, USER, call, dataFiles, imgadmWire, minimalManifest, parse, snapshot, writableServer, type RawResponse,
} from './kit.js';
import { assertConforms } from '../helpers/conformance.js';

const ORIGIN = 'c58161c0-2547-11e2-a75e-9fdca1940570';
const CHAIN_FILE = 'incremental-chain/file0.zfs.bz2';

/** The fixture imgadm create wrote, and its origin put on disk so the origin check passes. */
function imgadmCreateOutput(serveDir: string): { manifest: Record<string, unknown>; bytes: Buffer } {
  const bytes = fixtureBytes(CHAIN_FILE);
  writeImage(serveDir, fixture(`incremental-chain/${ORIGIN}.json`), { bytes, fileName: 'file0.zfs.bz2' });
  return { manifest: fixture('synthesized/imgadm-create-output.publish-input.imgmanifest.json'), bytes };
}

function body(t: ExecutionContext, res: RawResponse, status: number, label: string): Record<string, any> {
  t.is(res.status, status, `${label}: ${res.body.toString('utf8').slice(0, 300)}`);
  if (res.headers['content-md5'] !== undefined) t.is(res.headers['content-md5'], md5b64(res.body), `${label}: Content-MD5`);
  return JSON.parse(res.body.toString('utf8')) as Record<string, any>;
}

function get(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

/** The image as both APIs serve it, anonymously, as imgadm import would fetch it. */
async function readsBack(t: ExecutionContext, base: string, uuid: string, bytes: Buffer, compression: string): Promise<void> {
  const digest = sha1(bytes);
  const image = parse(await call(base, 'GET', `/images/${uuid}`, { auth: null }));
  t.is(image.state, 'active');
  t.is(image.files.length, 1);
  t.deepEqual(image.files[0], { sha1: digest, size: bytes.length, compression });
  t.regex(image.published_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/);

  const file = await call(base, 'GET', `/images/${uuid}/file`, { auth: null });
  t.is(file.status, 200);
  t.is(sha1(file.body), digest, 'IMGAPI file sha1');
  t.true(file.body.equals(bytes));
  t.is(file.headers['content-md5'], md5b64(bytes));

  const dataset = parse(await call(base, 'GET', `/datasets/${uuid}`, { auth: null }));
  t.is(dataset.uuid, uuid);
  t.is(dataset.files[0].sha1, digest);
  t.is(dataset.files[0].size, bytes.length);
  const viaUrl = await get(dataset.files[0].url);
  t.is(viaUrl.status, 200, `GET ${dataset.files[0].url}`);
  t.is(sha1(viaUrl.body), digest, 'DSAPI files[0].url sha1');

  const listed = parse<Record<string, any>[]>(await call(base, 'GET', '/datasets', { auth: null }));
  t.true(listed.some((d) => d.uuid === uuid), 'listed by DSAPI once active');
}

/** The three successful calls of one publish, each checked as imgadm checks it. */
async function imgadmPublish(t: ExecutionContext, port: number, manifest: Record<string, unknown>, bytes: Buffer, compression: string) {
  const uuid = String(manifest.uuid);
  const wire = imgadmWire(port);
  const imported = body(t, await wire.importImage(manifest), 200, 'import');
  t.is(imported.uuid, uuid);
  t.is(imported.state, 'unactivated');
  t.deepEqual(imported.files, []);
  t.is(imported.owner, '00000000-0000-0000-0000-000000000000', 'no owner and no image-creator-uuid: the zero owner');
  t.is(imported.public, true, 'default_public');
  t.is(imported.disabled, false);
  for (const f of ['name', 'version', 'state']) t.is(typeof imported[f], 'string', `imgadm prints ${f}`);

  const digest = sha1(bytes);
  const added = body(t, await wire.addFile(uuid, bytes, compression, digest), 200, 'file');
  // imgadm's own checks on the AddImageFile answer (§1.6 step 2)
  t.is(added.files[0].sha1, digest);
  t.is(typeof added.files[0].size, 'number');
  t.is(added.files[0].size, bytes.length);
  t.is(added.files[0].compression, compression);
  t.is(added.state, 'unactivated');

  const active = body(t, await wire.activate(uuid), 200, 'activate');
  t.is(active.state, 'active');
  t.is(typeof active.published_at, 'string');
  return active;
}

test('imgadm publish on the wire: the imgadm create fixture, with its origin present, reads back through IMGAPI and DSAPI', async (t) => {
  const serveDir = tmpDir(t);
  const { manifest, bytes } = imgadmCreateOutput(serveDir);
  const server = await writableServer(t, { serveDir });
  const active = await imgadmPublish(t, server.port, manifest, bytes, 'bzip2');
  t.is(active.origin, ORIGIN);
  t.deepEqual(active.requirements, { min_platform: { '7.0': '20240101T000000Z' } });
  await readsBack(t, server.url, String(manifest.uuid), bytes, 'bzip2');
  assertConforms(t, server.serveDir, 'when done');
  t.is(dataFiles(server.serveDir, String(manifest.uuid)).length, 1, 'one file in the image folder');
});

test('imgadm publish on the wire: the fixture without its origin field', async (t) => {
  const server = await writableServer(t);
  const { origin: _origin, ...manifest } = fixture('synthesized/imgadm-create-output.publish-input.imgmanifest.json');
  const bytes = fixtureBytes(CHAIN_FILE);
  await imgadmPublish(t, server.port, manifest, bytes, 'bzip2');
  await readsBack(t, server.url, String(manifest.uuid), bytes, 'bzip2');
});

for (const [compression, size] of [['gzip', 1], ['none', 3 * 1024 * 1024 + 17], ['xz', 65_536]] as const) {
  test(`imgadm publish on the wire: ${size} generated bytes, compression ${compression}`, async (t) => {
    const server = await writableServer(t);
    const manifest = minimalManifest({ name: `gen-${compression}` });
    const bytes = randomBytes(size);
    await imgadmPublish(t, server.port, manifest, bytes, compression);
    await readsBack(t, server.url, String(manifest.uuid), bytes, compression);
  });
}

test('imgadm publish on the wire: a wrong sha1 is refused and kept nowhere; imgadm deletes, and the retry publishes', async (t) => {
  const serveDir = tmpDir(t);
  const { manifest, bytes } = imgadmCreateOutput(serveDir);
  const server = await writableServer(t, { serveDir });
  const uuid = String(manifest.uuid);
  const wire = imgadmWire(server.port);

  body(t, await wire.importImage(manifest), 200, 'import');
  const beforeFile = snapshot(server.serveDir);
  const refused = body(t, await wire.addFile(uuid, bytes, 'bzip2', '0'.repeat(40)), 400, 'file with a wrong sha1');
  t.is(refused.code, 'Download');
  t.is(typeof refused.message, 'string');
  t.deepEqual(snapshot(server.serveDir), beforeFile, 'nothing of the file is kept');
  assertConforms(t, server.serveDir, 'staging is empty');
  t.deepEqual(dataFiles(server.serveDir, uuid), []);
  t.deepEqual(parse(await call(server.url, 'GET', `/images/${uuid}`)).files, []);

  // imgadm's rollback, whatever step failed
  const removed = await wire.remove(uuid);
  t.is(removed.status, 204);
  t.is(removed.body.length, 0);
  t.false(fs.existsSync(path.join(server.serveDir, uuid)));
  t.is((await call(server.url, 'GET', `/images/${uuid}`)).status, 404);

  // the user runs the same imgadm publish again
  await imgadmPublish(t, server.port, manifest, bytes, 'bzip2');
  await readsBack(t, server.url, uuid, bytes, 'bzip2');
});

test('imgadm publish on the wire: a failure after the file (activate refused) is rolled back by the DELETE, and the retry works', async (t) => {
  const server = await writableServer(t);
  const manifest = minimalManifest();
  const uuid = String(manifest.uuid);
  const bytes = randomBytes(4096);
  const wire = imgadmWire(server.port);
  body(t, await wire.importImage(manifest), 200, 'import');
  body(t, await wire.addFile(uuid, bytes, 'gzip', sha1(bytes)), 200, 'file');
  t.is(dataFiles(server.serveDir, uuid).length, 1);
  t.is((await wire.remove(uuid)).status, 204);
  t.false(fs.existsSync(path.join(server.serveDir, uuid)), 'the file went with the image');
  await imgadmPublish(t, server.port, manifest, bytes, 'gzip');
  await readsBack(t, server.url, uuid, bytes, 'gzip');
});

test('imgadm publish on the wire without userinfo in the URL is refused at the first call', async (t) => {
  const server = await writableServer(t);
  const manifest = minimalManifest();
  const res = await imgadmWire(server.port, null).importImage(manifest);
  t.is(res.status, 401);
  t.is(JSON.parse(res.body.toString('utf8')).code, 'UnauthorizedError');
  t.truthy(res.headers['www-authenticate']);
  t.false(fs.existsSync(path.join(server.serveDir, String(manifest.uuid))));
});

/* --- sdc-clients@13 ------------------------------------------------------ */

function client(t: ExecutionContext, url: string, auth: { user?: string; password?: string; headers?: Record<string, string> }): ImgapiClient {
  const c = IMGAPI.createClient({ url, retry: false, proxy: false, log: noopLog, ...auth });
  t.teardown(() => c.close());
  return c;
}

function getImageFile(c: ImgapiClient, uuid: string, filePath: string): Promise<IncomingMessage | undefined> {
  return new Promise((resolve, reject) => c.getImageFile(uuid, filePath, (err, res) => (err ? reject(err) : resolve(res))));
}

async function clientPublish(t: ExecutionContext, c: ImgapiClient, manifest: Record<string, unknown>, bytes: Buffer, compression: string) {
  const uuid = String(manifest.uuid);
  const dir = tmpDir(t, 'imgsrv-client-');
  const src = path.join(dir, 'upload');
  fs.writeFileSync(src, bytes);

  const [imported] = await p<Manifest>((cb) => c.adminImportImage(manifest as Manifest, {}, cb));
  t.is(imported.uuid, uuid);
  t.is(imported.state, 'unactivated');
  const [added] = await p<Manifest>((cb) => c.addImageFile({ uuid, file: src, compression, sha1: sha1(bytes) }, cb));
  const files = added.files as { sha1: string; size: number }[];
  t.is(files[0]!.sha1, sha1(bytes));
  t.is(files[0]!.size, bytes.length);
  const [active] = await p<Manifest>((cb) => c.activateImage(uuid, cb));
  t.is(active.state, 'active');

  const [got] = await p<Manifest>((cb) => c.getImage(uuid, cb));
  t.deepEqual(got.files, [{ sha1: sha1(bytes), size: bytes.length, compression }]);
  const dest = path.join(dir, 'download');
  await getImageFile(c, uuid, dest);
  const downloaded = fs.readFileSync(dest);
  t.is(sha1(downloaded), sha1(bytes), 'getImageFile bytes (the client checked Content-MD5)');
}

test('sdc-clients IMGAPI with user/password: adminImportImage, addImageFile, activateImage, then getImage and getImageFile', async (t) => {
  const serveDir = tmpDir(t);
  const { manifest, bytes } = imgadmCreateOutput(serveDir);
  const server = await writableServer(t, { serveDir });
  await clientPublish(t, client(t, server.url, { user: USER, password: PASSWORD }), manifest, bytes, 'bzip2');
  await readsBack(t, server.url, String(manifest.uuid), bytes, 'bzip2');
});

test('sdc-clients IMGAPI with an Authorization header: generated bytes', async (t) => {
  const server = await writableServer(t);
  const bytes = randomBytes(700_000);
  const manifest = minimalManifest({ uuid: randomUUID(), name: 'via-headers' });
  await clientPublish(t, client(t, server.url, { headers: { authorization: BASIC } }), manifest, bytes, 'gzip');
  await readsBack(t, server.url, String(manifest.uuid), bytes, 'gzip');
});

test('sdc-clients IMGAPI: a wrong sha1 is an error the client reports, then deleteImage and a retry succeed', async (t) => {
  const server = await writableServer(t);
  const c = client(t, server.url, { user: USER, password: PASSWORD });
  const bytes = randomBytes(10_000);
  const manifest = minimalManifest();
  const uuid = String(manifest.uuid);
  const src = path.join(tmpDir(t, 'imgsrv-client-'), 'upload');
  fs.writeFileSync(src, bytes);
  await p<Manifest>((cb) => c.adminImportImage(manifest as Manifest, {}, cb));
  // restify's errors are not instances of this realm's Error: catch by hand
  const err = await p<Manifest>((cb) => c.addImageFile({ uuid, file: src, compression: 'gzip', sha1: 'f'.repeat(40) }, cb))
    .then(() => undefined, (e: RestLikeError) => e);
  t.is(err?.statusCode, 400);
  t.is(err?.body?.code, 'Download');
  t.deepEqual(dataFiles(server.serveDir, uuid), []);
  assertConforms(t, server.serveDir, 'when done');
  await new Promise<void>((resolve, reject) => c.deleteImage(uuid, (e) => (e ? reject(e) : resolve())));
  t.false(fs.existsSync(path.join(server.serveDir, uuid)));
  await clientPublish(t, c, manifest, bytes, 'gzip');
});

test('a v1 .dsmanifest published through the same calls is upgraded first: its creator becomes the owner', async (t) => {
  const server = await writableServer(t);
  const v1 = fixture('v1-dsapi/fauxnodejs-1.4.0.dsmanifest.json');
  const uuid = String(v1.uuid);
  const bytes = randomBytes(3000);
  const wire = imgadmWire(server.port);
  const imported = body(t, await wire.importImage(v1), 200, 'import of a v1 body');
  t.is(imported.v, 2);
  t.is(imported.owner, v1.creator_uuid, 'owner from creator_uuid, not the default');
  t.is(imported.urn, v1.urn);
  t.is(imported.state, 'unactivated');
  t.deepEqual(imported.files, []);
  t.false('creator_uuid' in imported);
  body(t, await wire.addFile(uuid, bytes, 'bzip2', sha1(bytes)), 200, 'file');
  const active = body(t, await wire.activate(uuid), 200, 'activate');
  t.is(active.published_at, v1.published_at, 'the v1 published_at is kept');
  await readsBack(t, server.url, uuid, bytes, 'bzip2');
});

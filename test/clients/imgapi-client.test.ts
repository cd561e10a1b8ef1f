/*
 * The real IMGAPI client imgadm is built on (sdc-clients@13 lib/imgapi.js,
 * with restify-clients) against a real server on port 0: ping, the paging
 * ListImages does when no limit is given, filters, GetImage in every state,
 * and GetImageFile with the Content-MD5 check the client insists on.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { md5b64, sha1, tmpDir, v1Manifest, v2Manifest, writeImage } from '../helpers/images.js';
import { startServer, waitFor } from '../helpers/server.js';
import {
  getImageFile, IMGAPI, type ImgapiClient, imgapiClient, type Manifest, p, type RestLikeError,
} from '../helpers/legacy-clients.js';

const uuids = (images: Manifest[]) => images.map((m) => m.uuid).sort();

/**
 * The client's paging rule (sdc-clients listImages without a limit), driven
 * one explicit page at a time through the client's single-request path
 * (limit given): inclusive marker, drop the repeated first item, stop on a
 * short page or a marker that does not move.
 */
async function pageExplicitly(c: ImgapiClient, filters: Record<string, unknown>): Promise<{ images: Manifest[]; requests: number }> {
  const images: Manifest[] = [];
  let marker: string | undefined;
  let requests = 0;
  for (;;) {
    const query = { ...filters, limit: 1000, ...(marker ? { marker } : {}) };
    const [page] = await p<Manifest[]>((cb) => c.listImages(query, cb));
    requests++;
    const fresh = marker && page[0]?.uuid === marker ? page.slice(1) : page;
    if (fresh.length === 0) break;
    const last = fresh[fresh.length - 1]!.uuid;
    if (last === marker) break;
    images.push(...fresh);
    marker = last;
    if (page.length < 1000) break;
  }
  return { images, requests };
}

/** Audit records of finished requests to one route (written when the response closes). */
async function routeHits(logs: Record<string, unknown>[], route: string, atLeast: number): Promise<number> {
  const count = () => logs.filter((l) => l.audit === true && l.route === route).length;
  await waitFor(() => count() >= atLeast, 2000).catch(() => undefined);
  return count();
}

test('ping says imgapi: true', async (t) => {
  const { url } = await startServer(t);
  const c = imgapiClient(t, url);
  const [body, res] = await p<unknown>((cb) => c.ping(cb));
  const pong = body as Record<string, unknown>;
  t.is(res?.statusCode, 200);
  t.is(pong.imgapi, true);
  t.is(pong.ping, 'pong');
});

test('listImages without filters pages through 2,600 images, each exactly once', async (t) => {
  const root = tmpDir(t);
  const written: string[] = [];
  for (let i = 0; i < 2600; i++) {
    const bytes = randomBytes(16);
    written.push(writeImage(root, v2Manifest(bytes, { name: `img-${i}` }), { bytes, md5: true }).uuid);
  }
  const { url, logs } = await startServer(t, { serveDir: root });
  const c = imgapiClient(t, url);
  const filters = {};
  const [images, res] = await p<Manifest[]>((cb) => c.listImages(filters, cb));
  t.is(res?.statusCode, 200);
  // 2,600 ≥ 1000 on the first page, so the client asked at least once more.
  t.true(await routeHits(logs, 'ListImages', 2) >= 2, 'the client went on past the first page');
  t.deepEqual(filters, { marker: images[images.length - 1]!.uuid, limit: 1000 }, 'sdc-clients mutates the filters it is given');
  t.is(images.length, written.length, 'no image lost or repeated');
  t.is(new Set(images.map((m) => m.uuid)).size, images.length, 'no uuid twice');
  t.deepEqual(uuids(images), [...written].sort());
  // The published_at order the server pages by survives the client's merge.
  const dates = images.map((m) => Date.parse(String(m.published_at)));
  t.true(dates.every((d, i) => i === 0 || dates[i - 1]! <= d), 'ascending published_at');
});

test('listImages pages correctly when hundreds of images share one published_at', async (t) => {
  const root = tmpDir(t);
  const active: string[] = [];
  const tie = '2021-06-01T12:00:00.000Z';
  // 500 distinct dates, then 1,200 identical ones (page boundaries at 1000
  // and 2000 fall inside the tie), then 800 distinct ones again. No md5 in
  // server.json: legacy folders, so the md5 worker runs during the listing.
  for (let i = 0; i < 2500; i++) {
    const bytes = randomBytes(8);
    const fields = i >= 500 && i < 1700 ? { published_at: tie } : {};
    active.push(writeImage(root, v2Manifest(bytes, fields), { bytes }).uuid);
  }
  // Images in the tie that the default listing must leave out.
  const hidden: string[] = [];
  for (let i = 0; i < 20; i++) {
    const bytes = randomBytes(8);
    const fields = i % 2 ? { state: 'disabled', disabled: true } : { state: 'unactivated' };
    hidden.push(writeImage(root, v2Manifest(bytes, { ...fields, published_at: tie }), { bytes }).uuid);
  }
  const { url } = await startServer(t, { serveDir: root });
  const c = imgapiClient(t, url);
  const [images] = await p<Manifest[]>((cb) => c.listImages({}, cb));
  t.is(images.length, active.length);
  t.is(new Set(images.map((m) => m.uuid)).size, images.length, 'no uuid twice');
  t.deepEqual(uuids(images), [...active].sort());

  const [all] = await p<Manifest[]>((cb) => c.listImages({ state: 'all' }, cb));
  t.is(all.length, active.length + hidden.length);
  t.deepEqual(uuids(all), [...active, ...hidden].sort());

  // Explicit pages of 1000 with an inclusive marker that lands inside the tie.
  const paged = await pageExplicitly(c, {});
  t.is(paged.requests, 3, '1000 + 999 + 501 (the last page is short)');
  t.is(paged.images.length, active.length);
  t.is(new Set(paged.images.map((m) => m.uuid)).size, active.length, 'no uuid twice across pages');
  t.deepEqual(uuids(paged.images), [...active].sort());
  const pagedAll = await pageExplicitly(c, { state: 'all' });
  t.deepEqual(uuids(pagedAll.images), [...active, ...hidden].sort());
});

test('listImages with filters: name, state=all, state=disabled|unactivated, name substring', async (t) => {
  const root = tmpDir(t);
  const img = (fields: Record<string, unknown>) => {
    const bytes = randomBytes(32);
    return writeImage(root, v2Manifest(bytes, fields), { bytes, md5: true }).uuid;
  };
  const alphaActive = [img({ name: 'alpha' }), img({ name: 'alpha', version: '2.0.0' }), img({ name: 'alpha' })];
  const beta = img({ name: 'beta' });
  const alphaDisabled = img({ name: 'alpha', state: 'disabled', disabled: true });
  const alphaUnactivated = img({ name: 'alpha', state: 'unactivated', files: [] });
  const lx = img({ name: 'gamma', type: 'lx-dataset', os: 'linux' });
  const { url } = await startServer(t, { serveDir: root });
  const c = imgapiClient(t, url);
  const list = async (filters: Record<string, unknown>) => uuids((await p<Manifest[]>((cb) => c.listImages(filters, cb)))[0]);

  t.deepEqual(await list({ name: 'alpha' }), [...alphaActive].sort());
  t.deepEqual(await list({}), [...alphaActive, beta, lx].sort());
  t.deepEqual(await list({ state: 'all' }), [...alphaActive, beta, alphaDisabled, alphaUnactivated, lx].sort());
  t.deepEqual(await list({ name: 'alpha', state: 'all' }), [...alphaActive, alphaDisabled, alphaUnactivated].sort());
  t.deepEqual(await list({ state: 'disabled' }), [alphaDisabled]);
  t.deepEqual(await list({ state: 'unactivated' }), [alphaUnactivated]);
  t.deepEqual(await list({ name: 'alpha', version: '2.0.0' }), [alphaActive[1]!]);
  t.deepEqual(await list({ name: '~lph' }), [...alphaActive].sort());
  t.deepEqual(await list({ os: 'linux' }), [lx]);
  t.deepEqual(await list({ type: '!zone-dataset' }), [lx]);
  t.deepEqual(await list({ name: 'nope' }), []);
});

test('a client whose source URL carries ?channel=dev lists, gets and downloads', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(2048);
  const img = writeImage(root, v2Manifest(bytes), { bytes, md5: true });
  const { url } = await startServer(t, { serveDir: root });
  const c = imgapiClient(t, `${url}?channel=dev`);
  t.deepEqual(uuids((await p<Manifest[]>((cb) => c.listImages({}, cb)))[0]), [img.uuid]);
  t.is((await p<Manifest>((cb) => c.getImage(img.uuid, cb)))[0].uuid, img.uuid);
  const out = path.join(tmpDir(t), 'file');
  await getImageFile(c, img.uuid, out);
  t.true(fs.readFileSync(out).equals(bytes));
});

test('getImage returns active, disabled and unactivated images; 404 for an unknown one', async (t) => {
  const root = tmpDir(t);
  const mk = (fields: Record<string, unknown>) => {
    const bytes = randomBytes(64);
    return writeImage(root, v2Manifest(bytes, fields), { bytes, md5: true });
  };
  const active = mk({});
  const disabled = mk({ state: 'disabled', disabled: true });
  const unactivated = mk({ state: 'unactivated', files: [] });
  const { url } = await startServer(t, { serveDir: root });
  const c = imgapiClient(t, url);

  const [a, resA] = await p<Manifest>((cb) => c.getImage(active.uuid, cb));
  t.is(resA?.statusCode, 200);
  t.is(a.uuid, active.uuid);
  t.is(a.v, 2);
  t.is(a.state, 'active');
  t.is(a.disabled, false);
  t.deepEqual(a.files, [{ sha1: active.sha1, size: 64, compression: 'gzip' }]);

  const [d] = await p<Manifest>((cb) => c.getImage(disabled.uuid, cb));
  t.is(d.state, 'disabled');
  t.is(d.disabled, true);
  t.is((d.files as { sha1: string }[])[0]!.sha1, disabled.sha1);

  const [u] = await p<Manifest>((cb) => c.getImage(unactivated.uuid, cb));
  t.is(u.state, 'unactivated');
  t.deepEqual(u.files, []);

  const err = (await t.throwsAsync(p<Manifest>((cb) => c.getImage(randomUUID(), cb)), { any: true })) as RestLikeError;
  t.is(err.statusCode, 404);
  t.is(err.body?.code, 'ResourceNotFound');
  t.is(typeof err.body?.message, 'string');
});

test('getImage and getImageFile work for every level of an origin chain (unactivated base, disabled child)', async (t) => {
  const root = tmpDir(t);
  const mk = (fields: Record<string, unknown>) => {
    const bytes = randomBytes(10_000);
    return writeImage(root, v2Manifest(bytes, fields), { bytes, md5: true });
  };
  const base = mk({ name: 'base', state: 'unactivated' });
  const child = mk({ name: 'child', origin: base.uuid, state: 'disabled', disabled: true });
  const top = mk({ name: 'top', origin: child.uuid });
  const { url } = await startServer(t, { serveDir: root });
  const c = imgapiClient(t, url);
  const seen: string[] = [];
  for (let uuid: string | undefined = top.uuid; uuid !== undefined && seen.length < 10;) {
    const [m] = await p<Manifest>((cb) => c.getImage(uuid!, cb));
    seen.push(m.uuid);
    uuid = typeof m.origin === 'string' ? m.origin : undefined;
  }
  t.deepEqual(seen, [top.uuid, child.uuid, base.uuid]);
  for (const img of [base, child, top]) {
    const out = path.join(tmpDir(t), 'download');
    const res = await getImageFile(c, img.uuid, out);
    t.is(res?.statusCode, 200, String(img.manifest.name));
    t.is(sha1(fs.readFileSync(out)), img.sha1, String(img.manifest.name));
  }
});

test('getImageFile downloads an image whose server.json records the md5: bytes, sha1 and Content-MD5 agree', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(300_000);
  const img = writeImage(root, v2Manifest(bytes), { bytes, md5: true });
  const { url } = await startServer(t, { serveDir: root });
  const c = imgapiClient(t, url);
  const out = path.join(tmpDir(t), 'download');
  const res = await getImageFile(c, img.uuid, out);
  t.is(res?.statusCode, 200);
  t.is(res?.headers['content-md5'], md5b64(bytes));
  t.is(res?.headers['content-length'], String(bytes.length));
  const got = fs.readFileSync(out);
  t.true(got.equals(bytes));
  t.is(sha1(got), img.sha1);
});

test('getImageFile reports a ChecksumError when server.json records a wrong md5', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(4096);
  const img = writeImage(root, v2Manifest(bytes), { bytes });
  // A well-formed md5 of other bytes: the server passes it on, the client must object.
  const wrong = md5b64(randomBytes(16));
  fs.writeFileSync(path.join(img.dir, 'server.json'), JSON.stringify({ files: [{ name: img.fileName, md5: wrong }] }));
  const { url } = await startServer(t, { serveDir: root });
  const c = imgapiClient(t, url);
  const out = path.join(tmpDir(t), 'download');
  const err = (await t.throwsAsync(getImageFile(c, img.uuid, out), { any: true })) as RestLikeError;
  t.is(err.code, 'ChecksumError');
  t.true(err instanceof IMGAPI.ChecksumError);
  t.true(err.message.includes(wrong), err.message);
  t.true(err.message.includes(md5b64(bytes)), err.message);
  // The bytes themselves arrived intact; only the header lied.
  t.true(fs.readFileSync(out).equals(bytes));
});

/**
 * Waits until HEAD /images/:uuid/file carries a Content-MD5. getImageFile
 * must not be called before: without the header sdc-clients throws an
 * uncaught AssertionError inside a stream handler and takes the process down.
 */
async function waitForContentMd5(url: string, uuid: string): Promise<string> {
  let md5: string | null = null;
  await waitFor(async () => {
    const res = await fetch(`${url}/images/${uuid}/file`, { method: 'HEAD' });
    md5 = res.status === 200 ? res.headers.get('content-md5') : null;
    return md5 !== null;
  }, 10_000);
  return md5!;
}

test('a legacy v1 image folder (no server.json) gets a Content-MD5 in the background and then downloads through getImageFile', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(200_000);
  const name = 'orgbase-1.0.0.zfs.gz';
  const img = writeImage(root, v1Manifest(bytes, name), { bytes, fileName: name });
  t.false(fs.existsSync(path.join(img.dir, 'server.json')), 'the folder is as import-image left it');
  const { url } = await startServer(t, { serveDir: root });
  const md5 = await waitForContentMd5(url, img.uuid);
  t.is(md5, md5b64(bytes));
  const c = imgapiClient(t, url);
  const out = path.join(tmpDir(t), 'download');
  const res = await getImageFile(c, img.uuid, out);
  t.is(res?.headers['content-md5'], md5b64(bytes));
  const got = fs.readFileSync(out);
  t.true(got.equals(bytes));
  t.is(sha1(got), img.sha1);
});

test('a v2 image whose server.json names the file but records no md5 also gets a Content-MD5 and downloads', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(50_000);
  const img = writeImage(root, v2Manifest(bytes), { bytes });
  const { url } = await startServer(t, { serveDir: root });
  t.is(await waitForContentMd5(url, img.uuid), md5b64(bytes));
  const c = imgapiClient(t, url);
  const out = path.join(tmpDir(t), 'download');
  await getImageFile(c, img.uuid, out);
  t.true(fs.readFileSync(out).equals(bytes));
});

test('getImageFile of an unknown image is a 404 and writes no file', async (t) => {
  const { url } = await startServer(t);
  const c = imgapiClient(t, url);
  const out = path.join(tmpDir(t), 'download');
  const err = (await t.throwsAsync(getImageFile(c, randomUUID(), out), { any: true })) as RestLikeError;
  t.is(err.statusCode, 404);
  t.is(err.body?.code, 'ResourceNotFound');
  t.false(fs.existsSync(out));
});

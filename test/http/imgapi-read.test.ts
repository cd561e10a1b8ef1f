/*
 * Ping and GetImage (docs/protocol.md §3.3, §3.5): an image in any state is
 * served; anything the server does not have, including ids that are not
 * lowercase UUIDs, is a 404 ResourceNotFound, because imgadm gives up on a
 * source that answers any other 4xx.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { OPERATOR_AUTH, startServer } from '../helpers/server.js';
import { fixture, fixtureBytes, tmpDir, writeImage } from '../helpers/images.js';
import { addImage, assertApiError, assertJson, assertSchema, json, request } from './kit.js';

test('GET /ping says imgapi: true', async (t) => {
  const { url } = await startServer(t);
  const res = await request(`${url}/ping`, { headers: { 'accept-version': '~2' } });
  assertJson(t, res, 200);
  const body = json(res);
  t.deepEqual(body, { ping: 'pong', version: '0.1.0', imgapi: true });
  assertSchema(t, 'GET /ping 200', body);
});

test('GetImage serves an image in every state, without internal fields', async (t) => {
  const root = tmpDir(t);
  const images = {
    active: addImage(root, { activated: true }),
    disabled: addImage(root, { state: 'disabled', disabled: true }),
    unactivated: addImage(root, { state: 'unactivated', published_at: undefined }),
    creating: addImage(root, { state: 'creating', published_at: undefined, files: [] }),
    failed: addImage(root, { state: 'failed', published_at: undefined, files: [], error: { message: 'no space' } }),
  };
  const { url } = await startServer(t, { serveDir: root });
  for (const [state, img] of Object.entries(images)) {
    const res = await request(`${url}/images/${img.uuid}?channel=dev&account=${img.manifest.owner}`);
    assertJson(t, res, 200);
    const body = json(res);
    t.is(body.state, state);
    t.is(body.v, 2);
    t.is(body.uuid, img.uuid);
    t.false('activated' in body, state);
    assertSchema(t, 'GET /images/{uuid} 200', body);
    const { activated: _a, ...expected } = JSON.parse(JSON.stringify(img.manifest));
    t.deepEqual(body, expected, state);
  }
});

test('an image from the sdc-imgapi test data (incremental chain) is served with its origin', async (t) => {
  const root = tmpDir(t);
  const bytes = fixtureBytes('incremental-chain/file0.zfs.bz2');
  const chain = ['c58161c0-2547-11e2-a75e-9fdca1940570', '900cffef-55e3-4e7d-b7ec-ccf439a159e3'];
  for (const uuid of chain) {
    const m = fixture(`incremental-chain/${uuid}.json`);
    writeImage(root, m, { bytes, fileName: 'file0.zfs.bz2' });
  }
  const { url } = await startServer(t, { serveDir: root });
  // 900cffef… is private: only an authenticated caller sees it.
  t.is((await request(`${url}/images/${chain[1]}`)).status, 404);
  const top = json(await request(`${url}/images/${chain[1]}`, { headers: { authorization: OPERATOR_AUTH } }));
  t.is(top.origin, chain[0]);
  t.deepEqual(top.files, [{ sha1: 'f6217f583a64e1b39cea7a8700b96cbb2375bb23', size: 65, compression: 'bzip2' }]);
  assertSchema(t, 'GET /images/{uuid} 200', top);
  const base = await request(`${url}/images/${top.origin}/file`);
  t.is(base.status, 200);
  t.true(base.body.equals(bytes));
});

test('unknown, uppercase and non-UUID ids are 404 ResourceNotFound, never 400 or 422', async (t) => {
  const root = tmpDir(t);
  const img = addImage(root);
  const { url } = await startServer(t, { serveDir: root });
  const ids = [
    '5e1d0c2b-8a7f-4b6e-9d3c-2a1b0f9e8d7c',
    img.uuid.toUpperCase(),
    `${img.uuid}x`,
    `%20${img.uuid}`,
    img.uuid.replaceAll('-', ''),
    'notauuid',
    'base-64:1.0.0',
    '%7B%7D',
    '1',
  ];
  for (const id of ids) {
    for (const p of [`/images/${id}`, `/images/${id}/file`, `/datasets/${id}`, `/datasets/${id}/file`]) {
      const res = await request(`${url}${p}`);
      const body = assertApiError(t, res, 404, 'ResourceNotFound');
      assertSchema(t, p.startsWith('/images') && !p.endsWith('/file') ? 'GET /images/{uuid} 404' : 'GET /images/{uuid}/file 404', body);
    }
  }
});

test('an image directory removed from disk stops being served', async (t) => {
  const root = tmpDir(t);
  const img = addImage(root);
  const srv = await startServer(t, { serveDir: root });
  t.is((await request(`${srv.url}/images/${img.uuid}`)).status, 200);
  fs.rmSync(path.join(root, img.uuid), { recursive: true });
  await srv.store.rescan(true);
  assertApiError(t, await request(`${srv.url}/images/${img.uuid}`), 404, 'ResourceNotFound');
  assertApiError(t, await request(`${srv.url}/images/${img.uuid}/file`), 404, 'ResourceNotFound');
});

test('GetImage honours If-None-Match with its ETag', async (t) => {
  const root = tmpDir(t);
  const img = addImage(root);
  const { url } = await startServer(t, { serveDir: root });
  const first = await request(`${url}/images/${img.uuid}`);
  const etag = String(first.headers.etag);
  t.regex(etag, /^"[0-9a-f]{32}"$/);
  const again = await request(`${url}/images/${img.uuid}`, { headers: { 'if-none-match': etag } });
  t.is(again.status, 304);
  t.is(again.body.length, 0);
  const other = await request(`${url}/images/${img.uuid}`, { headers: { 'if-none-match': '"0000"' } });
  t.is(other.status, 200);
  t.true(other.body.equals(first.body));
});

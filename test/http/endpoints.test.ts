/*
 * Every read endpoint answers GET, HEAD (same headers, no body) and OPTIONS
 * (CORS preflight), carries the CORS header the fifo UI needs, and
 * tolerates the trailing slashes legacy sources.list entries use.
 */
import test from 'ava';
import { startServer, type TestServer } from '../helpers/server.js';
import { tmpDir, v1Manifest, writeImage } from '../helpers/images.js';
import { addImage, assertApiError, assertJson, json, request, stableHeaders, uuidsOf, type Res } from './kit.js';
import { randomBytes } from 'node:crypto';
import type { ExecutionContext } from 'ava';

async function serverWithImages(t: ExecutionContext) {
  const root = tmpDir(t);
  const v2 = addImage(root, {}, { fileName: 'base-64.zfs.gz', md5: true });
  const bytes = randomBytes(777);
  const v1 = writeImage(root, v1Manifest(bytes, 'orgbase-1.0.0.zfs.gz'), { bytes, fileName: 'orgbase-1.0.0.zfs.gz' });
  const srv = await startServer(t, { serveDir: root });
  return { srv, v1, v2 };
}

function routes(v2: { uuid: string; fileName: string }, v1: { uuid: string; fileName: string }): string[] {
  return [
    '/',
    '/openapi.json',
    '/ping',
    '/images',
    `/images/${v2.uuid}`,
    `/images/${v2.uuid}/file`,
    `/images/${v1.uuid}/file`,
    '/datasets',
    `/datasets/${v1.uuid}`,
    `/datasets/${v2.uuid}`,
    `/datasets/${v1.uuid}/${v1.fileName}`,
    `/datasets/${v2.uuid}/${v2.fileName}`,
    `/datasets/${v2.uuid}/file`,
  ];
}

async function getAndHead(srv: TestServer, path: string, headers: Record<string, string> = {}): Promise<[Res, Res]> {
  const get = await request(`${srv.url}${path}`, { headers });
  const head = await request(`${srv.url}${path}`, { method: 'HEAD', headers });
  return [get, head];
}

test('GET answers 200 on every endpoint and HEAD gives the same headers without a body', async (t) => {
  const { srv, v1, v2 } = await serverWithImages(t);
  for (const path of routes(v2, v1)) {
    for (const accept of ['application/json', 'text/html']) {
      const [get, head] = await getAndHead(srv, path, { accept });
      t.is(get.status, 200, `GET ${path}`);
      t.true(get.body.length > 0, `GET ${path} has a body`);
      t.is(get.headers['content-length'], String(get.body.length), `GET ${path}`);
      t.is(head.status, 200, `HEAD ${path}`);
      t.is(head.body.length, 0, `HEAD ${path} has no body`);
      t.deepEqual(stableHeaders(head), stableHeaders(get), `HEAD ${path} (Accept: ${accept})`);
    }
  }
});

test('HEAD on a file route reports the exact length and validators', async (t) => {
  const { srv, v2 } = await serverWithImages(t);
  const head = await request(`${srv.url}/images/${v2.uuid}/file`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.headers['content-length'], String(v2.bytes.length));
  t.is(head.headers['content-type'], 'application/octet-stream');
  t.is(head.headers.etag, `"${v2.sha1}"`);
  t.is(head.body.length, 0);
});

test('HEAD of an error is the error without its body', async (t) => {
  const { srv } = await serverWithImages(t);
  for (const path of ['/images/00000000-0000-4000-8000-000000000000', '/nope', '/images?limit=abc']) {
    const [get, head] = await getAndHead(srv, path);
    t.true(get.status === 404 || get.status === 422, path);
    t.is(head.status, get.status, path);
    t.is(head.body.length, 0, path);
    t.deepEqual(stableHeaders(head), stableHeaders(get), path);
  }
});

test('OPTIONS answers 204 with CORS headers on every route, known or not', async (t) => {
  const { srv, v1, v2 } = await serverWithImages(t);
  for (const path of [...routes(v2, v1), '/images/', '/datasets/', '/no/such/route']) {
    const res = await request(`${srv.url}${path}`, {
      method: 'OPTIONS',
      headers: { origin: 'https://fifo.example.net', 'access-control-request-method': 'GET' },
    });
    t.is(res.status, 204, `OPTIONS ${path}`);
    t.is(res.body.length, 0, `OPTIONS ${path}`);
    t.is(res.headers['access-control-allow-origin'], '*', `OPTIONS ${path}`);
    t.deepEqual(String(res.headers['access-control-allow-methods']).split(/,\s*/).sort(), ['GET', 'HEAD', 'OPTIONS']);
    t.regex(String(res.headers['access-control-allow-headers']), /(^|, )Accept-Version(,|$)/);
  }
});

test('GET responses carry Access-Control-Allow-Origin: * on /datasets*, /images* and /ping', async (t) => {
  const { srv, v1, v2 } = await serverWithImages(t);
  for (const path of routes(v2, v1)) {
    const res = await request(`${srv.url}${path}`, { headers: { origin: 'https://fifo.example.net' } });
    t.is(res.status, 200, path);
    t.is(res.headers['access-control-allow-origin'], '*', path);
  }
});

test('error answers keep the CORS header so a browser can read them', async (t) => {
  const { srv } = await serverWithImages(t);
  for (const path of ['/datasets/5c1d0c2b-8a7f-4b6e-9d3c-2a1b0f9e8d7c', '/images?state=bogus', '/nowhere']) {
    const res = await request(`${srv.url}${path}`, { headers: { origin: 'https://fifo.example.net' } });
    t.true(res.status >= 400, path);
    t.is(res.headers['access-control-allow-origin'], '*', path);
  }
});

test('trailing slashes are tolerated and never redirected', async (t) => {
  const { srv, v1, v2 } = await serverWithImages(t);
  const pairs: [string, string][] = [
    ['/datasets/', '/datasets'],
    ['/images/', '/images'],
    ['/images/?state=all', '/images?state=all'],
    ['/ping/', '/ping'],
    [`/images/${v2.uuid}/`, `/images/${v2.uuid}`],
    [`/datasets/${v1.uuid}/`, `/datasets/${v1.uuid}`],
  ];
  for (const [slashed, plain] of pairs) {
    const a = await request(`${srv.url}${slashed}`);
    const b = await request(`${srv.url}${plain}`);
    assertJson(t, a, 200);
    t.is(a.headers.location, undefined, slashed);
    t.deepEqual(json(a), json(b), slashed);
  }
  const list = json(await request(`${srv.url}/datasets/`));
  t.deepEqual(uuidsOf(list).sort(), [v1.uuid, v2.uuid].sort());
});

test('a wrong method on a known route is 405 with Allow, not 404', async (t) => {
  const { srv, v2 } = await serverWithImages(t);
  const cases: [string, string, string[]][] = [
    ['DELETE', '/datasets', ['GET', 'HEAD']],
    ['PUT', '/ping', ['GET', 'HEAD']],
    ['POST', `/images/${v2.uuid}/file`, ['GET', 'HEAD', 'PUT']],
    ['PATCH', '/', ['GET', 'HEAD']],
  ];
  for (const [method, path, allowed] of cases) {
    const res = await request(`${srv.url}${path}`, { method });
    assertApiError(t, res, 405, 'BadMethod');
    t.deepEqual(String(res.headers.allow).split(/,\s*/).sort(), allowed, `${method} ${path}`);
  }
});

/*
 * docs/protocol.md §8, on the wire: requests written byte for byte over a socket
 * the way imgadm's vendored restify client sends them, and the answers
 * checked the way that client reads them.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { portOf, rawRequest, type RawResponse } from '../helpers/raw-http.js';
import { startServer } from '../helpers/server.js';
import { fixture, md5b64, sha1, tmpDir, v1Manifest, writeImage } from '../helpers/images.js';
import { addImage, assertApiError, assertSchema, json, request, uuidsOf } from './kit.js';

async function setup(t: ExecutionContext) {
  const root = tmpDir(t);
  const v2 = addImage(root, {}, { fileName: 'base-64-23.4.0.zfs.gz', size: 70_000 });
  const bytes = randomBytes(5000);
  const v1 = writeImage(root, v1Manifest(bytes, 'x.zfs.gz'), { bytes, fileName: 'x.zfs.gz' });
  const srv = await startServer(t, { serveDir: root });
  const port = portOf(srv.url);
  const send = (lines: string[]) => rawRequest({ port }, `${[...lines, 'Connection: close'].join('\r\n')}\r\n\r\n`);
  return { srv, port, send, v1, v2 };
}

test('an absolute-form request target naming a foreign host is routed by its path', async (t) => {
  const { port, send, v1, v2 } = await setup(t);
  const host = `Host: 127.0.0.1:${port}`;
  const file = await send([`GET http://some-other-host.example/datasets/${v1.uuid}/x.zfs.gz HTTP/1.1`, host, 'User-Agent: imgadm/3.9.5 (node/6.17.1; OpenSSL/1.1.1t)']);
  t.is(file.status, 200);
  t.is(file.headers['content-length'], '5000');
  t.is(file.headers['content-type'], 'application/octet-stream');
  t.true(file.body.equals(v1.bytes));

  const tls = await send([`GET https://images.example.net:8443/datasets/${v2.uuid}/file HTTP/1.1`, host]);
  t.is(tls.status, 200);
  t.is(sha1(tls.body), v2.sha1);

  const manifest = await send([`GET http://some-other-host.example/datasets/${v1.uuid} HTTP/1.1`, host, 'Accept: application/json']);
  t.is(manifest.status, 200);
  const ds = JSON.parse(manifest.body.toString('utf8'));
  t.is(ds.uuid, v1.uuid);
  // The url we hand out names this server (from Host), not the foreign host of the request line.
  t.is(ds.files[0].url, `http://127.0.0.1:${port}/datasets/${v1.uuid}/x.zfs.gz`);

  const withQuery = await send([`GET http://elsewhere.example/images/${v2.uuid}/file?channel=dev HTTP/1.1`, host, 'Accept: application/json', 'Accept-Version: ~2']);
  t.is(withQuery.status, 200);
  t.is(sha1(withQuery.body), v2.sha1);
});

function assertMd5(t: ExecutionContext, res: RawResponse, what: string): void {
  t.truthy(res.headers['content-md5'], what);
  t.is(res.headers['content-md5'], md5b64(res.body), what);
  t.is(res.headers['content-length'], String(res.body.length), what);
}

test('every JSON answer, errors included, carries Content-MD5 = base64(md5(body))', async (t) => {
  const { send, v1, v2 } = await setup(t);
  const targets = [
    '/ping', '/', '/openapi.json', '/images', '/images?state=all&limit=1', `/images/${v2.uuid}`, '/datasets',
    `/datasets/${v1.uuid}`, `/datasets/${v2.uuid}`,
    // errors
    '/images/5e1d0c2b-8a7f-4b6e-9d3c-2a1b0f9e8d7c', '/images?limit=abc', '/nowhere', `/datasets/${v1.uuid}/nope`,
  ];
  for (const target of targets) {
    const res = await send([`GET ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Accept: application/json']);
    assertMd5(t, res, target);
  }
  const versioned = await send(['GET /ping HTTP/1.1', 'Host: 127.0.0.1', 'Accept-Version: ~9']);
  t.is(versioned.status, 400);
  assertMd5(t, versioned, 'InvalidVersion');
  const wrongMethod = await send(['DELETE /datasets HTTP/1.1', 'Host: 127.0.0.1', 'Content-Length: 0']);
  t.is(wrongMethod.status, 405);
  assertMd5(t, wrongMethod, 'BadMethod');
  const range = await send([`GET /images/${v2.uuid}/file HTTP/1.1`, 'Host: 127.0.0.1', 'Range: bytes=999999-']);
  t.is(range.status, 416);
  assertMd5(t, range, 'RequestedRangeNotSatisfiable');
});

test('a 304 carries no Content-MD5: there is no body for restify clients to check it against', async (t) => {
  const { srv, v1, v2 } = await setup(t);
  for (const path of ['/images', `/images/${v2.uuid}`, '/datasets', `/datasets/${v1.uuid}`, '/ping', `/images/${v2.uuid}/file`]) {
    const first = await request(`${srv.url}${path}`);
    t.is(first.status, 200, path);
    t.truthy(first.headers.etag, path);
    const again = await request(`${srv.url}${path}`, { headers: { 'if-none-match': String(first.headers.etag) } });
    t.is(again.status, 304, path);
    t.is(again.body.length, 0, path);
    t.is(again.headers.etag, first.headers.etag, path);
    t.is(again.headers['content-md5'], undefined, path);
  }
});

test('Accept-Version *, ~1, ~2, 2.0.0 or none are served; an unsatisfiable one is 400 InvalidVersion', async (t) => {
  const { srv, v2 } = await setup(t);
  for (const path of ['/ping', '/images', `/images/${v2.uuid}`, `/images/${v2.uuid}/file`, '/datasets']) {
    for (const version of [undefined, '*', '~1', '~2', '2.0.0', '>=1.0.0', '1.x']) {
      const res = await request(`${srv.url}${path}`, { headers: version ? { 'accept-version': version } : {} });
      t.is(res.status, 200, `${path} Accept-Version: ${version}`);
    }
    for (const version of ['~9', '3.x', '>2.0.0', 'not-a-range']) {
      const res = await request(`${srv.url}${path}`, { headers: { 'accept-version': version } });
      assertApiError(t, res, 400, 'InvalidVersion');
    }
  }
});

// Listings are the one exception, compressed on request: test/http/compression.test.ts.
test('Accept-Encoding: gzip never yields Content-Encoding on files, manifests or other JSON', async (t) => {
  const { send, v1, v2 } = await setup(t);
  for (const target of ['/ping', `/images/${v2.uuid}`, `/datasets/${v1.uuid}`, '/openapi.json', `/images/${v2.uuid}/file`, `/datasets/${v1.uuid}/x.zfs.gz`]) {
    const res = await send([`GET ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Accept-Encoding: gzip, deflate, br']);
    t.is(res.status, 200, target);
    t.false('content-encoding' in res.headers, target);
    t.false('transfer-encoding' in res.headers, target);
    t.is(res.headers['content-length'], String(res.body.length), target);
  }
});

test('a file download over HTTP/1.0 still has an exact Content-Length', async (t) => {
  const { send, v2 } = await setup(t);
  const res = await send([`GET /images/${v2.uuid}/file HTTP/1.0`, 'Host: 127.0.0.1']);
  t.is(res.status, 200);
  t.is(res.headers['content-length'], String(v2.bytes.length));
  t.false('transfer-encoding' in res.headers);
  t.true(res.body.equals(v2.bytes));
});

test('unknown routes are 404 ResourceNotFound in JSON', async (t) => {
  const { srv, v1, v2 } = await setup(t);
  for (const path of ['/nowhere', '/index.html', '/images/x/y/z', `/images/${v2.uuid}/file/extra`, `/datasets/${v1.uuid}/x.zfs.gz/more`,
    '/channels', '/state', '/api/datasets', '/assets/x.js', '/datasets/mirror/datasets']) {
    const res = await request(`${srv.url}${path}`);
    const body = assertApiError(t, res, 404, 'ResourceNotFound');
    t.is(body.errors, undefined);
  }
});

test('a wrong method is 405 BadMethod in JSON with an Allow header', async (t) => {
  const { send, v2 } = await setup(t);
  const cases: [string, string][] = [['DELETE', '/datasets'], ['PUT', '/ping'], ['POST', '/ping'], ['POST', `/datasets/${v2.uuid}`],
    ['PATCH', `/images/${v2.uuid}/file`], ['DELETE', '/openapi.json']];
  for (const [method, path] of cases) {
    const res = await send([`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Content-Length: 0']);
    t.is(res.status, 405, `${method} ${path}`);
    t.regex(String(res.headers['content-type']), /^application\/json/);
    const body = JSON.parse(res.body.toString('utf8'));
    t.is(body.code, 'BadMethod');
    t.is(typeof body.message, 'string');
    const allow = String(res.headers.allow).split(/,\s*/);
    t.true(allow.includes('GET') && allow.includes('HEAD'), `${method} ${path}: ${res.headers.allow}`);
    t.false(allow.includes(method), `${method} ${path}`);
  }
});

test('a keep-alive connection serves the manifest and then the file, as imgadm reuses it', async (t) => {
  const { srv, v2 } = await setup(t);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const get = (path: string) => new Promise<{ reused: boolean; body: Buffer; status: number }>((resolve, reject) => {
    const req = http.get(`${srv.url}${path}`, { agent, headers: { accept: 'application/json', 'accept-version': '~2' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ reused: req.reusedSocket, body: Buffer.concat(chunks), status: res.statusCode! }));
    });
    req.on('error', reject);
  });
  const manifest = await get(`/images/${v2.uuid}`);
  t.is(manifest.status, 200);
  const file = await get(`/images/${v2.uuid}/file`);
  t.true(file.reused);
  t.is(sha1(file.body), JSON.parse(manifest.body.toString('utf8')).files[0].sha1);
});

test('a sane x-request-id is echoed, anything else replaced', async (t) => {
  const { srv } = await setup(t);
  const echoed = await request(`${srv.url}/ping`, { headers: { 'x-request-id': 'b3a0c5e2-run-1' } });
  t.is(echoed.headers['x-request-id'], 'b3a0c5e2-run-1');
  const replaced = await request(`${srv.url}/ping`, { headers: { 'x-request-id': 'evil value; with spaces' } });
  t.regex(String(replaced.headers['x-request-id']), /^[0-9a-f-]{36}$/);
});

/** Gives a fixture real file bytes so only its deliberate flaw remains. */
function withBytes(m: Record<string, unknown>, bytes: Buffer): Record<string, unknown> {
  const files = (m.files as Record<string, unknown>[]).map((f) => ({ ...f, sha1: sha1(bytes), size: bytes.length }));
  return { ...m, files };
}

test('manifests imgadm would choke on are left out; they never break the listing', async (t) => {
  const root = tmpDir(t);
  const good = addImage(root);
  const bytes = randomBytes(1000);
  const bad = {
    'v2-docker-without-docker-id.invalid.json': withBytes(fixture('synthesized/v2-docker-without-docker-id.invalid.json'), bytes),
    'v2-size-as-string.invalid.json': fixture('synthesized/v2-size-as-string.invalid.json'),
    'v2-missing-v.invalid.json': withBytes(fixture('synthesized/v2-missing-v.invalid.json'), bytes),
    'v1-empty-creator-uuid.invalid.dsmanifest.json': withBytes(fixture('synthesized/v1-empty-creator-uuid.invalid.dsmanifest.json'), bytes),
    'v1-creator-and-owner.invalid.dsmanifest.json': withBytes(fixture('synthesized/v1-creator-and-owner.invalid.dsmanifest.json'), bytes),
  };
  for (const m of Object.values(bad)) {
    const f = (m.files as Record<string, unknown>[])[0]!;
    writeImage(root, m, { bytes, fileName: typeof f.path === 'string' ? f.path : 'file0.zfs.gz' });
  }
  const srv = await startServer(t, { serveDir: root });
  const images = json(await request(`${srv.url}/images?state=all`));
  assertSchema(t, 'GET /images 200', images);
  t.deepEqual(uuidsOf(images), [good.uuid]);
  const datasets = json(await request(`${srv.url}/datasets`));
  assertSchema(t, 'GET /datasets 200', datasets);
  t.deepEqual(uuidsOf(datasets), [good.uuid]);
  for (const m of Object.values(bad)) {
    assertApiError(t, await request(`${srv.url}/images/${m.uuid}`), 404, 'ResourceNotFound');
  }
});

test("dsapid's nanosecond dates are served in the IMGAPI date format", async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(1000);
  const m = withBytes(fixture('synthesized/dsapid-style.dsapi-item.json'), bytes);
  writeImage(root, m, { bytes, fileName: 'base-64-16.4.1.zfs.gz' });
  const srv = await startServer(t, { serveDir: root });
  const image = json(await request(`${srv.url}/images/${m.uuid}`));
  t.is(image.published_at, '2017-01-10T11:12:13.123Z');
  // dsapid's extra files[].md5 (hex) is not an IMGAPI field.
  t.deepEqual(image.files, [{ sha1: sha1(bytes), size: 1000, compression: 'gzip' }]);
  assertSchema(t, 'GET /images/{uuid} 200', image);
  const ds = json(await request(`${srv.url}/datasets/${m.uuid}`));
  t.is(ds.published_at, '2017-01-10T11:12:13.123Z');
  assertSchema(t, 'GET /datasets/{uuid} 200', ds);
});

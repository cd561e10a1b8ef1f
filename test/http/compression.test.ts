/*
 * Compressed listings (docs/protocol.md §8.4): GET /images and GET /datasets
 * go out gzip- or brotli-compressed to a client that asks with
 * Accept-Encoding, from a copy cached with the listing; imgadm, which asks
 * for nothing, gets the very bytes it always got, and image files are never
 * compressed whoever asks.
 */
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import test, { type ExecutionContext } from 'ava';
import { CachedBody, ResponseCache } from '../../src/http/json.js';
import { jsonArrayPieces } from '../../src/store/json-pieces.js';
import { md5b64, sha1, tmpDir } from '../helpers/images.js';
import { IMGAPI, noopLog, p, type Manifest } from '../helpers/legacy-clients.js';
import { portOf, rawRequest } from '../helpers/raw-http.js';
import { OPERATOR_AUTH, startServer, type TestServer } from '../helpers/server.js';
import { addImage, request, type Res } from './kit.js';

async function catalog(t: ExecutionContext, n = 30) {
  const root = tmpDir(t);
  const images = Array.from({ length: n }, (_, i) => addImage(root, {
    name: `image-${i % 5}`, version: `1.${i}.0`, description: `a listing long enough to be worth compressing, number ${i}`,
  }, { size: 2048 + i, md5: true }));
  const srv = await startServer(t, { serveDir: root });
  return { srv, images };
}

/** GET /images exactly as imgadm 3.9.5 sends it: no Accept-Encoding. */
async function imgadmList(srv: TestServer, target: string) {
  const host = new URL(srv.url).host;
  const lines = [`GET ${target} HTTP/1.1`, `Host: ${host}`, 'accept: application/json', 'user-agent: imgadm/3.9.5 (node/v6.17.1; OpenSSL/1.1.1t)',
    'accept-version: ~2', `Date: ${new Date().toUTCString()}`, 'Connection: close', '', ''];
  return rawRequest({ port: portOf(srv.url) }, lines.join('\r\n'));
}

const gunzip = (b: Buffer) => zlib.gunzipSync(b);
const unbrotli = (b: Buffer) => zlib.brotliDecompressSync(b);

/** A compressed answer: the coding asked for, its own length, MD5 and ETag, and the same JSON inside. */
function assertCompressed(t: ExecutionContext, res: Res, plain: Res, coding: string, what: string): void {
  t.is(res.status, 200, what);
  t.is(res.headers['content-encoding'], coding, what);
  t.regex(String(res.headers.vary), /accept-encoding/i, what);
  t.is(res.headers['content-length'], String(res.body.length), what);
  t.is(res.headers['content-md5'], md5b64(res.body), `${what}: Content-MD5 of the bytes sent`);
  t.true(res.body.length < plain.body.length / 2, `${what}: ${res.body.length} of ${plain.body.length} bytes`);
  const inside = coding === 'gzip' ? gunzip(res.body) : unbrotli(res.body);
  t.true(inside.equals(plain.body), `${what}: decompresses to the uncompressed listing`);
  t.not(res.headers.etag, plain.headers.etag, `${what}: an ETag of its own`);
}

const LISTINGS = ['/images', '/images?state=all', '/images?name=image-1', '/datasets'];

test('without Accept-Encoding a listing is the same uncompressed bytes; with gzip or br it is compressed', async (t) => {
  const { srv } = await catalog(t);
  for (const target of LISTINGS) {
    const raw = await imgadmList(srv, target);
    t.is(raw.status, 200, target);
    t.false('content-encoding' in raw.headers, `${target}: imgadm gets no compression`);
    t.is(raw.headers['content-length'], String(raw.body.length), target);
    t.is(raw.headers['content-md5'], md5b64(raw.body), target);
    const plain = await request(`${srv.url}${target}`);
    t.true(plain.body.equals(raw.body), `${target}: the same bytes to every client that asks for no coding`);
    t.regex(String(plain.headers.vary), /accept-encoding/i, `${target}: caches are told the listing varies`);

    const gz = await request(`${srv.url}${target}`, { headers: { 'accept-encoding': 'gzip, deflate' } });
    assertCompressed(t, gz, plain, 'gzip', `${target} gzip`);
    const br = await request(`${srv.url}${target}`, { headers: { 'accept-encoding': 'br' } });
    assertCompressed(t, br, plain, 'br', `${target} br`);
    t.not(br.headers.etag, gz.headers.etag, `${target}: each coding its own ETag`);
    const again = await request(`${srv.url}${target}`, { headers: { 'accept-encoding': 'gzip' } });
    t.true(again.body.equals(gz.body), `${target}: the cached gzip copy`);

    // Conditional GET per coding: the ETag of one coding revalidates that coding only.
    const fresh = await request(`${srv.url}${target}`, { headers: { 'accept-encoding': 'gzip', 'if-none-match': String(gz.headers.etag) } });
    t.is(fresh.status, 304, `${target}: gzip revalidated`);
    t.is(fresh.headers['content-md5'], undefined);
    const crossed = await request(`${srv.url}${target}`, { headers: { 'accept-encoding': 'gzip', 'if-none-match': String(plain.headers.etag) } });
    t.is(crossed.status, 200, `${target}: the identity ETag does not revalidate the gzip copy`);
    const plainFresh = await request(`${srv.url}${target}`, { headers: { 'if-none-match': String(plain.headers.etag) } });
    t.is(plainFresh.status, 304, `${target}: identity revalidated`);

    const head = await request(`${srv.url}${target}`, { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } });
    t.is(head.headers['content-length'], String(gz.body.length), `${target}: HEAD says the gzip length`);
  }
});

test('Accept-Encoding is negotiated: q-values, refusals and codings we do not make', async (t) => {
  const { srv } = await catalog(t);
  const plain = await request(`${srv.url}/images`);
  const codingFor = async (acceptEncoding: string) => {
    const res = await request(`${srv.url}/images`, { headers: { 'accept-encoding': acceptEncoding } });
    t.is(res.status, 200, acceptEncoding);
    if (!res.headers['content-encoding']) t.true(res.body.equals(plain.body), `${acceptEncoding}: identity bytes`);
    return res.headers['content-encoding'] ?? 'identity';
  };
  t.is(await codingFor('identity'), 'identity');
  t.is(await codingFor('deflate'), 'identity');
  t.is(await codingFor('zstd'), 'identity');
  t.is(await codingFor('gzip;q=0'), 'identity');
  t.is(await codingFor('gzip;q=0, br;q=0'), 'identity');
  t.is(await codingFor('br;q=0.5, gzip'), 'gzip');
  t.is(await codingFor('gzip;q=0.2, br;q=0.9'), 'br');
  t.is(await codingFor('gzip, deflate, br, zstd'), 'gzip', "chromium's header: its first choice");
  t.is(await codingFor('*'), 'br');
});

test('a small listing goes out uncompressed even when asked, still with Vary', async (t) => {
  const srv = await startServer(t);
  const res = await request(`${srv.url}/images`, { headers: { 'accept-encoding': 'gzip, br' } });
  t.is(res.status, 200);
  t.is(res.body.toString(), '[]');
  t.is(res.headers['content-encoding'], undefined);
  t.regex(String(res.headers.vary), /accept-encoding/i);
  t.is(res.headers['content-md5'], md5b64(res.body));
});

test('the compressed copy is dropped with the listing when the index changes', async (t) => {
  const { srv, images } = await catalog(t);
  const before = await request(`${srv.url}/images`, { headers: { 'accept-encoding': 'gzip' } });
  const gone = images[3]!;
  const del = await request(`${srv.url}/images/${gone.uuid}`, { method: 'DELETE', headers: { authorization: OPERATOR_AUTH } });
  t.is(del.status, 204);
  const after = await request(`${srv.url}/images`, { headers: { 'accept-encoding': 'gzip' } });
  t.not(after.headers.etag, before.headers.etag);
  const listed = JSON.parse(gunzip(after.body).toString('utf8')) as Manifest[];
  t.is(listed.length, images.length - 1);
  t.false(listed.some((m) => m.uuid === gone.uuid));
  const plain = await request(`${srv.url}/images`);
  t.true(gunzip(after.body).equals(plain.body));
});

test('image files are never compressed, whatever the client accepts', async (t) => {
  const root = tmpDir(t);
  // Highly compressible bytes: a server tempted to compress them would.
  const img = addImage(root, {}, { bytes: Buffer.alloc(256 * 1024, 'a'), md5: true, fileName: 'file0.zfs' });
  const srv = await startServer(t, { serveDir: root });
  for (const target of [`/images/${img.uuid}/file`, `/datasets/${img.uuid}/${img.fileName}`, `/datasets/${img.uuid}/file`]) {
    for (const acceptEncoding of ['gzip', 'br', 'gzip, deflate, br, zstd', '*']) {
      const res = await request(`${srv.url}${target}`, { headers: { 'accept-encoding': acceptEncoding } });
      const what = `${target} (${acceptEncoding})`;
      t.is(res.status, 200, what);
      t.is(res.headers['content-encoding'], undefined, what);
      t.is(res.headers['content-length'], String(img.bytes.length), what);
      t.is(sha1(res.body), img.sha1, what);
    }
  }
});

test("restify's client asking for gzip checks Content-MD5 on the bytes sent and lists every image", async (t) => {
  const { srv, images } = await catalog(t);
  const client = IMGAPI.createClient({
    url: srv.url, version: '~2', retry: false, proxy: false, log: noopLog, headers: { 'accept-encoding': 'gzip' },
  });
  t.teardown(() => client.close());
  const [listed, res] = await p<Manifest[]>((cb) => client.listImages({}, cb));
  t.is(res?.headers['content-encoding'], 'gzip', 'the client really got gzip');
  t.deepEqual(listed.map((m) => m.uuid).sort(), images.map((i) => i.uuid).sort());
});

test('the cache keeps one compressed copy per coding, and a new generation starts afresh', async (t) => {
  const cache = new ResponseCache();
  const body = cache.get(1, 'k', () => jsonArrayPieces(Array.from({ length: 200 }, (_, i) => ({ i, pad: randomBytes(4).toString('hex') }))));
  t.true(body instanceof CachedBody);
  t.is(cache.get(1, 'k', () => t.fail('built again')), body);
  const gz = body.encoded('gzip');
  t.is(body.encoded('gzip'), gz, 'the same copy, not a second compression');
  t.not(body.encoded('br'), gz);
  t.true(gunzip((await gz).buffer).equals(body.buffer));
  t.not(cache.get(2, 'k', () => []), body, 'a new generation builds anew');
});

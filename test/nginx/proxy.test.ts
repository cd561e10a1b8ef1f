/*
 * The image server behind a real nginx, configured by the example in
 * etc/nginx-image-server.conf, the server on a unix socket with trust_proxy:
 * the IMGAPI client (sdc-clients) and the DSAPI client imgadm uses, and
 * imgadm publish on the wire, all through nginx; the absolute URLs carry
 * nginx's public host:port; what the client sends in X-Forwarded-* does not
 * reach the server; nginx compresses nothing, even with gzip on in the http
 * block (the listings come as the server compressed them, and only for a
 * client that asks); chunked uploads stream through.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import type { IncomingMessage } from 'node:http';
import type { ExecutionContext } from 'ava';
import { md5b64, sha1, tmpDir, v1Manifest, v2Manifest, writeImage } from '../helpers/images.js';
import { DSAPI, IMGAPI, noopLog, p, type DsapiClient, type ImgapiClient, type Manifest } from '../helpers/legacy-clients.js';
import { waitFor } from '../helpers/server.js';
import { testNeeding } from '../helpers/system-tools.js';
import { BASIC, call, imgadmWire, jsonBody, minimalManifest, parse, writers, type RawResponse } from '../publish/kit.js';
import { EXAMPLE_CONF, NGINX, startStack } from './nginx.js';

const test = testNeeding(NGINX, 'nginx', 'nginx');

function imgapi(t: ExecutionContext, url: string): ImgapiClient {
  const c = IMGAPI.createClient({ url, version: '~2', retry: false, proxy: false, log: noopLog });
  t.teardown(() => c.close());
  return c;
}

function dsapi(t: ExecutionContext, url: string): DsapiClient {
  const c = new DSAPI({ url, retry: false, proxy: false, log: noopLog });
  t.teardown(() => c.close());
  return c;
}

/** A few images the way they sit in a real serve_dir: import-image's v1 folder, v2 with and without a recorded MD5. */
function catalog(t: ExecutionContext) {
  const serveDir = tmpDir(t);
  const v1Bytes = randomBytes(300_000);
  const v1Name = 'orgbase-1.0.0.zfs.gz';
  const v1 = writeImage(serveDir, v1Manifest(v1Bytes, v1Name), { bytes: v1Bytes, fileName: v1Name });
  const v2Bytes = randomBytes(1_000_000);
  const v2 = writeImage(serveDir, v2Manifest(v2Bytes, { name: 'modern' }), { bytes: v2Bytes, md5: true });
  return { serveDir, v1, v2 };
}

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

function json(t: ExecutionContext, res: RawResponse | { status: number; headers: Record<string, unknown>; body: Buffer }, status: number, label: string) {
  t.is(res.status, status, `${label}: ${res.body.toString('utf8').slice(0, 300)}`);
  t.is(res.headers['content-encoding'], undefined, `${label}: not compressed`);
  if (res.headers['content-md5'] !== undefined) t.is(res.headers['content-md5'], md5b64(res.body), `${label}: Content-MD5`);
  return JSON.parse(res.body.toString('utf8')) as Record<string, any>;
}

test('IMGAPI client through nginx: ping, listImages, getImage, getImageFile with its Content-MD5 check', async (t) => {
  const { serveDir, v1, v2 } = catalog(t);
  const { base } = await startStack(t, { serve_dir: serveDir });
  const c = imgapi(t, base);

  const [pong, pingRes] = await p<unknown>((cb) => c.ping(cb));
  t.is(pingRes?.statusCode, 200);
  t.is((pong as Record<string, unknown>).imgapi, true);

  const [images] = await p<Manifest[]>((cb) => c.listImages({}, cb));
  t.deepEqual(images.map((m) => m.uuid).sort(), [v1.uuid, v2.uuid].sort());

  for (const img of [v1, v2]) {
    const [m] = await p<Manifest>((cb) => c.getImage(img.uuid, cb));
    t.is(m.uuid, img.uuid);
    t.is((m.files as { sha1: string }[])[0]!.sha1, img.sha1);
  }

  // getImageFile refuses a download whose Content-MD5 does not match (a
  // ChecksumError): v2's MD5 is in server.json; v1's is computed by the
  // server in the background, after which it is sent too.
  await waitFor(async () => (await get(`${base}/images/${v1.uuid}/file`)).headers['content-md5'] !== undefined, 10_000);
  for (const img of [v2, v1]) {
    const out = path.join(tmpDir(t), 'file');
    const res = await new Promise<IncomingMessage | undefined>((resolve, reject) =>
      c.getImageFile(img.uuid, out, (err, r) => (err ? reject(err) : resolve(r))));
    t.is(res?.statusCode, 200);
    t.is(res?.headers['content-encoding'], undefined);
    t.is(Number(res?.headers['content-length']), img.bytes.length, 'exact Content-Length through nginx');
    t.is(res?.headers['content-md5'], md5b64(img.bytes));
    t.is(sha1(fs.readFileSync(out)), img.sha1);
  }
});

test('DSAPI client through nginx: files[0].url carries nginx\'s host:port, and the download through it works', async (t) => {
  const { serveDir, v1, v2 } = catalog(t);
  const { base, nginx } = await startStack(t, { serve_dir: serveDir });
  const c = dsapi(t, `${base}/datasets`);

  const [list] = await p<Manifest[]>((cb) => c.listImages(cb));
  t.deepEqual(list.map((m) => m.uuid).sort(), [v1.uuid, v2.uuid].sort());
  for (const m of list) {
    const url = String((m.files as { url: string }[])[0]!.url);
    t.true(url.startsWith(`${base}/datasets/${m.uuid}/`), `listing: ${url} is under nginx's ${base}`);
  }

  for (const img of [v1, v2]) {
    const m = await new Promise<Manifest>((resolve, reject) => c.getImage(img.uuid, (err, image) => (err ? reject(err) : resolve(image!))));
    const url = String((m.files as { url: string }[])[0]!.url);
    t.true(url.startsWith(`${base}/datasets/${img.uuid}/`), `GetImage: ${url}`);
    // The client requests files[0].url verbatim: an absolute-form request line to nginx.
    const { digest, size, res } = await new Promise<{ digest: string; size: number; res: IncomingMessage }>((resolve, reject) => {
      c.getImageFileStream(img.uuid, (err, stream) => {
        if (err || !stream) return reject(err);
        const hash = createHash('sha1');
        let n = 0;
        stream.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          n += chunk.length;
        });
        stream.on('end', () => resolve({ digest: hash.digest('hex'), size: n, res: stream }));
        stream.on('error', reject);
        // The client hands the response over paused.
        stream.resume();
      });
    });
    t.is(res.statusCode, 200);
    t.is(Number(res.headers['content-length']), img.bytes.length);
    t.is(size, img.bytes.length);
    t.is(digest, img.sha1);
  }
  // nginx logged the absolute-form request lines it routed by path.
  await waitFor(() => fs.readFileSync(nginx.accessLog, 'utf8').includes(`"GET ${base}/datasets/${v2.uuid}/`), 10_000);
  const lines = fs.readFileSync(nginx.accessLog, 'utf8').split('\n');
  for (const img of [v1, v2]) {
    const line = lines.find((l) => l.includes(`"GET ${base}/datasets/${img.uuid}/`));
    t.truthy(line, `nginx logged the absolute-form request for ${img.uuid}`);
    t.regex(line ?? '', new RegExp(`" 200 ${img.bytes.length} `), 'answered 200 with every byte');
  }
});

test('imgadm publish on the wire through nginx: import, the file labelled application/json, activate {}', async (t) => {
  const { base, nginx } = await startStack(t, { serve_dir: tmpDir(t), ...(await writers()) });
  const wire = imgadmWire(nginx.port, BASIC);
  const manifest = minimalManifest({ name: 'through-nginx' });
  const uuid = String(manifest.uuid);
  const bytes = randomBytes(3 * 1024 * 1024 + 17);
  const digest = sha1(bytes);

  const imported = json(t, await wire.importImage(manifest), 200, 'import');
  t.is(imported.state, 'unactivated');
  const added = json(t, await wire.addFile(uuid, bytes, 'gzip', digest), 200, 'file');
  t.is(added.files[0].sha1, digest);
  t.is(added.files[0].size, bytes.length);
  const active = json(t, await wire.activate(uuid), 200, 'activate');
  t.is(active.state, 'active');

  // Read back through nginx, as imgadm import would.
  const m = json(t, await get(`${base}/datasets/${uuid}`), 200, 'DSAPI GetImage');
  t.true(String(m.files[0].url).startsWith(`${base}/datasets/${uuid}/`), m.files[0].url);
  const file = await get(`${base}/images/${uuid}/file`);
  t.is(file.status, 200);
  t.is(sha1(file.body), digest);
  t.is(file.headers['content-md5'], md5b64(bytes));
  // A wrong password is refused with imgadm's 401 shape, through nginx too.
  const denied = await imgadmWire(nginx.port, `Basic ${Buffer.from('alice:wrong').toString('base64')}`).importImage(minimalManifest());
  t.is(json(t, denied, 401, 'bad password').code, 'UnauthorizedError');
});

test('nginx sets X-Forwarded-Host/-Proto itself: URLs follow the Host the client used, never its X-Forwarded-* headers', async (t) => {
  const { serveDir, v2 } = catalog(t);
  const { base } = await startStack(t, { serve_dir: serveDir });
  const url = async (headers: Record<string, string>) =>
    String(json(t, await get(`${base}/datasets/${v2.uuid}`, headers), 200, JSON.stringify(headers)).files[0].url);

  t.true((await url({})).startsWith(`${base}/datasets/`));
  // A spoofed forwarded host or scheme from the client is replaced by nginx.
  t.true((await url({ 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' })).startsWith(`${base}/datasets/`));
  // The public name and port the client asked for ($http_host keeps the port).
  t.true((await url({ host: 'images.example.net:8080' })).startsWith(`http://images.example.net:8080/datasets/${v2.uuid}/`));
  t.true((await url({ host: 'images.example.net' })).startsWith(`http://images.example.net/datasets/${v2.uuid}/`));
  // The x-request-id imgadm sends reaches the server and comes back; without one, nginx's $request_id does.
  const mine = await get(`${base}/ping`, { 'x-request-id': 'run-1234' });
  t.is(mine.headers['x-request-id'], 'run-1234');
  const made = await get(`${base}/ping`);
  t.regex(String(made.headers['x-request-id']), /^[0-9a-f]{32}$/, 'nginx made it');
});

test('nginx compresses nothing, even with gzip on, gzip_types * and gzip_proxied any in the http block', async (t) => {
  const { serveDir, v2 } = catalog(t);
  const { base } = await startStack(t, { serve_dir: serveDir });
  const ae = { 'accept-encoding': 'gzip, deflate', via: '1.1 some-proxy' };
  const file = await get(`${base}/images/${v2.uuid}/file`, ae);
  t.is(file.status, 200);
  t.is(file.headers['content-encoding'], undefined);
  t.is(file.headers['transfer-encoding'], undefined, 'not chunked');
  t.is(Number(file.headers['content-length']), v2.bytes.length);
  t.is(file.headers['content-md5'], md5b64(v2.bytes));
  t.true(file.body.equals(v2.bytes));
  const dsFile = await get(`${base}/datasets/${v2.uuid}/file`, ae);
  t.is(dsFile.headers['content-encoding'], undefined);
  t.true(dsFile.body.equals(v2.bytes));
  for (const route of [`/images/${v2.uuid}`, '/ping']) {
    json(t, await get(`${base}${route}`, ae), 200, route);
  }
  // The listings are the server's to compress (test/http/compression.test.ts), from 1 KiB on: nginx passes them as they are.
  for (const route of ['/images', '/datasets']) {
    const plain = await get(`${base}${route}`);
    json(t, plain, 200, `${route} without Accept-Encoding`);
    const res = await get(`${base}${route}`, ae);
    if (plain.body.length < 1024) {
      json(t, res, 200, route);
      continue;
    }
    t.is(res.headers['content-encoding'], 'gzip', route);
    t.is(res.headers['content-md5'], md5b64(res.body), `${route}: the server's Content-MD5 of the bytes it sent, which nginx left alone`);
    t.is(Number(res.headers['content-length']), res.body.length, `${route}: not chunked by nginx`);
    t.true(zlib.gunzipSync(res.body).equals(plain.body), route);
  }
});

test('a chunked upload (curl -T -) streams through nginx to the server', async (t) => {
  const { base } = await startStack(t, { serve_dir: tmpDir(t), ...(await writers()) });
  const manifest = minimalManifest({ name: 'chunked' });
  const uuid = String(manifest.uuid);
  t.is((await call(base, 'POST', `/images/${uuid}?action=import`, jsonBody(manifest))).status, 200);
  const bytes = randomBytes(5 * 1024 * 1024);
  const res = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
    const req = http.request(`${base}/images/${uuid}/file?compression=none`, {
      method: 'PUT',
      agent: false,
      headers: { authorization: BASIC, 'transfer-encoding': 'chunked', 'content-type': 'application/octet-stream' },
    }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => resolve({ status: r.statusCode!, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    for (let i = 0; i < bytes.length; i += 256 * 1024) req.write(bytes.subarray(i, i + 256 * 1024));
    req.end();
  });
  t.is(res.status, 200, res.body.toString());
  const image = parse({ status: res.status, headers: {}, body: res.body });
  t.is(image.files[0].sha1, sha1(bytes));
  t.is(image.files[0].size, bytes.length);
});

/** `name value;` directives of the example, outside comments. */
function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const m = /^([a-z_0-9]+)\s+(.*?);$/.exec(line);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

const seconds = (v: string) => {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(v);
  if (!m) throw new Error(`not a time: ${v}`);
  return Number(m[1]) * ({ ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 } as Record<string, number>)[m[2] ?? 's']!;
};

test('the example sets everything imgadm and multi-GB transfers need', (t) => {
  const d = directives(fs.readFileSync(EXAMPLE_CONF, 'utf8'));
  const one = (name: string) => {
    const v = d.get(name);
    t.is(v?.length, 1, `${name} set once`);
    return v?.[0] ?? '';
  };
  t.is(one('proxy_pass'), 'http://unix:/var/image-server/run/image-server.sock:');
  t.is(one('proxy_http_version'), '1.1');
  t.is(one('proxy_buffering'), 'off');
  t.is(one('proxy_request_buffering'), 'off');
  t.is(one('client_max_body_size'), '0');
  t.is(one('gzip'), 'off');
  t.true(seconds(one('proxy_read_timeout')) >= 3600);
  t.true(seconds(one('proxy_send_timeout')) >= 3600);
  t.true(seconds(one('keepalive_timeout')) >= 65, 'idle connections outlive the server\'s 65 s keep-alive');
  t.true(seconds(one('client_body_timeout')) >= 60);
  t.true(seconds(one('send_timeout')) >= 60);
  const headers = new Map((d.get('proxy_set_header') ?? []).map((v) => v.split(/\s+/) as [string, string]));
  t.is(headers.get('Host'), '$http_host');
  t.is(headers.get('X-Forwarded-Host'), '$http_host');
  t.is(headers.get('X-Forwarded-Proto'), '$scheme');
  t.is(headers.get('X-Forwarded-For'), '$proxy_add_x_forwarded_for');
  t.false(d.has('return') || d.has('rewrite'), 'no redirects: imgadm follows none');
});

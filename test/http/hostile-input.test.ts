/*
 * Hostile requests and hostile serve_dir contents. Whatever arrives, the
 * answer is a 4xx with a JSON {code, message} body, never a 500, and never
 * a byte of the secret file that sits next to serve_dir, however the path,
 * the manifest or a symlink tries to reach it.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { portOf, rawRequest, type RawResponse } from '../helpers/raw-http.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { md5b64, tmpDir, v1Manifest, v2Manifest, writeImage } from '../helpers/images.js';
import { addImage, json, request, uuidsOf } from './kit.js';

interface Hostile {
  srv: TestServer;
  parent: string;
  marker: string;
  secretPath: string;
  good: { uuid: string; bytes: Buffer; fileName: string };
  /** Images whose directory tries to reach outside serve_dir. */
  traps: Record<string, string>;
}

/** manifest.json (and server.json) without writing any file: the manifest points elsewhere. */
function writeManifestOnly(root: string, m: Record<string, unknown>, sidecar?: unknown): string {
  const dir = path.join(root, String(m.uuid));
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
  if (sidecar) fs.writeFileSync(path.join(dir, 'server.json'), JSON.stringify(sidecar));
  return String(m.uuid);
}

async function hostile(t: ExecutionContext): Promise<Hostile> {
  const parent = tmpDir(t);
  const root = path.join(parent, 'serve');
  fs.mkdirSync(root);
  const marker = `TOP-SECRET-${randomBytes(8).toString('hex')}`;
  // Same size as the images below and matching their sha1: only the path checks stand in the way.
  const secret = Buffer.alloc(1024, `${marker}\n`);
  const secretPath = path.join(parent, 'secret.zfs.gz');
  fs.writeFileSync(secretPath, secret);

  const good = addImage(root, {}, { fileName: 'good.zfs.gz' });
  const traps: Record<string, string> = {};

  const absLink = addImage(root, {}, { bytes: secret, fileName: 'link.zfs.gz' });
  fs.rmSync(path.join(absLink.dir, 'link.zfs.gz'));
  fs.symlinkSync(secretPath, path.join(absLink.dir, 'link.zfs.gz'));
  traps['file symlink, absolute target'] = absLink.uuid;

  const relLink = v1Manifest(secret, 'rel.zfs.gz');
  writeManifestOnly(root, relLink);
  fs.symlinkSync('../../secret.zfs.gz', path.join(root, String(relLink.uuid), 'rel.zfs.gz'));
  traps['file symlink, relative target'] = String(relLink.uuid);

  const noSidecar = v2Manifest(secret);
  writeManifestOnly(root, noSidecar);
  fs.symlinkSync(secretPath, path.join(root, String(noSidecar.uuid), 'only-file.zfs.gz'));
  traps['the folder\'s only file is a symlink'] = String(noSidecar.uuid);

  const outside = path.join(parent, 'outside');
  const away = writeImage(outside, v2Manifest(secret), { bytes: secret, fileName: 'away.zfs.gz' });
  fs.symlinkSync(away.dir, path.join(root, away.uuid));
  traps['image folder is a symlink'] = away.uuid;

  traps['files[].path ../../'] = writeManifestOnly(root, v1Manifest(secret, '../../secret.zfs.gz'));
  traps['files[].path absolute'] = writeManifestOnly(root, v1Manifest(secret, secretPath));
  traps['files[].path backslashes'] = writeManifestOnly(root, v1Manifest(secret, '..\\..\\secret.zfs.gz'));
  traps['files[].path manifest.json'] = writeManifestOnly(root, v1Manifest(secret, 'manifest.json'));
  traps['server.json name ../../'] = writeManifestOnly(root, v2Manifest(secret), { files: [{ name: '../../secret.zfs.gz' }] });
  traps['server.json name ..'] = writeManifestOnly(root, v2Manifest(secret), { files: [{ name: '..' }] });

  const srv = await startServer(t, { serveDir: root });
  return { srv, parent, marker, secretPath, good, traps };
}

function assertSafeError(t: ExecutionContext, h: Hostile, res: RawResponse, what: string): void {
  t.true(res.status >= 400 && res.status < 500, `${what}: status ${res.status}`);
  assertNoLeak(t, h, res, what);
  let body: { code?: unknown; message?: unknown } = {};
  t.notThrows(() => {
    body = JSON.parse(res.body.toString('utf8'));
  }, `${what}: JSON body`);
  t.is(typeof body.code, 'string', what);
  t.is(typeof body.message, 'string', what);
  t.is(res.headers['content-md5'], md5b64(res.body), what);
}

function assertNoLeak(t: ExecutionContext, h: Hostile, res: RawResponse, what: string): void {
  const everything = `${JSON.stringify(res.headers)}${res.body.toString('latin1')}`;
  t.false(everything.includes(h.marker), `${what}: leaked the secret`);
  // A request that names a server path may see it echoed; others must not learn one.
  if (!what.includes(h.parent)) t.false(everything.includes(h.parent), `${what}: leaked a server path`);
}

function get(h: Hostile, target: string, headers: string[] = ['Host: 127.0.0.1']): Promise<RawResponse> {
  return rawRequest({ port: portOf(h.srv.url) }, `GET ${target} HTTP/1.1\r\n${[...headers, 'Connection: close'].join('\r\n')}\r\n\r\n`);
}

test('the good image still serves (the traps do not spoil the index)', async (t) => {
  const h = await hostile(t);
  const res = await get(h, `/datasets/${h.good.uuid}/${h.good.fileName}`);
  t.is(res.status, 200);
  t.true(res.body.equals(h.good.bytes));
});

test('path traversal in every encoding is a JSON 4xx and never reaches a file', async (t) => {
  const h = await hostile(t);
  const g = h.good.uuid;
  const targets = [
    `/datasets/${g}/../../secret.zfs.gz`,
    `/datasets/${g}/../../../secret.zfs.gz`,
    `/datasets/${g}/..%2f..%2fsecret.zfs.gz`,
    `/datasets/${g}/..%2F..%2Fsecret.zfs.gz`,
    `/datasets/${g}/%2e%2e%2f%2e%2e%2fsecret.zfs.gz`,
    `/datasets/${g}/%2e%2e/%2e%2e/secret.zfs.gz`,
    `/datasets/${g}/%2E%2E%2F%2E%2E%2Fsecret.zfs.gz`,
    `/datasets/${g}/%252e%252e%252f%252e%252e%252fsecret.zfs.gz`,
    `/datasets/${g}/..%252f..%252fsecret.zfs.gz`,
    `/datasets/${g}/..\\..\\secret.zfs.gz`,
    `/datasets/${g}/..%5c..%5csecret.zfs.gz`,
    `/datasets/${g}/..%c0%af..%c0%afsecret.zfs.gz`,
    `/datasets/${g}/good.zfs.gz%00`,
    `/datasets/${g}/good.zfs.gz%00.txt`,
    `/datasets/${g}/%00`,
    `/datasets/${g}/..%00/secret.zfs.gz`,
    `/datasets/${g}/..`,
    `/datasets/${g}/.`,
    `/datasets/${g}/%2e%2e`,
    `/datasets/${g}/manifest.json`,
    `/datasets/${g}/server.json`,
    `/datasets/${g}/${encodeURIComponent(h.secretPath)}`,
    `/datasets/${g}/${h.secretPath}`,
    `/datasets/${g}//etc/passwd`,
    `/datasets/${g}/%2Fetc%2Fpasswd`,
    `/datasets/..%2f..%2fsecret.zfs.gz`,
    `/datasets/%2e%2e/secret.zfs.gz`,
    `/datasets/../secret.zfs.gz`,
    `/datasets/${g}%2f..%2f..%2fsecret.zfs.gz`,
    `/images/..%2f..%2fsecret.zfs.gz/file`,
    `/images/${g}%2f..%2f..%2fsecret.zfs.gz`,
    `/images/${g}/file?index=../../secret.zfs.gz`,
    `/images/${g}/file/../../secret.zfs.gz`,
    `/images/${g}/../../secret.zfs.gz`,
    '/../secret.zfs.gz',
    '/..%2fsecret.zfs.gz',
    '/%2e%2e%2fsecret.zfs.gz',
    '//etc/passwd',
    '/etc/passwd',
    h.secretPath,
    `file://${h.secretPath}`,
    `http://127.0.0.1/../../secret.zfs.gz`,
    `http://127.0.0.1/datasets/${g}/..%2f..%2fsecret.zfs.gz`,
  ];
  for (const target of targets) assertSafeError(t, h, await get(h, target), target);
});

test('invalid percent-encoding is a JSON 4xx', async (t) => {
  const h = await hostile(t);
  const g = h.good.uuid;
  for (const target of ['/%zz', '/datasets/%zz', `/datasets/${g}/%zz`, `/datasets/${g}/%`, `/datasets/${g}/%e2%82`,
    '/images/%zz', '/images/%zz/file', `/images/${g}/file%zz`, '/ping%']) {
    assertSafeError(t, h, await get(h, target), target);
  }
});

test('images whose manifest or symlinks point outside serve_dir are not served at all', async (t) => {
  const h = await hostile(t);
  for (const [what, uuid] of Object.entries(h.traps)) {
    for (const target of [`/images/${uuid}`, `/images/${uuid}/file`, `/datasets/${uuid}`, `/datasets/${uuid}/file`,
      `/datasets/${uuid}/link.zfs.gz`, `/datasets/${uuid}/rel.zfs.gz`, `/datasets/${uuid}/only-file.zfs.gz`,
      `/datasets/${uuid}/away.zfs.gz`, `/datasets/${uuid}/..%2f..%2fsecret.zfs.gz`, `/datasets/${uuid}/secret.zfs.gz`]) {
      const res = await get(h, target);
      assertSafeError(t, h, res, `${what}: ${target}`);
      t.is(res.status, 404, `${what}: ${target}`);
    }
  }
  for (const target of ['/images?state=all', '/datasets']) {
    const res = await get(h, target);
    t.is(res.status, 200);
    assertNoLeak(t, h, res, target);
    t.deepEqual(uuidsOf(JSON.parse(res.body.toString('utf8'))), [h.good.uuid], target);
  }
});

test('a file swapped for a symlink after it was indexed is not followed', async (t) => {
  const h = await hostile(t);
  const file = path.join(h.srv.serveDir, h.good.uuid, h.good.fileName);
  // Same size as the indexed file, so only the inode check can tell.
  fs.rmSync(file);
  fs.symlinkSync(h.secretPath, file);
  for (const target of [`/images/${h.good.uuid}/file`, `/datasets/${h.good.uuid}/${h.good.fileName}`]) {
    const res = await get(h, target);
    assertSafeError(t, h, res, target);
  }
});

test('an image folder swapped for a symlink after it was indexed is not followed', async (t) => {
  const h = await hostile(t);
  const dir = path.join(h.srv.serveDir, h.good.uuid);
  const elsewhere = path.join(h.parent, 'elsewhere');
  fs.mkdirSync(elsewhere);
  fs.copyFileSync(path.join(dir, 'manifest.json'), path.join(elsewhere, 'manifest.json'));
  fs.copyFileSync(h.secretPath, path.join(elsewhere, h.good.fileName));
  fs.rmSync(dir, { recursive: true });
  fs.symlinkSync(elsewhere, dir);
  const res = await get(h, `/images/${h.good.uuid}/file`);
  assertSafeError(t, h, res, 'swapped folder');
});

test('a 10 KB path and a 10 KB query string are answered, not crashed on', async (t) => {
  const h = await hostile(t);
  const long = 'a'.repeat(10 * 1024);
  for (const target of [`/${long}`, `/datasets/${long}`, `/datasets/${h.good.uuid}/${long}`, `/images/${long}/file`,
    `/datasets/${h.good.uuid}/${'..%2f'.repeat(2048)}secret.zfs.gz`, `/images?limit=${'9'.repeat(10 * 1024)}`,
    `/images/${h.good.uuid}/file?index=${long}`]) {
    assertSafeError(t, h, await get(h, target), target.slice(0, 60));
  }
  const query = await get(h, `/images?name=${long}&${'x='.repeat(1000)}`);
  t.is(query.status, 200);
  t.deepEqual(JSON.parse(query.body.toString('utf8')), []);
  const tags = await get(h, `/images?${Array.from({ length: 900 }, (_, i) => `tag.k${i}=v`).join('&')}`);
  t.is(tags.status, 200);
});

test('a junk Host header is a JSON 400 where a URL must be built from it, and harmless elsewhere', async (t) => {
  const h = await hostile(t);
  const junk = ['evil host', 'a/../b', '<script>alert(1)</script>', 'a'.repeat(5000), '127.0.0.1:99999999', '[::1', 'user@host',
    'host\tname', 'h\u00e9.example', '"quoted"', 'host:port:extra', 'example.com/path?x#y'];
  for (const host of junk) {
    for (const target of ['/datasets', `/datasets/${h.good.uuid}`]) {
      const res = await get(h, target, [`Host: ${host}`]);
      assertSafeError(t, h, res, `${target} Host: ${host.slice(0, 40)}`);
      t.is(JSON.parse(res.body.toString('utf8')).code, 'InvalidHeader');
    }
    const html = await get(h, '/', [`Host: ${host}`, 'Accept: text/html']);
    assertSafeError(t, h, html, `/ Host: ${host.slice(0, 40)}`);
    // Reads that build no URL do not care.
    t.is((await get(h, `/images/${h.good.uuid}`, [`Host: ${host}`])).status, 200);
  }
});

test('forwarded headers with junk are refused too when trusted', async (t) => {
  const root = tmpDir(t);
  const img = addImage(root);
  const srv = await startServer(t, { serveDir: root, config: { trust_proxy: true } });
  for (const fwd of ['<script>', 'a b', 'evil.example/path']) {
    const res = await request(`${srv.url}/datasets/${img.uuid}`, { headers: { 'x-forwarded-host': fwd } });
    t.is(res.status, 400, fwd);
    t.is(json(res).code, 'InvalidHeader');
  }
  const html = await request(`${srv.url}/`, { headers: { accept: 'text/html', 'x-forwarded-host': 'images.example.net' } });
  t.is(html.status, 200);
  t.true(html.body.toString('utf8').includes('imgadm sources -a http://images.example.net'));
});

test('requests that Node\'s HTTP parser rejects still get a JSON error body', async (t) => {
  const { url } = await startServer(t);
  const port = portOf(url);
  const requests = [
    'GET /datasets HTTP/1.1\r\nConnection: close\r\n\r\n',
    'GET /datasets HTTP/1.1\r\nHost: a\u0001b\r\nConnection: close\r\n\r\n',
    'GET /a b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
    `GET /datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\nConnection: close\r\n\r\n`,
  ];
  for (const req of requests) {
    const res = await rawRequest({ port }, req);
    const what = JSON.stringify(req.slice(0, 50));
    t.true(res.status >= 400 && res.status < 500, what);
    t.regex(String(res.headers['content-type']), /^application\/json/, what);
    let body: { code?: unknown; message?: unknown } = {};
    try {
      body = JSON.parse(res.body.toString('utf8'));
    } catch {
      // reported by the assertions below
    }
    t.is(typeof body.code, 'string', what);
    t.is(typeof body.message, 'string', what);
  }
});

test('no hostile request ever leaks the secret, whatever else it gets', async (t) => {
  const h = await hostile(t);
  // A sweep over every trap with every route shape; status aside, the secret must never show.
  const shapes = (u: string) => [`/images/${u}/file`, `/datasets/${u}/file`, `/images/${u}/file?index=0`, `/datasets/${u}`];
  for (const uuid of [...Object.values(h.traps), h.good.uuid]) {
    for (const target of shapes(uuid)) {
      for (const extra of [[], ['Range: bytes=0-99'], ['Range: bytes=-10'], ['If-None-Match: "x"']]) {
        assertNoLeak(t, h, await get(h, target, ['Host: 127.0.0.1', ...extra]), `${target} ${extra.join(' ')}`);
      }
    }
  }
});

/*
 * imgadm 3.9.5's requests replayed byte for byte over a raw socket, with
 * the headers the wire capture in docs/protocol.md §1.7 recorded: what an imgapi
 * source sends (accept-version ~2, x-request-id, accept: application/json
 * even on the file download, ?channel=dev), what a dsapi source sends (ping,
 * the manifest twice, then files[0].url as an absolute-form target), and
 * the origin-chain walk of an incremental import.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { md5b64, sha1, tmpDir, v1Manifest, v2Manifest, writeImage, type ImageOnDisk } from '../helpers/images.js';
import { portOf, rawRequest, type RawResponse } from '../helpers/raw-http.js';
import { startServer } from '../helpers/server.js';

const RUN_ID = randomUUID();
const USER_AGENT = 'imgadm/3.9.5 (node/v6.17.1; OpenSSL/1.1.1t)';

/** Headers of an imgapi source (§1.3, §1.7); Date and Host as restify adds them. */
function imgapiHeaders(host: string): string[] {
  return [
    `Host: ${host}`,
    `x-request-id: ${RUN_ID}`,
    'accept: application/json',
    `user-agent: ${USER_AGENT}`,
    'accept-version: ~2',
    `Date: ${new Date().toUTCString()}`,
  ];
}

/** Headers of a dsapi source on JSON calls: no accept-version, no x-request-id. */
function dsapiJsonHeaders(host: string): string[] {
  return [`Host: ${host}`, 'accept: application/json', `user-agent: ${USER_AGENT}`, `Date: ${new Date().toUTCString()}`];
}

/** The dsapi file GET carries no accept header at all. */
function dsapiFileHeaders(host: string): string[] {
  return [`Host: ${host}`, `user-agent: ${USER_AGENT}`, `Date: ${new Date().toUTCString()}`];
}

function send(url: string, target: string, headers: string[]): Promise<RawResponse> {
  const request = [`GET ${target} HTTP/1.1`, ...headers, 'Connection: close', '', ''].join('\r\n');
  return rawRequest({ port: portOf(url) }, request);
}

const hostOf = (url: string) => new URL(url).host;

/** restify checks Content-MD5 on JSON bodies when present (§1.3): it must be right or absent. */
function json<T>(t: ExecutionContext, res: RawResponse, label: string): T {
  t.is(res.status, 200, `${label}: ${res.body.toString('utf8').slice(0, 200)}`);
  if (res.headers['content-md5'] !== undefined) t.is(res.headers['content-md5'], md5b64(res.body), `${label}: Content-MD5`);
  return JSON.parse(res.body.toString('utf8')) as T;
}

/** Everything imgadm checks on a file download (§1.5 step 5), plus no encoding or chunking. */
function assertFile(t: ExecutionContext, res: RawResponse, img: ImageOnDisk, label: string): void {
  t.is(res.status, 200, label);
  t.is(res.headers['content-length'], String(img.bytes.length), `${label}: exact Content-Length`);
  t.false('transfer-encoding' in res.headers, `${label}: not chunked`);
  t.false('content-encoding' in res.headers, `${label}: not compressed`);
  t.is(res.headers['content-type'], 'application/octet-stream', label);
  t.is(res.body.length, img.bytes.length, `${label}: bytes received`);
  t.true(res.body.equals(img.bytes), `${label}: bytes`);
  t.is(createHash('sha1').update(res.body).digest('hex'), img.sha1, `${label}: sha1`);
  if (res.headers['content-md5'] !== undefined) t.is(res.headers['content-md5'], md5b64(img.bytes), `${label}: Content-MD5`);
}

test('imgapi source: GET /ping with imgadm headers says imgapi: true', async (t) => {
  const { url } = await startServer(t);
  const res = await send(url, '/ping', imgapiHeaders(hostOf(url)));
  const pong = json<Record<string, unknown>>(t, res, 'ping');
  t.is(pong.imgapi, true);
  t.is(res.headers['x-request-id'], RUN_ID, 'the request id is echoed');
});

test('imgapi source with ?channel=dev: list, get, and the file with accept: application/json', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(150_000);
  const img = writeImage(root, v2Manifest(bytes), { bytes, md5: true });
  const other = randomBytes(100);
  const otherImg = writeImage(root, v2Manifest(other, { name: 'other' }), { bytes: other });
  const { url } = await startServer(t, { serveDir: root });
  const host = hostOf(url);

  const list = json<{ uuid: string }[]>(t, await send(url, '/images?channel=dev', imgapiHeaders(host)), 'list');
  t.deepEqual(list.map((m) => m.uuid).sort(), [img.uuid, otherImg.uuid].sort());

  const m = json<Record<string, unknown>>(t, await send(url, `/images/${img.uuid}?channel=dev`, imgapiHeaders(host)), 'get');
  t.is(m.uuid, img.uuid);
  t.is(m.state, 'active');
  const f = (m.files as { sha1: string; size: number; compression: string }[])[0]!;
  t.deepEqual(f, { sha1: img.sha1, size: bytes.length, compression: 'gzip' });

  const file = await send(url, `/images/${img.uuid}/file?channel=dev`, imgapiHeaders(host));
  assertFile(t, file, img, 'file');
  t.is(file.headers['content-md5'], md5b64(bytes));
});

test('imgapi source: an unknown or malformed uuid is a 404 with string code and message, never another 4xx', async (t) => {
  const { url } = await startServer(t);
  const host = hostOf(url);
  for (const target of [`/images/${randomUUID()}?channel=dev`, '/images/NOT-A-UUID?channel=dev',
    `/images/${randomUUID().toUpperCase()}`, `/images/${randomUUID()}/file?channel=dev`]) {
    const res = await send(url, target, imgapiHeaders(host));
    t.is(res.status, 404, target);
    const body = JSON.parse(res.body.toString('utf8')) as { code: unknown; message: unknown };
    t.is(typeof body.code, 'string', target);
    t.is(typeof body.message, 'string', target);
  }
});

/** The dsapi import sequence: ping, manifest twice, then files[0].url verbatim. */
async function dsapiImport(t: ExecutionContext, url: string, img: ImageOnDisk, label: string): Promise<Record<string, unknown>> {
  const host = hostOf(url);
  t.is((await send(url, '/ping', dsapiJsonHeaders(host))).status, 200, `${label}: ping`);
  const first = await send(url, `/datasets/${img.uuid}`, dsapiJsonHeaders(host));
  const m = json<Record<string, unknown>>(t, first, `${label}: manifest`);
  const second = await send(url, `/datasets/${img.uuid}`, dsapiJsonHeaders(host));
  t.true(second.body.equals(first.body), `${label}: the second manifest GET sees the same manifest`);
  const f = (m.files as { url: string; sha1: string; size: number }[])[0]!;
  t.is(f.sha1, img.sha1, label);
  t.is(f.size, img.bytes.length, label);
  t.regex(f.url, /^https?:\/\//, `${label}: files[0].url is absolute`);
  // restify uses the url string as the request target and the source for the connection.
  const file = await send(url, f.url, dsapiFileHeaders(host));
  assertFile(t, file, img, `${label}: GET ${f.url}`);
  return m;
}

test('dsapi source: ping, manifest twice, then the absolute-form files[0].url — import-image v1 folder and v2 image', async (t) => {
  const root = tmpDir(t);
  const v1Bytes = randomBytes(120_000);
  const v1Name = 'orgbase-1.0.0.zfs.gz';
  const v1 = writeImage(root, v1Manifest(v1Bytes, v1Name), { bytes: v1Bytes, fileName: v1Name });
  const v2Bytes = randomBytes(80_000);
  const v2 = writeImage(root, v2Manifest(v2Bytes), { bytes: v2Bytes });
  const { url } = await startServer(t, { serveDir: root });
  const m1 = await dsapiImport(t, url, v1, 'v1 folder');
  t.is((m1.files as { url: string }[])[0]!.url, `${url}/datasets/${v1.uuid}/${v1Name}`);
  const m2 = await dsapiImport(t, url, v2, 'v2 image');
  t.false('v' in m2, 'v2 image presented in v1 form');
  t.is(typeof m2.creator_uuid, 'string');
});

test('dsapi source: files[0].url naming another host is still served by path', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(10_000);
  const name = 'orgbase-1.0.0.zfs.gz';
  const img = writeImage(root, v1Manifest(bytes, name), { bytes, fileName: name });
  const { url } = await startServer(t, { serveDir: root, config: { base_url: 'http://some-other-host.example' } });
  const m = await dsapiImport(t, url, img, 'other host');
  t.is((m.files as { url: string }[])[0]!.url, `http://some-other-host.example/datasets/${img.uuid}/${name}`);
});

test('dsapi source: a file name that needs percent-encoding downloads through its url verbatim', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(5_000);
  const name = 'org base+1.0.0 (final).zfs.gz';
  const img = writeImage(root, v1Manifest(bytes, name), { bytes, fileName: name });
  const { url } = await startServer(t, { serveDir: root });
  const m = await dsapiImport(t, url, img, 'encoded name');
  t.notRegex((m.files as { url: string }[])[0]!.url, /\s/, 'no raw whitespace in the url (Node clients throw on it)');
});

test('origin chain: imgadm walks base <- child <- grandchild and fetches every manifest and file, whatever its state', async (t) => {
  const root = tmpDir(t);
  const mk = (fields: Record<string, unknown>) => {
    const bytes = randomBytes(20_000);
    return writeImage(root, v2Manifest(bytes, { type: 'zone-dataset', ...fields }), { bytes });
  };
  const base = mk({ name: 'base', state: 'unactivated' });
  const child = mk({ name: 'child', origin: base.uuid, state: 'disabled', disabled: true });
  const grandchild = mk({ name: 'grandchild', origin: child.uuid });
  const { url } = await startServer(t, { serveDir: root });
  const host = hostOf(url);

  // imgadm import <grandchild>: the image itself must be active…
  const top = json<Record<string, unknown>>(t, await send(url, `/images/${grandchild.uuid}?channel=dev`, imgapiHeaders(host)), 'grandchild');
  t.is(top.state, 'active');
  // …then every origin up the chain, whose state is not checked (§1.5 step 2).
  const chain: Record<string, unknown>[] = [top];
  for (let m = top; typeof m.origin === 'string';) {
    m = json<Record<string, unknown>>(t, await send(url, `/images/${m.origin}?channel=dev`, imgapiHeaders(host)), `origin ${m.origin}`);
    chain.push(m);
    if (chain.length > 10) break;
  }
  t.deepEqual(chain.map((m) => m.uuid), [grandchild.uuid, child.uuid, base.uuid]);
  t.deepEqual(chain.map((m) => m.state), ['active', 'disabled', 'unactivated']);
  t.is(chain[1]!.origin, base.uuid);

  // Files are fetched base first (imgadm installs from the bottom up).
  const onDisk = new Map([base, child, grandchild].map((i) => [i.uuid, i]));
  for (const m of [...chain].reverse()) {
    const img = onDisk.get(String(m.uuid))!;
    const want = (m.files as { sha1: string; size: number }[])[0]!;
    t.is(want.sha1, img.sha1);
    t.is(want.size, img.bytes.length);
    const file = await send(url, `/images/${img.uuid}/file?channel=dev`, imgapiHeaders(host));
    assertFile(t, file, img, `file of ${String(m.name)} (${String(m.state)})`);
    t.is(sha1(file.body), want.sha1);
  }

  // Only the importable top of the chain is offered by `imgadm avail`.
  const avail = json<{ uuid: string }[]>(t, await send(url, '/images?channel=dev', imgapiHeaders(host)), 'avail');
  t.deepEqual(avail.map((m) => m.uuid), [grandchild.uuid]);
});

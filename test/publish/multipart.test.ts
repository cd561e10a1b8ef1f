/*
 * CreateImage from multipart/form-data, the way `curl -F manifest=@m.json
 * -F file=@f URL/images?activate=true` and a browser's FormData send it:
 * the manifest part first (as a file part or a plain field), then the file
 * part, streamed into the import transaction.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import zlib from 'node:zlib';
import http from 'node:http';
import test, { type ExecutionContext } from 'ava';
import { fixtureBytes, sha1 } from '../helpers/images.js';
import { assertApiError } from '../http/kit.js';
import {
  BASIC, call, dataFiles, manifestAndFile, minimalManifest, multipart, parse, snapshot, writableServer, type Res,
} from './kit.js';
import { assertConforms } from '../helpers/conformance.js';

const post = (base: string, form: { contentType: string; body: Buffer }, query = '') =>
  call(base, 'POST', `/images${query}`, { headers: { 'content-type': form.contentType }, body: form.body });

/** The image reads back with exactly these bytes. */
async function servesBytes(t: ExecutionContext, base: string, uuid: string, bytes: Buffer): Promise<void> {
  const file = await call(base, 'GET', `/images/${uuid}/file`);
  t.is(file.status, 200);
  t.is(sha1(file.body), sha1(bytes));
  t.is(file.body.length, bytes.length);
}

test('multipart with ?activate=true: the image is active at once, with the right sha1 and size', async (t) => {
  const server = await writableServer(t);
  const bytes = randomBytes(1_500_000);
  const res = await post(server.url, manifestAndFile(minimalManifest({ files: [{ compression: 'gzip' }] }), bytes), '?activate=true');
  t.is(res.status, 200, res.body.toString('utf8'));
  const image = parse(res);
  t.is(image.state, 'active');
  t.is(typeof image.published_at, 'string');
  t.deepEqual(image.files, [{ sha1: sha1(bytes), size: bytes.length, compression: 'gzip' }]);
  await servesBytes(t, server.url, image.uuid, bytes);
  t.true(parse<{ uuid: string }[]>(await call(server.url, 'GET', '/datasets', { auth: null })).some((d) => d.uuid === image.uuid));
  assertConforms(t, server.serveDir, 'when done');
});

test('multipart without activate: an unactivated image with its file, activated later', async (t) => {
  const server = await writableServer(t);
  const bytes = randomBytes(40_000);
  const manifest = minimalManifest();
  const res = await post(server.url, manifestAndFile(manifest, bytes));
  t.is(res.status, 200, res.body.toString('utf8'));
  const image = parse(res);
  t.is(image.uuid, manifest.uuid, 'the manifest\'s uuid is kept');
  t.is(image.state, 'unactivated');
  t.is(image.files[0].sha1, sha1(bytes));
  t.is(image.files[0].size, bytes.length);
  t.false(parse<{ uuid: string }[]>(await call(server.url, 'GET', '/images')).some((m) => m.uuid === image.uuid));
  const activated = await call(server.url, 'POST', `/images/${image.uuid}?action=activate`);
  t.is(parse(activated).state, 'active');
  await servesBytes(t, server.url, image.uuid, bytes);
});

test('multipart: a manifest without uuid gets one from the server', async (t) => {
  const server = await writableServer(t);
  const { uuid: _uuid, ...manifest } = minimalManifest();
  const bytes = randomBytes(100);
  const image = parse(await post(server.url, manifestAndFile(manifest, bytes), '?activate=true'));
  t.regex(image.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  await servesBytes(t, server.url, image.uuid, bytes);
});

test('multipart: the manifest as a plain form field (curl -F manifest=<m.json) works as well as a file part', async (t) => {
  const server = await writableServer(t);
  const bytes = randomBytes(5000);
  const form = multipart([
    { name: 'manifest', data: JSON.stringify(minimalManifest()) },
    { name: 'file', filename: 'f.zfs.gz', data: bytes },
  ]);
  const res = await post(server.url, form, '?activate=true');
  t.is(res.status, 200, res.body.toString('utf8'));
  await servesBytes(t, server.url, parse(res).uuid, bytes);
});

const MAGIC: [string, () => Buffer][] = [
  ['gzip', () => zlib.gzipSync(randomBytes(20_000))],
  ['bzip2', () => fixtureBytes('incremental-chain/file0.zfs.bz2')],
  ['xz', () => Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), randomBytes(9000)])],
  ['none', () => Buffer.concat([Buffer.from('\x00\x00\x00\x00\x00\x00\x00\x00'), randomBytes(9000)])],
];

for (const [compression, make] of MAGIC) {
  test(`multipart without a compression: ${compression} is told from the magic bytes`, async (t) => {
    const server = await writableServer(t);
    const bytes = make();
    const res = await post(server.url, manifestAndFile(minimalManifest(), bytes), '?activate=true');
    t.is(res.status, 200, res.body.toString('utf8'));
    t.deepEqual(parse(res).files, [{ sha1: sha1(bytes), size: bytes.length, compression }]);
    await servesBytes(t, server.url, parse(res).uuid, bytes);
  });
}

test('multipart: the compression named in the manifest or the query wins over the magic bytes', async (t) => {
  const server = await writableServer(t);
  const gz = zlib.gzipSync(randomBytes(1000));
  const byManifest = parse(await post(server.url, manifestAndFile(minimalManifest({ files: [{ compression: 'none' }] }), gz)));
  t.is(byManifest.files[0].compression, 'none');
  const byQuery = parse(await post(server.url, manifestAndFile(minimalManifest(), gz), '?compression=none'));
  t.is(byQuery.files[0].compression, 'none');
});

test('multipart: a file whose first chunk is tiny is still sniffed and stored whole', async (t) => {
  const server = await writableServer(t);
  const bytes = Buffer.from([0x1f, 0x8b]);
  const res = await post(server.url, manifestAndFile(minimalManifest(), bytes), '?activate=true');
  t.is(res.status, 200, res.body.toString('utf8'));
  t.deepEqual(parse(res).files, [{ sha1: sha1(bytes), size: 2, compression: 'gzip' }]);
});

test('multipart: sha1 and size in the manifest are checked against the bytes (400 Download), nothing stored', async (t) => {
  const server = await writableServer(t);
  const before = snapshot(server.serveDir);
  const bytes = randomBytes(3000);
  assertApiError(t, await post(server.url, manifestAndFile(minimalManifest({ files: [{ sha1: sha1('x'), compression: 'gzip' }] }), bytes)), 400, 'Download');
  assertApiError(t, await post(server.url, manifestAndFile(minimalManifest({ files: [{ size: 2999, compression: 'gzip' }] }), bytes)), 400, 'Download');
  t.deepEqual(snapshot(server.serveDir), before);
  assertConforms(t, server.serveDir, 'when done');
  const good = await post(server.url, manifestAndFile(minimalManifest({ files: [{ sha1: sha1(bytes), size: 3000, compression: 'gzip' }] }), bytes));
  t.is(good.status, 200);
});

function refusedAndNothingStored(t: ExecutionContext, res: Res, before: string[], serveDir: string, code: string): Record<string, unknown> {
  const err = assertApiError(t, res, 422, code);
  t.deepEqual(snapshot(serveDir), before, 'nothing stored');
  assertConforms(t, serveDir, 'when done');
  return err;
}

test('multipart with the file part before the manifest part: 422, nothing stored', async (t) => {
  const server = await writableServer(t);
  const before = snapshot(server.serveDir);
  const manifest = minimalManifest();
  const form = multipart([
    { name: 'file', filename: 'f', contentType: 'application/octet-stream', data: randomBytes(200_000) },
    { name: 'manifest', filename: 'm.json', contentType: 'application/json', data: JSON.stringify(manifest) },
  ]);
  const err = refusedAndNothingStored(t, await post(server.url, form, '?activate=true'), before, server.serveDir, 'InvalidParameter');
  t.deepEqual(err.errors, [{ field: 'manifest', code: 'MissingParameter' }]);
  t.is((await call(server.url, 'GET', `/images/${String(manifest.uuid)}`)).status, 404);
});

test('multipart with a bad manifest: 422 ValidationFailed with one error per field, nothing stored', async (t) => {
  const server = await writableServer(t);
  const before = snapshot(server.serveDir);
  const manifest = minimalManifest({ os: 'plan9', name: 'bad name!', type: undefined });
  const err = refusedAndNothingStored(t, await post(server.url, manifestAndFile(manifest, randomBytes(50_000)), '?activate=true'),
    before, server.serveDir, 'ValidationFailed');
  const fields = (err.errors as { field: string; code: string }[]).map((e) => `${e.field}:${e.code}`).sort();
  t.deepEqual(fields, ['name:Invalid', 'os:Invalid', 'type:MissingParameter']);
  for (const e of err.errors as { code: string; message?: unknown }[]) {
    if (e.code === 'Invalid') t.is(typeof e.message, 'string', 'an Invalid error says why');
  }
});

test('multipart with a manifest that is not JSON, or not an object: 422 InvalidParameter, and the server lives on', async (t) => {
  const server = await writableServer(t);
  const before = snapshot(server.serveDir);
  for (const text of ['{"v": 2,', '[1, 2]', '']) {
    for (const asFile of [true, false]) {
      const form = multipart([
        asFile ? { name: 'manifest', filename: 'm.json', contentType: 'application/json', data: text } : { name: 'manifest', data: text },
        { name: 'file', filename: 'f', data: randomBytes(1000) },
      ]);
      const err = refusedAndNothingStored(t, await post(server.url, form), before, server.serveDir, 'InvalidParameter');
      t.deepEqual(err.errors, [{ field: 'manifest', code: 'Invalid' }], JSON.stringify(text));
    }
  }
  t.is((await call(server.url, 'GET', '/ping')).status, 200);
});

test('multipart without a file part, or without a manifest part: 422, nothing stored', async (t) => {
  const server = await writableServer(t);
  const before = snapshot(server.serveDir);
  const onlyManifest = multipart([{ name: 'manifest', filename: 'm.json', data: JSON.stringify(minimalManifest()) }]);
  const noFile = refusedAndNothingStored(t, await post(server.url, onlyManifest), before, server.serveDir, 'InvalidParameter');
  t.deepEqual(noFile.errors, [{ field: 'file', code: 'MissingParameter' }]);
  const onlyFile = multipart([{ name: 'file', filename: 'f', data: randomBytes(10) }]);
  refusedAndNothingStored(t, await post(server.url, onlyFile), before, server.serveDir, 'InvalidParameter');
});

test('multipart through fetch and FormData, as the web page will send it', async (t) => {
  const server = await writableServer(t);
  const bytes = randomBytes(300_000);
  const form = new FormData();
  form.append('manifest', new Blob([JSON.stringify(minimalManifest({ name: 'from-fetch' }))], { type: 'application/json' }), 'manifest.json');
  form.append('file', new Blob([bytes]), 'image.zfs.gz');
  const res = await fetch(new URL('/images?activate=true', server.url), { method: 'POST', body: form, headers: { authorization: BASIC } });
  t.is(res.status, 200);
  const image = (await res.json()) as Record<string, any>;
  t.is(image.state, 'active');
  t.is(image.name, 'from-fetch');
  t.deepEqual(image.files, [{ sha1: sha1(bytes), size: bytes.length, compression: 'none' }]);
  await servesBytes(t, server.url, image.uuid, bytes);
  t.is(dataFiles(server.serveDir, image.uuid).length, 1);
});

test('a refused multipart upload on a keep-alive connection closes it, and the client\'s next request is answered', async (t) => {
  const server = await writableServer(t);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const form = manifestAndFile(minimalManifest({ os: 'plan9' }), randomBytes(8 * 1024 * 1024));
  const res = await call(server.url, 'POST', '/images', { agent, headers: { 'content-type': form.contentType }, body: form.body });
  assertApiError(t, res, 422, 'ValidationFailed');
  t.is(res.headers.connection, 'close');
  t.is((await call(server.url, 'GET', '/ping', { agent })).status, 200);
});

test('multipart CreateImage of a new uuid while another client imports it: one wins', async (t) => {
  const server = await writableServer(t);
  const uuid = randomUUID();
  const results = await Promise.all([
    post(server.url, manifestAndFile(minimalManifest({ uuid }), randomBytes(200_000)), '?activate=true'),
    call(server.url, 'POST', `/images/${uuid}?action=import`, {
      headers: { 'content-type': 'application/json' }, body: JSON.stringify(minimalManifest({ uuid })),
    }),
  ]);
  t.deepEqual(results.map((r) => r.status).sort(), [200, 409]);
  assertConforms(t, server.serveDir, 'when done');
});

/*
 * Release channels (docs/protocol.md §3.7, docs/publishing.md#channels)
 * on a real server with two channels, "release" the default and "dev":
 * raw requests, the real client (sdc-clients@13 and its `channel`
 * option), imgadm's own habits replayed, and a server without channels
 * that ignores them as before.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import test, { type ExecutionContext } from 'ava';
import { buildConfig, ConfigError } from '../../src/config/config.js';
import { sha1, tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { IMGAPI, noopLog, p, type ImgapiClient, type Manifest, type RestLikeError } from '../helpers/legacy-clients.js';
import { portOf, rawRequest } from '../helpers/raw-http.js';
import { BASIC, call, jsonBody, manifestAndFile, minimalManifest, parse, PASSWORD, USER, writableServer, type Res } from '../publish/kit.js';
import { CHANNELS, channelServer, publishTo, v2Json } from './kit.js';

/** The uuids ListImages gives for a query, anonymously, as imgadm asks. */
async function listed(base: string, query = ''): Promise<string[]> {
  const res = await call(base, 'GET', `/images${query}`, { auth: null, headers: { 'accept-version': '~2' } });
  if (res.status !== 200) throw new Error(`list ${query}: ${res.status} ${res.body}`);
  return parse<Manifest[]>(res).map((m) => m.uuid);
}

const get = (base: string, target: string, headers: Record<string, string> = { 'accept-version': '~2' }): Promise<Res> =>
  call(base, 'GET', target, { auth: null, headers });

test('the channels key: names as sdc-imgapi allows them, unique, at most one default', (t) => {
  const dir = tmpDir(t, 'imgsrv-conf-');
  const load = (channels: unknown) => buildConfig({ serve_dir: dir, channels }, path.join(dir, 'config.json'));
  t.deepEqual(load(CHANNELS).channels, CHANNELS);
  t.throws(() => load([{ name: 'Release', description: 'x' }]), { instanceOf: ConfigError, message: /channels\.0\.name/ });
  t.throws(() => load([{ name: 'a', description: 'x' }, { name: 'a', description: 'y' }]), { instanceOf: ConfigError, message: /names "a" twice/ });
  t.throws(() => load([{ name: 'a', description: 'x', default: true }, { name: 'b', description: 'y', default: true }]),
    { instanceOf: ConfigError, message: /more than one default: a, b/ });
  t.throws(() => load([{ name: 'a' }]), { instanceOf: ConfigError, message: /description/ });
  t.throws(() => load([]), { instanceOf: ConfigError });
});

test('GET /channels lists the configured channels', async (t) => {
  const { url } = await channelServer(t);
  const res = await get(url, '/channels');
  t.is(res.status, 200);
  t.deepEqual(parse(res), CHANNELS);
});

test('published to dev: listed, shown and downloadable in dev only; channel-add puts it in release; leaving release keeps it in dev', async (t) => {
  const { url, serveDir } = await channelServer(t);
  const { uuid, bytes } = await publishTo(url, 'channel=dev');
  const onDisk = JSON.parse(fs.readFileSync(path.join(serveDir, uuid, 'manifest.json'), 'utf8'));
  t.deepEqual(onDisk.channels, ['dev'], 'membership is kept in manifest.json');

  t.false((await listed(url)).includes(uuid), 'not in the default channel');
  t.false((await listed(url, '?channel=release')).includes(uuid));
  t.true((await listed(url, '?channel=dev')).includes(uuid));
  t.true((await listed(url, '?channel=*')).includes(uuid));
  t.is((await get(url, `/images/${uuid}`)).status, 404, 'GetImage outside the channel');
  t.is((await get(url, `/images/${uuid}/file`)).status, 404, 'GetImageFile outside the channel');
  t.is((await get(url, `/images/${uuid}?channel=release`)).status, 404);
  const shown = await get(url, `/images/${uuid}?channel=dev`);
  t.is(shown.status, 200);
  t.deepEqual(parse(shown).channels, ['dev']);
  t.is(parse(await get(url, `/images/${uuid}?channel=*`)).uuid, uuid);
  const file = await get(url, `/images/${uuid}/file?channel=dev`);
  t.is(file.status, 200);
  t.true(file.body.equals(bytes));

  const added = await call(url, 'POST', `/images/${uuid}?action=channel-add&channel=dev`, v2Json({ channel: 'release' }));
  t.is(added.status, 200, added.body.toString());
  t.deepEqual(parse(added).channels, ['dev', 'release']);
  t.true((await listed(url)).includes(uuid), 'now in the default channel');
  t.true((await listed(url, '?channel=dev')).includes(uuid));
  t.is((await get(url, `/images/${uuid}/file`)).status, 200);

  const left = await call(url, 'DELETE', `/images/${uuid}?channel=release`);
  t.is(left.status, 204);
  t.false((await listed(url)).includes(uuid), 'gone from release');
  t.true((await listed(url, '?channel=dev')).includes(uuid), 'still in dev');
  t.true(fs.existsSync(path.join(serveDir, uuid)));
  t.deepEqual(parse(await get(url, `/images/${uuid}?channel=dev`)).channels, ['dev']);

  const deleted = await call(url, 'DELETE', `/images/${uuid}?channel=dev`);
  t.is(deleted.status, 204, 'its last channel: the image goes');
  t.false(fs.existsSync(path.join(serveDir, uuid)));
  t.is((await get(url, `/images/${uuid}?channel=*`)).status, 404);
});

test('publishing without a channel lands in the default; force_all_channels deletes from every channel', async (t) => {
  const { url, serveDir } = await channelServer(t);
  const { uuid } = await publishTo(url, '');
  t.true((await listed(url)).includes(uuid));
  t.false((await listed(url, '?channel=dev')).includes(uuid));
  t.is((await call(url, 'POST', `/images/${uuid}?action=channel-add`, v2Json({ channel: 'dev' }))).status, 200);
  t.is((await call(url, 'DELETE', `/images/${uuid}?channel=dev&force_all_channels=true`)).status, 204);
  t.false(fs.existsSync(path.join(serveDir, uuid)));
});

test('unknown channels are 422 ValidationFailed naming the channel; * cannot be published into', async (t) => {
  const { url } = await channelServer(t);
  const { uuid } = await publishTo(url, 'channel=dev');
  for (const target of ['/images?channel=nope', `/images/${uuid}?channel=nope`, `/images/${uuid}/file?channel=nope`]) {
    const res = await get(url, target);
    t.is(res.status, 422, target);
    t.is(parse(res).code, 'ValidationFailed', target);
    t.regex(parse(res).message, /^unknown channel: nope \(this server has release, dev/, target);
    t.deepEqual(parse(res).errors.map((e: { field: string }) => e.field), ['channel']);
  }
  const badAdd = await call(url, 'POST', `/images/${uuid}?action=channel-add&channel=dev`, jsonBody({ channel: 'nope' }));
  t.is(badAdd.status, 422);
  t.regex(parse(badAdd).message, /unknown channel: nope/);
  const noBody = await call(url, 'POST', `/images/${uuid}?action=channel-add&channel=dev`, jsonBody({}));
  t.is(noBody.status, 422);
  t.is(parse(noBody).errors[0].code, 'MissingParameter');
  const star = await call(url, 'POST', `/images/${randomUUID()}?action=import&channel=*`, jsonBody(minimalManifest()));
  t.is(star.status, 422);
  t.regex(parse(star).message, /name the one channel/);
  t.is((await call(url, 'DELETE', `/images/${uuid}?channel=nope`)).status, 422);
  t.is((await get(url, `/images/${uuid}?channel=dev`)).status, 200, 'refusals changed nothing');
});

test('channels shows in IMGAPI views for Accept-Version 2 only, never in DSAPI views; DSAPI lists the default channel', async (t) => {
  const { url } = await channelServer(t);
  const dev = await publishTo(url, 'channel=dev');
  const release = await publishTo(url, 'channel=release');
  t.deepEqual(parse(await get(url, `/images/${release.uuid}`, { 'accept-version': '*' })).channels, ['release']);
  t.false('channels' in parse(await get(url, `/images/${release.uuid}`, {})), 'no Accept-Version: API 1');
  t.false('channels' in parse(await get(url, `/images/${release.uuid}`, { 'accept-version': '~1' })));
  const v1list = parse<Manifest[]>(await get(url, '/images', {}));
  t.deepEqual(v1list.map((m) => m.uuid), [release.uuid]);
  t.false('channels' in v1list[0]!);
  const datasets = parse<Manifest[]>(await get(url, '/datasets', {}));
  t.deepEqual(datasets.map((m) => m.uuid), [release.uuid]);
  t.false('channels' in datasets[0]!);
  t.is((await get(url, `/datasets/${dev.uuid}`, {})).status, 404);
  t.false('channels' in parse(await get(url, `/datasets/${release.uuid}`, {})));
});

test('an image published before channels were configured is in the default channel', async (t) => {
  const serveDir = tmpDir(t);
  const bytes = randomBytes(1024);
  const old = writeImage(serveDir, v2Manifest(bytes));
  const { url } = await writableServer(t, { serveDir, config: { channels: CHANNELS } });
  t.deepEqual(await listed(url), [old.uuid]);
  t.deepEqual(await listed(url, '?channel=dev'), []);
  t.deepEqual(parse(await get(url, `/images/${old.uuid}`)).channels, ['release']);
  const added = await call(url, 'POST', `/images/${old.uuid}?action=channel-add`, v2Json({ channel: 'dev' }));
  t.deepEqual(parse(added).channels, ['release', 'dev']);
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(serveDir, old.uuid, 'manifest.json'), 'utf8')).channels, ['release', 'dev']);
});

test('without a default channel, a request that names none is 422 "channel not specified"', async (t) => {
  const { url } = await writableServer(t, { config: { channels: [{ name: 'a', description: 'A' }, { name: 'b', description: 'B' }] } });
  const res = await get(url, '/images');
  t.is(res.status, 422);
  t.is(parse(res).message, 'channel not specified and no default channel');
  t.is((await get(url, '/images?channel=a')).status, 200);
  t.is((await get(url, '/ping')).status, 200);
});

test('a server without channels ignores ?channel=, stores no channels and has no /channels', async (t) => {
  const { url, serveDir } = await writableServer(t);
  const { uuid } = await publishTo(url, 'channel=dev');
  t.false('channels' in JSON.parse(fs.readFileSync(path.join(serveDir, uuid, 'manifest.json'), 'utf8')));
  t.deepEqual(await listed(url, '?channel=whatever'), [uuid]);
  const shown = parse(await get(url, `/images/${uuid}?channel=whatever`));
  t.false('channels' in shown);
  t.is((await get(url, `/images/${uuid}/file?channel=*`)).status, 200);
  t.is((await get(url, '/channels')).status, 404);
  const add = await call(url, 'POST', `/images/${uuid}?action=channel-add`, v2Json({ channel: 'dev' }));
  t.is(add.status, 422);
  t.is(parse(add).code, 'InvalidParameter', 'an action this server does not have');
});

function client(t: ExecutionContext, url: string, channel?: string): ImgapiClient {
  const c = IMGAPI.createClient({
    url, user: USER, password: PASSWORD, retry: false, proxy: false, log: noopLog, ...(channel ? { channel } : {}),
  });
  t.teardown(() => c.close());
  return c;
}

test('sdc-clients@13: publish with channel "dev", list, get and download with the channel option, channelAddImage, deleteImage per channel', async (t) => {
  const { url } = await channelServer(t);
  const dev = client(t, url, 'dev');
  const plain = client(t, url);
  const [channels] = await p<unknown[]>((cb) => plain.listChannels({}, cb));
  t.deepEqual(channels, CHANNELS);

  const manifest = minimalManifest();
  const uuid = String(manifest.uuid);
  const bytes = gzipSync(randomBytes(4096));
  await p((cb) => dev.adminImportImage({ ...manifest, uuid } as Manifest, {}, cb));
  await p((cb) => dev.addImageFile({ uuid, file: Readable.from([bytes]), compression: 'gzip', size: bytes.length, sha1: sha1(bytes) }, cb));
  const [active] = await p<Manifest>((cb) => dev.activateImage(uuid, cb));
  t.deepEqual(active.channels, ['dev']);

  const ids = async (c: ImgapiClient, opts: { channel?: string } = {}) =>
    (await p<Manifest[]>((cb) => c.listImages({}, opts, cb)))[0].map((m) => m.uuid);
  t.deepEqual(await ids(dev), [uuid]);
  t.deepEqual(await ids(plain), [], 'the default channel, release, does not have it');
  t.deepEqual(await ids(plain, { channel: 'dev' }), [uuid]);
  t.deepEqual(await ids(plain, { channel: '*' }), [uuid]);
  const status = await p((cb) => plain.getImage(uuid, cb)).then(() => 200, (e: RestLikeError) => e.statusCode);
  t.is(status, 404, 'GetImage in the default channel');
  const [got] = await p<Manifest>((cb) => plain.getImage(uuid, { channel: 'dev' }, cb));
  t.deepEqual(got.channels, ['dev']);
  const target = path.join(tmpDir(t), 'file.gz');
  await new Promise<void>((resolve, reject) =>
    plain.getImageFile(uuid, target, undefined, { channel: 'dev' }, (e: RestLikeError | null) => (e ? reject(e) : resolve())));
  t.is(sha1(fs.readFileSync(target)), sha1(bytes));

  const [promoted] = await p<Manifest>((cb) => dev.channelAddImage({ uuid, channel: 'release' }, cb));
  t.deepEqual(promoted.channels, ['dev', 'release']);
  t.deepEqual(await ids(plain), [uuid], 'promoted to release');

  await p((cb) => plain.deleteImage(uuid, { channel: 'release' }, cb));
  t.deepEqual(await ids(plain), []);
  t.deepEqual(await ids(dev), [uuid], 'still in dev');
  await p((cb) => dev.deleteImage(uuid, cb));
  t.deepEqual(await ids(plain, { channel: '*' }), [], 'its last channel: deleted');
});

test('imgadm with a source URL ending in ?channel=dev: no channel on the ping, the channel on list, get and file', async (t) => {
  const { url } = await channelServer(t);
  const { uuid, bytes } = await publishTo(url, 'channel=dev');
  const host = new URL(url).host;
  const send = async (target: string) => {
    const head = [`GET ${target} HTTP/1.1`, `Host: ${host}`, `x-request-id: ${randomUUID()}`, 'accept: application/json',
      'user-agent: imgadm/3.9.5 (node/v6.17.1; OpenSSL/1.1.1t)', 'accept-version: ~2', `Date: ${new Date().toUTCString()}`,
      'Connection: close', '', ''];
    return rawRequest({ port: portOf(url) }, head.join('\r\n'));
  };
  const ping = await send('/ping');
  t.is(ping.status, 200);
  const list = await send('/images?channel=dev');
  t.is(list.status, 200);
  t.deepEqual(JSON.parse(list.body.toString()).map((m: Manifest) => m.uuid), [uuid]);
  const one = await send(`/images/${uuid}?channel=dev`);
  t.is(one.status, 200);
  t.deepEqual(JSON.parse(one.body.toString()).channels, ['dev']);
  const file = await send(`/images/${uuid}/file?channel=dev`);
  t.is(file.status, 200);
  t.true(file.body.equals(bytes));
  t.is(file.headers['content-length'], String(bytes.length));
  // The same user with the plain source URL sees the release channel.
  t.deepEqual(JSON.parse((await send('/images')).body.toString()), []);
  t.is((await send(`/images/${uuid}/file`)).status, 404);
});

test('channel membership changes reach the listing at once (the cached listing is keyed by channel)', async (t) => {
  const { url } = await channelServer(t);
  const { uuid } = await publishTo(url, 'channel=dev');
  t.deepEqual(await listed(url, '?channel=release'), []);
  await call(url, 'POST', `/images/${uuid}?action=channel-add&channel=dev`, { ...v2Json({ channel: 'release' }), auth: BASIC });
  t.deepEqual(await listed(url, '?channel=release'), [uuid]);
});

test('CreateImage, as JSON and as a multipart upload, lands in ?channel=', async (t) => {
  const { url } = await channelServer(t);
  const { uuid: _u, ...manifest } = minimalManifest();
  const created = await call(url, 'POST', '/images?channel=dev', v2Json(manifest));
  t.is(created.status, 200, created.body.toString());
  t.deepEqual(parse(created).channels, ['dev']);
  const form = manifestAndFile(minimalManifest(), gzipSync(randomBytes(1000)));
  const uploaded = await call(url, 'POST', '/images?channel=dev&activate=true',
    { body: form.body, headers: { 'content-type': form.contentType, 'accept-version': '~2' } });
  t.is(uploaded.status, 200, uploaded.body.toString());
  t.deepEqual(parse(uploaded).channels, ['dev']);
  t.deepEqual(await listed(url, '?channel=dev'), [parse(uploaded).uuid]);
  t.deepEqual(await listed(url), []);
});

test('/openapi.json documents GET /channels, ?channel= and channel-add on a server with channels only', async (t) => {
  const withChannels = parse(await get((await channelServer(t)).url, '/openapi.json'));
  t.is(withChannels.paths['/channels'].get.operationId, 'ListChannels');
  const names = (op: { parameters: { name: string }[] }) => op.parameters.map((q) => q.name);
  t.true(names(withChannels.paths['/images'].get).includes('channel'));
  t.true(names(withChannels.paths['/images/{uuid}'].delete).includes('force_all_channels'));
  const action = withChannels.paths['/images/{uuid}'].post.parameters.find((q: { name: string }) => q.name === 'action');
  t.true(action.schema.enum.includes('channel-add'));
  const without = parse(await get((await writableServer(t)).url, '/openapi.json'));
  t.false('/channels' in without.paths);
  t.false(names(without.paths['/images'].get).includes('channel'));
});

/*
 * The state machine of docs/protocol.md §4.3 and the actions of §3.10–3.11:
 * unactivated → (file) → active ⇄ disabled, what each refuses, UpdateImage's
 * rules, and where unactivated and disabled images are visible.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { sha1 } from '../helpers/images.js';
import { assertApiError } from '../http/kit.js';
import { call, dataFiles, jsonBody, minimalManifest, parse, publish, readJson, snapshot, writableServer } from './kit.js';
import { assertConforms } from '../helpers/conformance.js';

async function imported(base: string, fields: Record<string, unknown> = {}): Promise<string> {
  const manifest = minimalManifest(fields);
  const res = await call(base, 'POST', `/images/${String(manifest.uuid)}?action=import`, jsonBody(manifest));
  if (res.status !== 200) throw new Error(`import: ${res.status} ${res.body}`);
  return String(manifest.uuid);
}

async function addFile(base: string, uuid: string, bytes: Buffer, compression = 'gzip') {
  return call(base, 'PUT', `/images/${uuid}/file?compression=${compression}&sha1=${sha1(bytes)}`, { body: bytes });
}

const action = (base: string, uuid: string, name: string, body: unknown = {}) =>
  call(base, 'POST', `/images/${uuid}?action=${name}`, jsonBody(body));

const uuidsOf = (list: { uuid: string }[]) => list.map((m) => m.uuid);

test('ActivateImage without a file: 422 NoActivationNoFile, the image stays unactivated', async (t) => {
  const server = await writableServer(t);
  const uuid = await imported(server.url);
  const before = snapshot(server.serveDir);
  assertApiError(t, await action(server.url, uuid, 'activate'), 422, 'NoActivationNoFile');
  t.deepEqual(snapshot(server.serveDir), before);
  t.is(parse(await call(server.url, 'GET', `/images/${uuid}`)).state, 'unactivated');
});

test('ActivateImage twice: 422 ImageAlreadyActivated, published_at unchanged', async (t) => {
  const server = await writableServer(t);
  const active = await publish(server.url, minimalManifest(), randomBytes(100));
  const before = snapshot(server.serveDir);
  assertApiError(t, await action(server.url, active.uuid, 'activate'), 422, 'ImageAlreadyActivated');
  t.deepEqual(snapshot(server.serveDir), before);
  t.is(parse(await call(server.url, 'GET', `/images/${active.uuid}`)).published_at, active.published_at);
});

test('a published_at given at import is kept by ActivateImage', async (t) => {
  const server = await writableServer(t);
  const active = await publish(server.url, minimalManifest({ published_at: '2019-03-04T05:06:07.000Z' }), randomBytes(100));
  t.is(active.published_at, '2019-03-04T05:06:07.000Z');
});

test('AddImageFile on an active or disabled image: 422 ImageFilesImmutable, the file untouched', async (t) => {
  const server = await writableServer(t);
  const bytes = randomBytes(5000);
  const active = await publish(server.url, minimalManifest(), bytes);
  for (const state of ['active', 'disabled']) {
    if (state === 'disabled') t.is((await action(server.url, active.uuid, 'disable')).status, 200);
    const before = snapshot(server.serveDir);
    assertApiError(t, await addFile(server.url, active.uuid, randomBytes(10)), 422, 'ImageFilesImmutable');
    t.deepEqual(snapshot(server.serveDir), before, state);
    assertConforms(t, server.serveDir, 'when done');
    t.is(sha1((await call(server.url, 'GET', `/images/${active.uuid}/file`)).body), sha1(bytes), state);
  }
});

test('DisableImage and EnableImage move state and disabled; DSAPI lists only the active image', async (t) => {
  const server = await writableServer(t);
  const active = await publish(server.url, minimalManifest(), randomBytes(100));
  const uuid = String(active.uuid);
  const listedByDsapi = async () => uuidsOf(parse(await call(server.url, 'GET', '/datasets', { auth: null }))).includes(uuid);
  const listedByImgapi = async (q = '') => uuidsOf(parse(await call(server.url, 'GET', `/images${q}`, { auth: null }))).includes(uuid);
  t.true(await listedByDsapi());

  const disabled = parse(await action(server.url, uuid, 'disable'));
  t.is(disabled.state, 'disabled');
  t.is(disabled.disabled, true);
  t.is(disabled.published_at, active.published_at);
  t.is(readJson(path.join(server.serveDir, uuid, 'manifest.json')).state, 'disabled', 'on disk');
  t.false(await listedByDsapi(), 'DSAPI hides a disabled image');
  t.false(await listedByImgapi(), 'not in the default (active) listing');
  t.true(await listedByImgapi('?state=disabled'));
  t.true(await listedByImgapi('?state=all'));
  t.is((await call(server.url, 'GET', `/images/${uuid}/file`, { auth: null })).status, 200, 'a disabled image still downloads (it may be an origin)');

  const again = parse(await action(server.url, uuid, 'disable'));
  t.is(again.state, 'disabled', 'disabling twice is harmless');

  const enabled = parse(await action(server.url, uuid, 'enable'));
  t.is(enabled.state, 'active');
  t.is(enabled.disabled, false);
  t.true(await listedByDsapi(), 'DSAPI lists it again');
  t.true(await listedByImgapi());
});

test('DisableImage before activation sets only the flag; activation then makes it disabled', async (t) => {
  const server = await writableServer(t);
  const uuid = await imported(server.url);
  const flagged = parse(await action(server.url, uuid, 'disable'));
  t.is(flagged.state, 'unactivated');
  t.is(flagged.disabled, true);
  t.is((await addFile(server.url, uuid, randomBytes(100))).status, 200);
  const activated = parse(await action(server.url, uuid, 'activate'));
  t.is(activated.state, 'disabled');
  t.is(typeof activated.published_at, 'string');
});

test('UpdateImage changes mutable fields, deletes a field given null, and keeps the rest', async (t) => {
  const server = await writableServer(t);
  const active = await publish(server.url, minimalManifest({ homepage: 'https://example.com/', tags: { a: 'b' } }), randomBytes(100));
  const uuid = String(active.uuid);
  const res = await action(server.url, uuid, 'update', {
    name: 'renamed', version: '2.0.0', description: 'new words', homepage: null, tags: { role: 'os' }, public: false,
  });
  t.is(res.status, 200, res.body.toString('utf8'));
  const updated = parse(res);
  t.is(updated.name, 'renamed');
  t.is(updated.version, '2.0.0');
  t.is(updated.description, 'new words');
  t.false('homepage' in updated, 'null deletes the field');
  t.deepEqual(updated.tags, { role: 'os' });
  t.is(updated.public, false);
  t.is(updated.state, 'active');
  t.deepEqual(updated.files, active.files);
  t.is(updated.published_at, active.published_at);
  const onDisk = readJson(path.join(server.serveDir, uuid, 'manifest.json'));
  t.false('homepage' in onDisk);
  t.is(onDisk.name, 'renamed');
  // the renamed image still serves its file
  t.is((await call(server.url, 'GET', `/images/${uuid}/file`)).status, 200);
});

test('UpdateImage refuses fields that are not mutable (422 ValidationFailed, NotAllowed), an empty body, and invalid values', async (t) => {
  const server = await writableServer(t);
  const active = await publish(server.url, minimalManifest(), randomBytes(100));
  const uuid = String(active.uuid);
  const before = snapshot(server.serveDir);
  for (const field of ['uuid', 'state', 'files', 'published_at', 'type', 'origin', 'v', 'disabled']) {
    const err = assertApiError(t, await action(server.url, uuid, 'update', { [field]: active[field] ?? 'x', description: 'ok' }), 422, 'ValidationFailed');
    t.deepEqual((err.errors as { field: string; code: string }[]).map(({ field: f, code }) => ({ field: f, code })),
      [{ field, code: 'NotAllowed' }], field);
  }
  assertApiError(t, await action(server.url, uuid, 'update', {}), 422, 'ValidationFailed');
  assertApiError(t, await call(server.url, 'POST', `/images/${uuid}?action=update`), 422, 'ValidationFailed');
  const bad = assertApiError(t, await action(server.url, uuid, 'update', { os: 'plan9' }), 422, 'ValidationFailed');
  t.deepEqual((bad.errors as { field: string }[]).map((e) => e.field), ['os']);
  assertApiError(t, await action(server.url, uuid, 'update', { name: null }), 422, 'ValidationFailed');
  t.deepEqual(snapshot(server.serveDir), before, 'a refused update changes nothing');
});

test('unactivated images survive a restart, and are listed only for state=unactivated and state=all; DSAPI never shows them', async (t) => {
  const first = await writableServer(t);
  const bare = await imported(first.url, { name: 'bare' });
  const withFile = await imported(first.url, { name: 'with-file' });
  const bytes = randomBytes(2048);
  t.is((await addFile(first.url, withFile, bytes)).status, 200);
  await first.store.close();
  await first.listening.close(0);

  const server = await writableServer(t, { serveDir: first.serveDir });
  const list = async (q: string) => uuidsOf(parse(await call(server.url, 'GET', `/images${q}`)));
  for (const uuid of [bare, withFile]) {
    t.false((await list('')).includes(uuid), 'not in the default listing');
    t.false((await list('?state=active')).includes(uuid));
    t.true((await list('?state=unactivated')).includes(uuid));
    t.true((await list('?state=all')).includes(uuid));
    t.is(parse(await call(server.url, 'GET', `/images/${uuid}`)).state, 'unactivated');
    t.is((await call(server.url, 'GET', `/datasets/${uuid}`, { auth: null })).status, 404);
    t.false(uuidsOf(parse(await call(server.url, 'GET', '/datasets', { auth: null }))).includes(uuid));
  }
  const kept = parse(await call(server.url, 'GET', `/images/${withFile}`));
  t.deepEqual(kept.files, [{ sha1: sha1(bytes), size: bytes.length, compression: 'gzip' }], 'the file survived too');
  t.is(parse(await call(server.url, 'GET', `/images/${bare}`)).files.length, 0);
  // and they carry on from where they were
  t.is(parse(await action(server.url, withFile, 'activate')).state, 'active');
  t.is(sha1((await call(server.url, 'GET', `/images/${withFile}/file`)).body), sha1(bytes));
});

test('POST /images/:uuid with an unknown action, or none: 422 InvalidParameter', async (t) => {
  const server = await writableServer(t);
  const uuid = await imported(server.url);
  const before = snapshot(server.serveDir);
  const unknown = assertApiError(t, await action(server.url, uuid, 'explode'), 422, 'InvalidParameter');
  t.deepEqual(unknown.errors, [{ field: 'action', code: 'Invalid' }]);
  const missing = assertApiError(t, await call(server.url, 'POST', `/images/${uuid}`, jsonBody({})), 422, 'InvalidParameter');
  t.deepEqual(missing.errors, [{ field: 'action', code: 'MissingParameter' }]);
  assertApiError(t, await call(server.url, 'POST', `/images/${uuid}?action=activate&action=import`, jsonBody({})), 422, 'InvalidParameter');
  t.deepEqual(snapshot(server.serveDir), before);
});

test('ActivateImage accepts imgadm\'s {} body, an empty body, and a body without Content-Type', async (t) => {
  const server = await writableServer(t);
  const ways: [string, Parameters<typeof call>[3]][] = [
    ['{} as JSON', jsonBody({})],
    ['empty, Content-Length: 0', { headers: { 'content-length': 0 } }],
    ['no body at all', {}],
    ['empty JSON', { headers: { 'content-type': 'application/json' }, body: '' }],
  ];
  for (const [label, opts] of ways) {
    const uuid = await imported(server.url, { name: `activate-${label.replace(/\W+/g, '-')}` });
    t.is((await addFile(server.url, uuid, randomBytes(50))).status, 200);
    const res = await call(server.url, 'POST', `/images/${uuid}?action=activate`, opts);
    t.is(res.status, 200, `${label}: ${res.body.toString('utf8')}`);
    t.is(parse(res).state, 'active', label);
  }
});

test('AddImageFile labelled Content-Type: application/json stores the body raw, byte for byte', async (t) => {
  const server = await writableServer(t);
  const uuid = await imported(server.url);
  // bytes a JSON body parser would happily parse and re-serialise
  const bytes = Buffer.from('{ "this":  "is not a manifest",\n  "n": 1.0 }\n');
  const res = await call(server.url, 'PUT', `/images/${uuid}/file?compression=none&sha1=${sha1(bytes)}`, {
    headers: { 'content-type': 'application/json' }, body: bytes,
  });
  t.is(res.status, 200, res.body.toString('utf8'));
  t.deepEqual(parse(res).files, [{ sha1: sha1(bytes), size: bytes.length, compression: 'none' }]);
  const files = dataFiles(server.serveDir, uuid);
  t.is(files.length, 1);
  t.true(fs.readFileSync(path.join(server.serveDir, uuid, files[0]!)).equals(bytes));
  t.true((await call(server.url, 'GET', `/images/${uuid}/file`)).body.equals(bytes));
});

test('AddImageFile again before activation replaces the file; the old one is gone from disk', async (t) => {
  const server = await writableServer(t);
  const uuid = await imported(server.url);
  t.is((await addFile(server.url, uuid, randomBytes(3000), 'gzip')).status, 200);
  const second = randomBytes(1234);
  const res = await addFile(server.url, uuid, second, 'xz');
  t.deepEqual(parse(res).files, [{ sha1: sha1(second), size: second.length, compression: 'xz' }]);
  const files = dataFiles(server.serveDir, uuid);
  t.is(files.length, 1, `one data file: ${files.join(', ')}`);
  t.is(sha1(fs.readFileSync(path.join(server.serveDir, uuid, files[0]!))), sha1(second));
  t.is(parse(await action(server.url, uuid, 'activate')).files[0].sha1, sha1(second));
});

test('DeleteImage of an active image: 204, the folder and file are gone, reads say 404', async (t) => {
  const server = await writableServer(t);
  const active = await publish(server.url, minimalManifest(), randomBytes(100));
  const uuid = String(active.uuid);
  const res = await call(server.url, 'DELETE', `/images/${uuid}`);
  t.is(res.status, 204);
  t.is(res.body.length, 0);
  t.false(fs.existsSync(path.join(server.serveDir, uuid)));
  t.is((await call(server.url, 'GET', `/images/${uuid}`)).status, 404);
  t.is((await call(server.url, 'GET', `/images/${uuid}/file`)).status, 404);
  t.is((await call(server.url, 'GET', `/datasets/${uuid}`)).status, 404);
  t.deepEqual(fs.readdirSync(path.join(server.serveDir, '.trash')), [], 'nothing left in the trash');
});

test('owner and public defaults come from the config: image-creator-uuid and default_public', async (t) => {
  const creator = '5f0b7d2a-1c3e-4b8f-9e6d-7a8b9c0d1e2f';
  const server = await writableServer(t, { config: { 'image-creator-uuid': creator, default_public: false } });
  const active = await publish(server.url, minimalManifest(), randomBytes(100));
  t.is(active.owner, creator);
  t.is(active.public, false);
  const uuid = String(active.uuid);
  t.false(uuidsOf(parse(await call(server.url, 'GET', '/images', { auth: null }))).includes(uuid), 'anonymous users do not see it');
  t.false(uuidsOf(parse(await call(server.url, 'GET', '/datasets', { auth: null }))).includes(uuid));
  t.true(uuidsOf(parse(await call(server.url, 'GET', '/images'))).includes(uuid), 'writers do');
  // a manifest that says otherwise wins
  const explicit = await publish(server.url, minimalManifest({ public: true, owner: '930896af-bf8c-48d4-885c-6573a94b1853' }), randomBytes(100));
  t.is(explicit.public, true);
  t.is(explicit.owner, '930896af-bf8c-48d4-885c-6573a94b1853');
  t.true(uuidsOf(parse(await call(server.url, 'GET', '/images', { auth: null }))).includes(String(explicit.uuid)));
});

/*
 * Every way a write can be refused: the right 4xx with the right IMGAPI
 * code, and serve_dir exactly as it was before (no image folder, no file,
 * nothing left in .staging). The validation fixtures are sent to
 * AdminImportImage, which fills owner, public, disabled and state itself
 * and ignores files, state and activated, so some cases that are invalid
 * for a stored record are valid imports (docs/protocol.md §3.8).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { FIXTURES, sha1, tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { waitFor } from '../helpers/server.js';
import { spawnServer } from '../cli/spawn.js';
import { assertApiError } from '../http/kit.js';
import {
  BASIC, BEARER, PASSWORD, TOKEN_NAME, USER, call, jsonBody, manifestAndFile, minimalManifest, parse, publish, rawExchange, snapshot, writableServer, writers, type Res,
} from './kit.js';
import { assertConforms, stagingEntries } from '../helpers/conformance.js';

interface Case {
  name: string;
  validator: string;
  manifest: Record<string, unknown>;
  expected_errors: { field: string; code: string }[] | null;
}

const CASE_FILES = fs.readdirSync(path.join(FIXTURES, 'validation')).filter((f) => f.endsWith('.cases.json')).sort();

/** Fields AdminImportImage sets or drops itself, whatever the body says. */
const FILLED_BY_IMPORT = new Set(['owner', 'disabled', 'activated', 'state', 'published_at', 'files']);

const ZVOL_FIELDS = ['nic_driver', 'disk_driver', 'cpu_type', 'image_size'];

/**
 * What AdminImportImage must answer for a case: the case's own errors, less
 * those about fields the import fills, and less the `public` rule of the
 * public and private modes (this server runs in neither). An import makes
 * an IMGAPI record, which the minimal profile does not check: a zvol needs
 * its four zvol fields (docs/protocol.md §4.1) whatever profile the case was for.
 */
function importErrors(c: Case): { field: string; code: string }[] {
  const modal = c.validator === 'validatePublicManifest' || c.validator === 'validatePrivateManifest';
  const errors = (c.expected_errors ?? [])
    .filter((e) => !FILLED_BY_IMPORT.has(e.field) && !(modal && e.field === 'public'))
    .map(({ field, code }) => ({ field, code }));
  if (c.manifest.type === 'zvol') {
    for (const field of ZVOL_FIELDS) {
      if (c.manifest[field] === undefined && !errors.some((e) => e.field === field)) errors.push({ field, code: 'MissingParameter' });
    }
  }
  return errors;
}

const sortErrors = (errors: { field: string; code: string }[]) =>
  [...errors].sort((a, b) => `${a.field} ${a.code}`.localeCompare(`${b.field} ${b.code}`));

for (const file of CASE_FILES) {
  const cases = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'validation', file), 'utf8')) as Case[];
  for (const c of cases) {
    const expected = importErrors(c);
    const verdict = expected.length > 0 ? '422 ValidationFailed' : '200 unactivated';
    test(`AdminImportImage, ${file} "${c.name}" → ${verdict}`, async (t) => {
      const serveDir = tmpDir(t);
      // an existing origin, so that the origin check never decides a validation case
      if (typeof c.manifest.origin === 'string') {
        const bytes = randomBytes(64);
        writeImage(serveDir, v2Manifest(bytes, { uuid: c.manifest.origin }), { bytes });
      }
      const server = await writableServer(t, { serveDir });
      const uuid = String(c.manifest.uuid);
      const before = snapshot(serveDir);
      const res = await call(server.url, 'POST', `/images/${uuid}?action=import`, jsonBody(c.manifest));
      if (expected.length > 0) {
        const err = assertApiError(t, res, 422, 'ValidationFailed');
        const got = (err.errors as { field: string; code: string }[]).map(({ field, code }) => ({ field, code }));
        t.deepEqual(sortErrors(got), sortErrors(expected));
        t.deepEqual(snapshot(serveDir), before, 'nothing stored');
        assertConforms(t, serveDir, 'when done');
      } else {
        t.is(res.status, 200, res.body.toString('utf8').slice(0, 400));
        const image = parse(res);
        t.is(image.uuid, uuid);
        t.is(image.state, 'unactivated');
        t.deepEqual(image.files, []);
        t.is(image.disabled, c.manifest.disabled === true, 'disabled: the body\'s, else false');
        t.is(image.public, typeof c.manifest.public === 'boolean' ? c.manifest.public : true, 'public: the body\'s, else default_public');
        t.is(image.owner, typeof c.manifest.owner === 'string' ? c.manifest.owner : '00000000-0000-0000-0000-000000000000');
        if (c.manifest.published_at === undefined) t.false('published_at' in image, 'no published_at before activation');
        t.true(fs.existsSync(path.join(serveDir, uuid, 'manifest.json')));
        assertConforms(t, serveDir, 'when done');
      }
    });
  }
}

/* --- the upload itself ---------------------------------------------------- */

/** An imported, unactivated image to send files to. */
async function unactivated(base: string): Promise<string> {
  const manifest = minimalManifest();
  const res = await call(base, 'POST', `/images/${String(manifest.uuid)}?action=import`, jsonBody(manifest));
  if (res.status !== 200) throw new Error(`import: ${res.status} ${res.body}`);
  return String(manifest.uuid);
}

test('AddImageFile with a wrong sha1: 400 Download, and the image stays without a file', async (t) => {
  const server = await writableServer(t);
  const uuid = await unactivated(server.url);
  const before = snapshot(server.serveDir);
  const bytes = randomBytes(200_000);
  const res = await call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip&sha1=${sha1(Buffer.from('other'))}`, { body: bytes });
  const err = assertApiError(t, res, 400, 'Download');
  t.regex(String(err.message), new RegExp(sha1(bytes)), 'the message names the sha1 received');
  t.deepEqual(snapshot(server.serveDir), before);
  assertConforms(t, server.serveDir, 'when done');
  t.deepEqual(parse(await call(server.url, 'GET', `/images/${uuid}`)).files, []);
});

test('AddImageFile with a wrong size or an empty body: 400 Download, nothing stored', async (t) => {
  const server = await writableServer(t);
  const uuid = await unactivated(server.url);
  const before = snapshot(server.serveDir);
  const bytes = randomBytes(1000);
  assertApiError(t, await call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip&size=999`, { body: bytes }), 400, 'Download');
  assertApiError(t, await call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip`, { body: Buffer.alloc(0) }), 400, 'Download');
  t.deepEqual(snapshot(server.serveDir), before);
  assertConforms(t, server.serveDir, 'when done');
});

test('AddImageFile with a short body (Content-Length larger than what comes, then the client is done): 400 Download, nothing stored', async (t) => {
  const server = await writableServer(t);
  const uuid = await unactivated(server.url);
  const before = snapshot(server.serveDir);
  // The client ends its side of the connection after 100 KiB of a declared 1 MiB.
  const res = await rawExchange(server.port, [
    `PUT /images/${uuid}/file?compression=gzip HTTP/1.1`,
    'Host: 127.0.0.1',
    `Authorization: ${BASIC}`,
    'Content-Type: application/octet-stream',
    'Content-Length: 1048576',
  ], randomBytes(100 * 1024), { halfClose: true });
  t.is(res.status, 400, res.body.toString('utf8'));
  t.is(JSON.parse(res.body.toString('utf8')).code, 'Download', 'bytes ≠ Content-Length is a Download error (docs/protocol.md §3.9)');
  await waitFor(() => stagingEntries(server.serveDir).length === 0);
  t.deepEqual(snapshot(server.serveDir), before);
  t.deepEqual(parse(await call(server.url, 'GET', `/images/${uuid}`)).files, []);
});

test('AddImageFile cut off by the client mid-body: nothing stored, staging emptied, the server carries on', async (t) => {
  const server = await writableServer(t);
  const uuid = await unactivated(server.url);
  const before = snapshot(server.serveDir);
  const socket = net.connect(server.port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write([
    `PUT /images/${uuid}/file?compression=gzip HTTP/1.1`, 'Host: 127.0.0.1', `Authorization: ${BASIC}`,
    'Content-Length: 4194304', '', '',
  ].join('\r\n'));
  socket.write(randomBytes(256 * 1024));
  // the upload has reached staging before the client disappears
  await waitFor(() => stagingEntries(server.serveDir).length === 1);
  socket.destroy();
  await waitFor(() => stagingEntries(server.serveDir).length === 0);
  t.deepEqual(snapshot(server.serveDir), before);
  const bytes = randomBytes(5000);
  const ok = await call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip&sha1=${sha1(bytes)}`, { body: bytes });
  t.is(ok.status, 200, 'the next upload to the same image works');
});

/* --- size limit ------------------------------------------------------------ */

test('an upload over max_upload_bytes: 400 Upload for a declared Content-Length, a chunked body and a multipart file; nothing stored', async (t) => {
  const server = await writableServer(t, { config: { max_upload_bytes: 64 * 1024 } });
  const uuid = await unactivated(server.url);
  const before = snapshot(server.serveDir);
  const big = randomBytes(4 * 1024 * 1024);

  assertApiError(t, await call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip`, { body: big }), 400, 'Upload');
  const chunked = await call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip`, {
    headers: { 'transfer-encoding': 'chunked' }, body: big,
  });
  assertApiError(t, chunked, 400, 'Upload');
  t.is(chunked.headers.connection, 'close', 'the unread rest of the body ends the connection');
  t.deepEqual(snapshot(server.serveDir), before);

  const form = manifestAndFile(minimalManifest(), big);
  const viaForm = await call(server.url, 'POST', '/images?activate=true', { headers: { 'content-type': form.contentType }, body: form.body });
  assertApiError(t, viaForm, 400, 'Upload');
  t.deepEqual(snapshot(server.serveDir), before);
  assertConforms(t, server.serveDir, 'when done');

  // exactly the limit is fine
  const limit = randomBytes(64 * 1024);
  t.is((await call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip&sha1=${sha1(limit)}`, { body: limit })).status, 200);
});

test('a refused chunked upload on a keep-alive connection does not wedge the client: its next request is answered', async (t) => {
  const server = await writableServer(t, { config: { max_upload_bytes: 1024 } });
  const uuid = await unactivated(server.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const refused = await call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip`, {
    agent, headers: { 'transfer-encoding': 'chunked' }, body: randomBytes(8 * 1024 * 1024),
  });
  assertApiError(t, refused, 400, 'Upload');
  const ping = await call(server.url, 'GET', '/ping', { agent });
  t.is(ping.status, 200);
  t.is((await call(server.url, 'GET', '/ping')).status, 200, 'the server is alive');
});

/* --- uuids and origins ------------------------------------------------------ */

test('AdminImportImage of a uuid that exists: 409 ImageUuidAlreadyExists, the existing image untouched', async (t) => {
  const serveDir = tmpDir(t);
  const onDisk = writeImage(serveDir, v2Manifest(randomBytes(500)));
  const server = await writableServer(t, { serveDir });
  const imported = await unactivated(server.url);
  const before = snapshot(serveDir);
  for (const uuid of [onDisk.uuid, imported]) {
    const res = await call(server.url, 'POST', `/images/${uuid}?action=import`, jsonBody(minimalManifest({ uuid, name: 'usurper' })));
    assertApiError(t, res, 409, 'ImageUuidAlreadyExists');
  }
  // and by multipart, naming the uuid in the manifest
  const form = manifestAndFile(minimalManifest({ uuid: onDisk.uuid }), randomBytes(100));
  assertApiError(t, await call(server.url, 'POST', '/images', { headers: { 'content-type': form.contentType }, body: form.body }),
    409, 'ImageUuidAlreadyExists');
  t.deepEqual(snapshot(serveDir), before);
  assertConforms(t, serveDir, 'when done');
});

test('AdminImportImage with an origin that does not exist: 422 OriginDoesNotExist, nothing stored', async (t) => {
  const server = await writableServer(t);
  const before = snapshot(server.serveDir);
  const manifest = minimalManifest({ origin: randomUUID() });
  assertApiError(t, await call(server.url, 'POST', `/images/${String(manifest.uuid)}?action=import`, jsonBody(manifest)),
    422, 'OriginDoesNotExist');
  const form = manifestAndFile(minimalManifest({ origin: randomUUID() }), randomBytes(100));
  assertApiError(t, await call(server.url, 'POST', '/images?activate=true', { headers: { 'content-type': form.contentType }, body: form.body }),
    422, 'OriginDoesNotExist');
  t.deepEqual(snapshot(server.serveDir), before);
  assertConforms(t, server.serveDir, 'when done');
});

test('DeleteImage of an origin: 422 ImageHasDependentImages, both images stay; deleting the child first works', async (t) => {
  const server = await writableServer(t);
  const base = minimalManifest({ name: 'base' });
  await publish(server.url, base, randomBytes(3000));
  const child = minimalManifest({ name: 'child', origin: base.uuid });
  const childBytes = randomBytes(2000);
  await publish(server.url, child, childBytes);
  const before = snapshot(server.serveDir);
  const err = assertApiError(t, await call(server.url, 'DELETE', `/images/${String(base.uuid)}`), 422, 'ImageHasDependentImages');
  t.regex(String(err.message), new RegExp(String(child.uuid)));
  t.deepEqual(snapshot(server.serveDir), before);
  t.is(parse(await call(server.url, 'GET', `/images/${String(base.uuid)}`)).state, 'active');
  t.is((await call(server.url, 'DELETE', `/images/${String(child.uuid)}`)).status, 204);
  t.is((await call(server.url, 'DELETE', `/images/${String(base.uuid)}`)).status, 204);
});

test('a uuid once activated and then deleted cannot be imported again: 409, nothing stored', async (t) => {
  const server = await writableServer(t);
  const manifest = minimalManifest();
  const uuid = String(manifest.uuid);
  await publish(server.url, manifest, randomBytes(1000));
  t.is((await call(server.url, 'DELETE', `/images/${uuid}`)).status, 204);
  const before = snapshot(server.serveDir);
  assertApiError(t, await call(server.url, 'POST', `/images/${uuid}?action=import`, jsonBody(manifest)), 409, 'ImageUuidAlreadyExists');
  const form = manifestAndFile(manifest, randomBytes(100));
  assertApiError(t, await call(server.url, 'POST', '/images?activate=true', { headers: { 'content-type': form.contentType }, body: form.body }),
    409, 'ImageUuidAlreadyExists');
  t.deepEqual(snapshot(server.serveDir), before);
  t.false(fs.existsSync(path.join(server.serveDir, uuid)));
});

test('a uuid deleted before activation can be imported again', async (t) => {
  const server = await writableServer(t);
  const manifest = minimalManifest();
  const uuid = String(manifest.uuid);
  t.is((await call(server.url, 'POST', `/images/${uuid}?action=import`, jsonBody(manifest))).status, 200);
  t.is((await call(server.url, 'DELETE', `/images/${uuid}`)).status, 204);
  const again = await publish(server.url, manifest, randomBytes(1000));
  t.is(again.state, 'active');
});

/* --- credentials ------------------------------------------------------------ */

/** One of each write call, against an image that exists, and a new uuid for the import. */
function writeCalls(existing: string): { label: string; method: string; target: string; body?: string | Buffer; headers?: Record<string, string> }[] {
  const fresh = minimalManifest();
  const form = manifestAndFile(minimalManifest(), randomBytes(100));
  return [
    { label: 'AdminImportImage', method: 'POST', target: `/images/${String(fresh.uuid)}?action=import`, ...jsonBody(fresh) },
    { label: 'CreateImage', method: 'POST', target: '/images', ...jsonBody({ name: 'x', version: '1', type: 'other', os: 'other' }) },
    { label: 'CreateImage multipart', method: 'POST', target: '/images?activate=true',
      headers: { 'content-type': form.contentType }, body: form.body },
    { label: 'AddImageFile', method: 'PUT', target: `/images/${existing}/file?compression=gzip`, body: 'bytes' },
    { label: 'ActivateImage', method: 'POST', target: `/images/${existing}?action=activate`, ...jsonBody({}) },
    { label: 'DisableImage', method: 'POST', target: `/images/${existing}?action=disable` },
    { label: 'UpdateImage', method: 'POST', target: `/images/${existing}?action=update`, ...jsonBody({ description: 'x' }) },
    { label: 'DeleteImage', method: 'DELETE', target: `/images/${existing}` },
  ];
}

function assertUnauthorized(t: ExecutionContext, res: Res, label: string): void {
  assertApiError(t, res, 401, 'UnauthorizedError');
  t.regex(String(res.headers['www-authenticate']), /^Basic realm=/, `${label}: WWW-Authenticate`);
}

test('writes without credentials, or with wrong ones: 401 UnauthorizedError with WWW-Authenticate, nothing stored', async (t) => {
  // Dozens of wrong passwords from one address: more than the failure limits allow by default.
  const lenient = { burst: 1000, per_minute: 1000 };
  const server = await writableServer(t, { config: { auth_client_failures: lenient, auth_user_failures: lenient } });
  const existing = await unactivated(server.url);
  const before = snapshot(server.serveDir);
  const wrong: [string, string | null][] = [
    ['no credentials', null],
    ['wrong password', `Basic ${Buffer.from(`${USER}:${PASSWORD}x`).toString('base64')}`],
    ['unknown user', `Basic ${Buffer.from(`mallory:${PASSWORD}`).toString('base64')}`],
    ['no password', `Basic ${Buffer.from(`${USER}:`).toString('base64')}`],
    ['not base64 userinfo', 'Basic !!!'],
    ['unknown token', 'Bearer ist_notatoken'],
    ['token in Basic', `Basic ${Buffer.from(`${TOKEN_NAME}:${BEARER.slice(7)}`).toString('base64')}`],
    ['other scheme', 'Signature keyId="alice",algorithm="rsa-sha256",signature="AAAA"'],
  ];
  for (const [what, auth] of wrong) {
    for (const c of writeCalls(existing)) {
      const res = await call(server.url, c.method, c.target, { headers: c.headers, body: c.body, auth });
      assertUnauthorized(t, res, `${c.label}, ${what}`);
    }
  }
  t.deepEqual(snapshot(server.serveDir), before);
  assertConforms(t, server.serveDir, 'when done');
  // and the right ones work, both ways
  t.is((await call(server.url, 'POST', `/images/${existing}?action=update`, { ...jsonBody({ description: 'basic' }) })).status, 200);
  t.is((await call(server.url, 'POST', `/images/${existing}?action=update`, { ...jsonBody({ description: 'bearer' }), auth: BEARER })).status, 200);
});

test('a bearer token removed from the config file stops working after SIGHUP: 401, nothing stored', async (t) => {
  const serveDir = tmpDir(t);
  const creds = await writers();
  const child = await spawnServer(t, { serve_dir: serveDir, ...creds });
  const configPath = child.proc.spawnargs[child.proc.spawnargs.indexOf('--config') + 1]!;
  const first = minimalManifest();
  const ok = await call(child.where, 'POST', `/images/${String(first.uuid)}?action=import`, { ...jsonBody(first), auth: BEARER });
  t.is(ok.status, 200, ok.body.toString('utf8'));

  const config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(configPath, JSON.stringify({ ...config, tokens: {} }));
  child.proc.kill('SIGHUP');
  // A write the token may do without storing anything: it is 404 while the
  // token is good, 401 once the reload took it away.
  const probe = () => call(child.where, 'POST', `/images/${randomUUID()}?action=activate`, { auth: BEARER });
  await waitFor(async () => (await probe()).status === 401);

  const before = snapshot(serveDir);
  const second = minimalManifest();
  const refused = await call(child.where, 'POST', `/images/${String(second.uuid)}?action=import`, { ...jsonBody(second), auth: BEARER });
  assertUnauthorized(t, refused, 'revoked token');
  const put = await call(child.where, 'PUT', `/images/${String(first.uuid)}/file?compression=gzip`, { body: randomBytes(100), auth: BEARER });
  assertUnauthorized(t, put, 'revoked token, AddImageFile');
  t.deepEqual(snapshot(serveDir), before);
  // the users were reloaded from the same file, and still work
  const byUser = await call(child.where, 'POST', `/images/${String(second.uuid)}?action=import`, { ...jsonBody(second), auth: BASIC });
  t.is(byUser.status, 200);
});

/* --- requests that make no sense ------------------------------------------- */

test('AdminImportImage with a body uuid different from the URL, extra fields, or a non-JSON body: 4xx, nothing stored', async (t) => {
  const server = await writableServer(t);
  const before = snapshot(server.serveDir);
  const m = minimalManifest();
  const target = `/images/${String(m.uuid)}?action=import`;
  assertApiError(t, await call(server.url, 'POST', target, jsonBody({ ...m, uuid: randomUUID() })), 422, 'InvalidParameter');
  const extra = assertApiError(t, await call(server.url, 'POST', target, jsonBody({ ...m, flavour: 'mint' })), 422, 'InvalidParameter');
  t.regex(String(extra.message), /flavour/);
  assertApiError(t, await call(server.url, 'POST', target, jsonBody([m])), 422, 'InvalidParameter');
  const notJson = await call(server.url, 'POST', target, { headers: { 'content-type': 'application/json' }, body: '{"v":2,' });
  t.is(notJson.status, 400);
  const text = await call(server.url, 'POST', target, { headers: { 'content-type': 'text/plain' }, body: JSON.stringify(m) });
  t.true(text.status >= 400 && text.status < 500);
  t.deepEqual(snapshot(server.serveDir), before);
});

test('AddImageFile with a missing or unknown compression: 422 InvalidParameter, nothing read or stored', async (t) => {
  const server = await writableServer(t);
  const uuid = await unactivated(server.url);
  const before = snapshot(server.serveDir);
  const missing = assertApiError(t, await call(server.url, 'PUT', `/images/${uuid}/file`, { body: 'abc' }), 422, 'InvalidParameter');
  t.deepEqual(missing.errors, [{ field: 'compression', code: 'MissingParameter' }]);
  assertApiError(t, await call(server.url, 'PUT', `/images/${uuid}/file?compression=lz4`, { body: 'abc' }), 422, 'InvalidParameter');
  assertApiError(t, await call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip&sha1=xyz`, { body: 'abc' }), 422, 'InvalidParameter');
  t.deepEqual(snapshot(server.serveDir), before);
});

test('writes to an image that does not exist: 404 ResourceNotFound, nothing stored', async (t) => {
  const server = await writableServer(t);
  const before = snapshot(server.serveDir);
  const uuid = randomUUID();
  assertApiError(t, await call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip`, { body: 'abc' }), 404, 'ResourceNotFound');
  assertApiError(t, await call(server.url, 'POST', `/images/${uuid}?action=activate`), 404, 'ResourceNotFound');
  assertApiError(t, await call(server.url, 'DELETE', `/images/${uuid}`), 404, 'ResourceNotFound');
  t.deepEqual(snapshot(server.serveDir), before);
  assertConforms(t, server.serveDir, 'when done');
});

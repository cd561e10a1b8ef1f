/*
 * Clients racing each other: two imports of one uuid (exactly one wins, the
 * loser gets 409 and leaves nothing behind), and two files sent at once to
 * one unactivated image (whichever lands last, the manifest describes the
 * file on disk exactly).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { sha1 } from '../helpers/images.js';
import { BEARER, call, dataFiles, jsonBody, minimalManifest, parse, readJson, writableServer } from './kit.js';
import { assertConforms } from '../helpers/conformance.js';

const ROUNDS = 10;

/** The image folder agrees with itself: manifest, sidecar, file and what the server serves. */
async function consistent(t: ExecutionContext, base: string, serveDir: string, uuid: string): Promise<Record<string, any>> {
  const manifest = readJson(path.join(serveDir, uuid, 'manifest.json'));
  const sidecar = readJson(path.join(serveDir, uuid, 'server.json'));
  const files = dataFiles(serveDir, uuid);
  t.is(manifest.uuid, uuid);
  t.is(files.length, manifest.files.length, `data files on disk: ${files.join(', ')}`);
  if (manifest.files.length > 0) {
    const name = sidecar.files[0].name as string;
    t.deepEqual(files, [name]);
    const onDisk = fs.readFileSync(path.join(serveDir, uuid, name));
    t.is(manifest.files[0].sha1, sha1(onDisk));
    t.is(manifest.files[0].size, onDisk.length);
    const served = await call(base, 'GET', `/images/${uuid}/file`);
    t.is(sha1(served.body), sha1(onDisk));
    t.is(served.headers['content-md5'], sidecar.files[0].md5);
  }
  const api = parse(await call(base, 'GET', `/images/${uuid}`));
  t.deepEqual(api.files, manifest.files);
  return manifest;
}

test(`two clients importing the same uuid at the same moment: one 200, one 409, one consistent image (${ROUNDS} rounds)`, async (t) => {
  const server = await writableServer(t);
  for (let round = 0; round < ROUNDS; round++) {
    const uuid = randomUUID();
    const a = minimalManifest({ uuid, name: 'client-a', description: 'a' });
    const b = minimalManifest({ uuid, name: 'client-b', description: 'b' });
    const results = await Promise.all([
      call(server.url, 'POST', `/images/${uuid}?action=import`, jsonBody(a)),
      call(server.url, 'POST', `/images/${uuid}?action=import`, { ...jsonBody(b), auth: BEARER }),
    ]);
    t.deepEqual(results.map((r) => r.status).sort(), [200, 409], results.map((r) => r.body.toString('utf8')).join(' | '));
    const winner = results.find((r) => r.status === 200)!;
    const loser = results.find((r) => r.status === 409)!;
    t.is(parse(loser).code, 'ImageUuidAlreadyExists');
    const stored = await consistent(t, server.url, server.serveDir, uuid);
    t.is(stored.name, parse(winner).name, 'the image on disk is the winner\'s');
    t.is(stored.description, parse(winner).description);
  }
  assertConforms(t, server.serveDir, 'when done');
  t.deepEqual(fs.readdirSync(server.serveDir).filter((n) => !n.startsWith('.')).length, ROUNDS);
});

test('many clients importing one uuid at once: exactly one wins', async (t) => {
  const server = await writableServer(t);
  const uuid = randomUUID();
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) =>
    call(server.url, 'POST', `/images/${uuid}?action=import`, jsonBody(minimalManifest({ uuid, name: `client-${i}` })))));
  const statuses = results.map((r) => r.status);
  t.is(statuses.filter((s) => s === 200).length, 1, statuses.join());
  t.is(statuses.filter((s) => s === 409).length, 7, statuses.join());
  await consistent(t, server.url, server.serveDir, uuid);
  assertConforms(t, server.serveDir, 'when done');
});

for (const [label, compressions] of [['same compression', ['gzip', 'gzip']], ['different compressions', ['gzip', 'xz']]] as const) {
  test(`two AddImageFile PUTs of different bytes to one unactivated image (${label}): the manifest matches the file on disk`, async (t) => {
    const server = await writableServer(t);
    for (let round = 0; round < ROUNDS; round++) {
      const manifest = minimalManifest();
      const uuid = String(manifest.uuid);
      t.is((await call(server.url, 'POST', `/images/${uuid}?action=import`, jsonBody(manifest))).status, 200);
      const bodies = [randomBytes(300_000 + round * 1000), randomBytes(200_000)];
      const results = await Promise.all(bodies.map((bytes, i) =>
        call(server.url, 'PUT', `/images/${uuid}/file?compression=${compressions[i]}&sha1=${sha1(bytes)}`, { body: bytes })));
      for (const r of results) t.is(r.status, 200, r.body.toString('utf8'));
      const stored = await consistent(t, server.url, server.serveDir, uuid);
      const won = bodies.findIndex((b) => sha1(b) === stored.files[0].sha1);
      t.not(won, -1, 'the stored file is one of the two uploads, whole');
      t.is(stored.files[0].compression, compressions[won]);
      // and it activates into exactly that
      const active = parse(await call(server.url, 'POST', `/images/${uuid}?action=activate`));
      t.is(active.files[0].sha1, sha1(bodies[won]!));
    }
    assertConforms(t, server.serveDir, 'when done');
  });
}

test('ActivateImage racing AddImageFile: either the file lands before activation or is refused; never an active image without its file', async (t) => {
  const server = await writableServer(t);
  for (let round = 0; round < ROUNDS; round++) {
    const manifest = minimalManifest();
    const uuid = String(manifest.uuid);
    t.is((await call(server.url, 'POST', `/images/${uuid}?action=import`, jsonBody(manifest))).status, 200);
    const first = randomBytes(1000);
    t.is((await call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip&sha1=${sha1(first)}`, { body: first })).status, 200);
    const second = randomBytes(400_000);
    const [put, activate] = await Promise.all([
      call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip&sha1=${sha1(second)}`, { body: second }),
      call(server.url, 'POST', `/images/${uuid}?action=activate`),
    ]);
    t.is(activate.status, 200);
    t.true(put.status === 200 || (put.status === 422 && parse(put).code === 'ImageFilesImmutable'), `${put.status} ${put.body}`);
    const stored = await consistent(t, server.url, server.serveDir, uuid);
    t.is(stored.state, 'active');
    t.is(stored.files[0].sha1, sha1(put.status === 200 ? second : first));
  }
  assertConforms(t, server.serveDir, 'when done');
});

test('DeleteImage racing AddImageFile: the image is either gone entirely or consistent', async (t) => {
  const server = await writableServer(t);
  for (let round = 0; round < ROUNDS; round++) {
    const manifest = minimalManifest();
    const uuid = String(manifest.uuid);
    t.is((await call(server.url, 'POST', `/images/${uuid}?action=import`, jsonBody(manifest))).status, 200);
    const bytes = randomBytes(500_000);
    const [put, del] = await Promise.all([
      call(server.url, 'PUT', `/images/${uuid}/file?compression=gzip&sha1=${sha1(bytes)}`, { body: bytes }),
      call(server.url, 'DELETE', `/images/${uuid}`),
    ]);
    t.true([204, 404].includes(del.status), `${del.status} ${del.body}`);
    t.true(put.status < 500, `${put.status} ${put.body}`);
    if (fs.existsSync(path.join(server.serveDir, uuid))) await consistent(t, server.url, server.serveDir, uuid);
    else t.is((await call(server.url, 'GET', `/images/${uuid}`)).status, 404);
  }
  assertConforms(t, server.serveDir, 'when done');
});

/*
 * Crash safety of the import transaction: the real server process is
 * killed with SIGKILL while an upload is in flight (AddImageFile, and a
 * multipart CreateImage with ?activate=true), at three kinds of moment:
 * once the request head is in but no byte of the file, in the middle of the
 * file, and right after its last byte. It is restarted on the same
 * serve_dir each time. After every restart nothing partial is listed or
 * kept, .staging is empty, and every image published before still serves
 * its exact bytes.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { sha1, tmpDir } from '../helpers/images.js';
import { waitFor } from '../helpers/server.js';
import { spawnServer, type Child } from '../cli/spawn.js';
import { BEARER, call, dataFiles, jsonBody, manifestAndFile, minimalManifest, parse, uploadHead, writers } from './kit.js';
import { assertConforms, stagingEntries } from '../helpers/conformance.js';

/** 2 kinds × 3 moments × 2: every variant below (a replaced file, a sniffed compression) meets every moment once. */
const KILLS = 12;
const MOMENTS = ['before the first byte', 'mid-stream', 'right after the last byte'] as const;
type Moment = (typeof MOMENTS)[number];

/** mulberry32: a seeded generator, so that a failing run can be replayed with its seed. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes written into .staging so far, by any transaction. */
function stagedBytes(serveDir: string): number {
  let total = 0;
  for (const txn of stagingEntries(serveDir)) {
    const dir = path.join(serveDir, '.staging', txn);
    for (const name of fs.readdirSync(dir)) {
      try {
        total += fs.statSync(path.join(dir, name)).size;
      } catch {
        // gone between the readdir and the stat
      }
    }
  }
  return total;
}

interface Upload {
  port: number;
  /** Whether the server starts its transaction on the head alone (it does for AddImageFile). */
  startsOnHead: boolean;
  head: Buffer;
  file: Buffer;
  tail: Buffer;
}

/**
 * Sends the upload up to `moment`, makes sure the server has got that far
 * (its transaction exists in .staging, with file bytes in it for mid-stream),
 * then kills it.
 */
async function killDuring(child: Child, serveDir: string, upload: Upload, moment: Moment, random: () => number): Promise<void> {
  const socket = net.connect(upload.port, '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise((resolve) => socket.once('connect', resolve));
  const write = (b: Buffer) => new Promise((resolve) => socket.write(b, resolve));
  await write(upload.head);
  if (moment === 'before the first byte' && upload.startsOnHead) {
    // AddImageFile starts its transaction as soon as the request head is in.
    await waitFor(() => stagingEntries(serveDir).length > 0);
  } else if (moment === 'before the first byte') {
    // A multipart parser cannot tell a part's head has ended before the next
    // byte comes (it could be the start of a boundary), so nothing on disk
    // shows how far the server got: give it a moment to read what was sent.
    await new Promise((r) => setTimeout(r, 20 + Math.floor(random() * 100)));
  } else if (moment === 'mid-stream') {
    const cut = Math.max(1, Math.floor(upload.file.length * (0.1 + 0.8 * random())));
    await write(upload.file.subarray(0, cut));
    await waitFor(() => stagedBytes(serveDir) > 0);
  } else {
    await write(Buffer.concat([upload.file, upload.tail]));
    // vary the moment past the last byte: from at once to after the server is done with it
    const delay = Math.floor(random() ** 2 * 40);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  }
  child.proc.kill('SIGKILL');
  await child.exited;
  socket.destroy();
}

function putUpload(port: number, uuid: string, bytes: Buffer): Upload {
  const head = uploadHead(`PUT /images/${uuid}/file?compression=gzip&sha1=${sha1(bytes)}`, 'application/json', bytes.length);
  return { port, startsOnHead: true, head, file: bytes, tail: Buffer.alloc(0) };
}

function multipartUpload(port: number, manifest: Record<string, unknown>, bytes: Buffer): Upload {
  const form = manifestAndFile(manifest, bytes);
  // split the body around the file's bytes: they are the only copy of them in it
  const at = form.body.indexOf(bytes);
  return {
    port,
    startsOnHead: false,
    head: Buffer.concat([uploadHead('POST /images?activate=true', form.contentType, form.body.length), form.body.subarray(0, at)]),
    file: bytes,
    tail: form.body.subarray(at + bytes.length),
  };
}

interface Known {
  /** sha1s a file of this image may have: every complete upload sent to it. */
  allowed: Set<string>;
  /** Set once the image was seen active: it must then serve these bytes for ever. */
  active?: string;
}

/** Everything the brief promises after a restart. */
async function checkAfterRestart(
  t: ExecutionContext, base: string, serveDir: string, known: Map<string, Known>, label: string,
): Promise<void> {
  assertConforms(t, serveDir, `${label}: .staging is empty`);
  const trash = path.join(serveDir, '.trash');
  t.deepEqual(fs.existsSync(trash) ? fs.readdirSync(trash) : [], [], `${label}: .trash is empty`);

  const listed = parse<Record<string, any>[]>(await call(base, 'GET', '/images?state=all', { auth: BEARER }));
  const listedUuids = new Set(listed.map((m) => m.uuid as string));
  for (const image of listed) {
    const entry = known.get(image.uuid);
    t.truthy(entry, `${label}: ${image.uuid} is an image this test made`);
    if (!entry) continue;
    t.true(image.state === 'active' || image.state === 'unactivated', `${label}: state ${image.state}`);
    if (image.state === 'active') t.is(image.files.length, 1, `${label}: an active image has its file`);
    if (image.files.length > 0) {
      t.true(entry.allowed.has(image.files[0].sha1), `${label}: ${image.uuid} lists a file that was never sent whole`);
      const file = await call(base, 'GET', `/images/${image.uuid}/file`, { auth: BEARER });
      t.is(file.status, 200, `${label}: ${image.uuid} file`);
      t.is(sha1(file.body), image.files[0].sha1, `${label}: ${image.uuid} serves the sha1 it lists`);
      t.is(file.body.length, image.files[0].size);
    }
    if (image.state === 'active') {
      if (entry.active) t.is(image.files[0].sha1, entry.active, `${label}: an active image's file never changes`);
      entry.active = image.files[0].sha1;
    }
    // Nothing partial on disk either: each data file is one whole upload, and
    // temp files of atomic rewrites live in .staging, never in an image folder.
    const onDisk = dataFiles(serveDir, image.uuid);
    t.true(onDisk.length <= 1, `${label}: ${image.uuid} holds ${onDisk.join(', ')}`);
    for (const name of onDisk) {
      t.true(entry.allowed.has(sha1(fs.readFileSync(path.join(serveDir, image.uuid, name)))), `${label}: ${image.uuid}/${name} is whole`);
    }
  }
  // every image that was ever active is still there, whole
  for (const [uuid, entry] of known) {
    if (entry.active) t.true(listedUuids.has(uuid), `${label}: active image ${uuid} is still listed`);
  }
  // image folders the listing does not show must not exist either (a folder the index skips is a half image)
  for (const name of fs.readdirSync(serveDir)) {
    if (!name.startsWith('.')) t.true(listedUuids.has(name), `${label}: ${name} on disk but not listed`);
  }
}

test(`SIGKILL during uploads, ${KILLS} times, restarting on the same serve_dir: nothing partial survives, earlier images stay whole`, async (t) => {
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 2 ** 31);
  t.log(`seed ${seed} (CRASH_SEED=${seed} replays this run)`);
  const random = generator(seed);
  const serveDir = tmpDir(t);
  const config = { serve_dir: serveDir, ...(await writers()) };
  const known = new Map<string, Known>();
  const tally: Record<string, number> = {};
  const outcomes: Record<string, number> = {};

  let child = await spawnServer(t, config);
  for (let i = 0; i < KILLS; i++) {
    const kind = i % 2 === 0 ? 'AddImageFile' : 'multipart CreateImage';
    const moment = MOMENTS[Math.floor(i / 2) % MOMENTS.length]!;
    const label = `#${i} ${kind}, ${moment}`;
    tally[`${kind}, ${moment}`] = (tally[`${kind}, ${moment}`] ?? 0) + 1;
    const port = Number(new URL(child.where).port);
    const bytes = randomBytes(64 * 1024 + Math.floor(random() * 3 * 1024 * 1024));

    // Every third round first publishes one image completely: the "earlier images".
    if (i % 3 === 0) {
      const whole = randomBytes(10_000 + Math.floor(random() * 200_000));
      const form = manifestAndFile(minimalManifest({ name: `whole-${i}` }), whole);
      const res = await call(child.where, 'POST', '/images?activate=true', {
        auth: BEARER, headers: { 'content-type': form.contentType }, body: form.body,
      });
      t.is(res.status, 200, `${label}: the complete publish`);
      known.set(parse(res).uuid, { allowed: new Set([sha1(whole)]), active: sha1(whole) });
    }

    let target: string;
    if (kind === 'AddImageFile') {
      const manifest = minimalManifest({ name: `put-${i}` });
      const uuid = String(manifest.uuid);
      target = uuid;
      const imported = await call(child.where, 'POST', `/images/${uuid}?action=import`, { ...jsonBody(manifest), auth: BEARER });
      t.is(imported.status, 200, `${label}: import`);
      const entry: Known = { allowed: new Set([sha1(bytes)]) };
      known.set(uuid, entry);
      // Half of them replace a file the image already has.
      if (i % 4 === 2) {
        const first = randomBytes(50_000);
        const put = await call(child.where, 'PUT', `/images/${uuid}/file?compression=gzip&sha1=${sha1(first)}`, { auth: BEARER, body: first });
        t.is(put.status, 200, `${label}: first file`);
        entry.allowed.add(sha1(first));
      }
      await killDuring(child, serveDir, putUpload(port, uuid, bytes), moment, random);
    } else {
      // Half name their compression, half leave it to be sniffed from the first bytes.
      const files = i % 4 === 1 ? { files: [{ compression: 'gzip' }] } : {};
      const manifest = minimalManifest({ name: `form-${i}`, uuid: randomUUID(), ...files });
      target = String(manifest.uuid);
      known.set(target, { allowed: new Set([sha1(bytes)]) });
      await killDuring(child, serveDir, multipartUpload(port, manifest, bytes), moment, random);
    }

    child = await spawnServer(t, config);
    await checkAfterRestart(t, child.where, serveDir, known, label);
    const after = await call(child.where, 'GET', `/images/${target}`, { auth: BEARER });
    const outcome = after.status === 404 ? 'no image' : parse(after).files.length === 0 ? 'image without file' : `${parse(after).state} with its file`;
    outcomes[`${moment}: ${outcome}`] = (outcomes[`${moment}: ${outcome}`] ?? 0) + 1;
  }
  t.log(tally);
  t.log('what the killed uploads left:', outcomes);
  t.true(Object.values(tally).every((n) => n >= 2), 'every kind of upload was cut at every kind of moment');
  t.true([...known.values()].filter((k) => k.active).length >= KILLS / 3, 'earlier images were there to check');
});

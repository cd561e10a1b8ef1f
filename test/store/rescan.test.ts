/*
 * The index follows the disk without a restart: images added, completed,
 * replaced or removed by other processes show up or go within 2 s.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { tmpDir, v1Manifest, v2Manifest, writeImage } from '../helpers/images.js';
import { startServer, waitFor, type TestServer } from '../helpers/server.js';

/** The production poll interval: the 2 s promise is made with it. */
const DEFAULTS = { scan_interval_ms: 1000 };

async function status(server: TestServer, uuid: string): Promise<number> {
  return (await fetch(`${server.url}/images/${uuid}`)).status;
}

test('an image folder renamed into serve_dir appears within 2 s', async (t) => {
  const root = tmpDir(t);
  const server = await startServer(t, { serveDir: root, config: DEFAULTS });
  const staging = tmpDir(t);
  const bytes = randomBytes(2000);
  const img = writeImage(staging, v2Manifest(bytes), { bytes });
  fs.renameSync(img.dir, path.join(root, img.uuid));
  await waitFor(async () => (await status(server, img.uuid)) === 200, 2000);
  t.pass();
});

test('a folder written the way the original import-image did is skipped until its manifest lands', async (t) => {
  const root = tmpDir(t);
  const server = await startServer(t, { serveDir: root, config: DEFAULTS });
  const bytes = randomBytes(64 * 1024);
  const manifest = v1Manifest(bytes, 'orgbase-1.0.0.zfs.gz');
  const dir = path.join(root, String(manifest.uuid));
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'orgbase-1.0.0.zfs.gz'), bytes.subarray(0, 1000));
  await new Promise((r) => setTimeout(r, 1500));
  t.is(await status(server, String(manifest.uuid)), 404, 'no manifest yet: nothing to serve');
  fs.appendFileSync(path.join(dir, 'orgbase-1.0.0.zfs.gz'), bytes.subarray(1000));
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  await waitFor(async () => (await status(server, String(manifest.uuid))) === 200, 2000);
  const res = await fetch(`${server.url}/datasets/${manifest.uuid}/orgbase-1.0.0.zfs.gz`);
  t.true(Buffer.from(await res.arrayBuffer()).equals(bytes));
});

test('rm -rf of an image folder makes it disappear within 2 s; the others stay', async (t) => {
  const root = tmpDir(t);
  const a = writeImage(root, v2Manifest(randomBytes(10), {}), { bytes: undefined });
  const keepBytes = randomBytes(10);
  const keep = writeImage(root, v2Manifest(keepBytes), { bytes: keepBytes });
  const server = await startServer(t, { serveDir: root, config: DEFAULTS });
  t.is(await status(server, keep.uuid), 200);
  t.is(await status(server, a.uuid), 404, 'the first image has a size mismatch and never served');
  fs.rmSync(keep.dir, { recursive: true });
  await waitFor(async () => (await status(server, keep.uuid)) === 404, 2000);
  t.pass();
});

test('a manifest replaced by rename (as rsync does) is re-read within 2 s', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(100);
  const img = writeImage(root, v2Manifest(bytes, { description: 'old' }), { bytes });
  const server = await startServer(t, { serveDir: root, config: DEFAULTS });
  const tmp = path.join(img.dir, '.manifest.json.tmp');
  fs.writeFileSync(tmp, JSON.stringify({ ...img.manifest, description: 'new' }));
  fs.renameSync(tmp, path.join(img.dir, 'manifest.json'));
  await waitFor(async () => {
    const m = (await (await fetch(`${server.url}/images/${img.uuid}`)).json()) as { description: string };
    return m.description === 'new';
  }, 2000);
  t.pass();
});

test('a file swapped behind the index is never served: 404, then the image is dropped', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(4096);
  const img = writeImage(root, v2Manifest(bytes), { bytes });
  // Only a full sweep would notice an in-place edit: keep it out of the way.
  const server = await startServer(t, { serveDir: root, config: { full_scan_interval_ms: 3_600_000 } });
  fs.writeFileSync(path.join(img.dir, img.fileName), randomBytes(100));
  const res = await fetch(`${server.url}/images/${img.uuid}/file`);
  t.is(res.status, 404);
  t.is(((await res.json()) as { code: string }).code, 'ResourceNotFound');
  await waitFor(async () => (await status(server, img.uuid)) === 404, 2000);
  t.pass();
});

test('non-image entries are ignored: dot-folders, uppercase and malformed uuids, plain files', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(10);
  const img = writeImage(root, v2Manifest(bytes), { bytes });
  const upper = v2Manifest(bytes);
  upper.uuid = String(upper.uuid).toUpperCase();
  writeImage(root, upper, { bytes });
  fs.mkdirSync(path.join(root, '.staging', 'x'), { recursive: true });
  fs.writeFileSync(path.join(root, 'README.md'), 'hello');
  fs.mkdirSync(path.join(root, 'not-a-uuid'));
  const server = await startServer(t, { serveDir: root });
  const list = (await (await fetch(`${server.url}/images?state=all`)).json()) as { uuid: string }[];
  t.deepEqual(list.map((m) => m.uuid), [img.uuid]);
  t.false(server.logs.some((l) => l.level === 40), 'nothing here deserves a warning');
});

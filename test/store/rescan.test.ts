/*
 * The index follows the disk without a restart: images added, completed,
 * replaced or removed by other processes show up or go. Folders added or
 * removed are seen by the look at serve_dir (every 200 ms here,
 * startServer's scan_interval_ms; 1000 ms in production); changes inside a
 * folder by inotify, or else by the rolling sweep. Each hand-made change is
 * tried both ways: with inotify, and with only the looks and a sweep made
 * short for the test. How long each change took is logged, never asserted.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { buildConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/log.js';
import { requestRescan } from '../../src/store/rescan-request.js';
import { ImageStore } from '../../src/store/store.js';
import { tmpDir, v1Manifest, v2Manifest, writeImage } from '../helpers/images.js';
import { startServer, waitFor, type TestServer } from '../helpers/server.js';

/** Generous: a deadline for a loaded machine, not a promise. */
const DEADLINE_MS = 10_000;

async function status(server: TestServer, uuid: string): Promise<number> {
  return (await fetch(`${server.url}/images/${uuid}`)).status;
}

async function listed(server: TestServer): Promise<string[]> {
  return ((await (await fetch(`${server.url}/images?state=all`)).json()) as { uuid: string }[]).map((m) => m.uuid);
}

test('the look that docs/operations.md promises runs every second by default, the rolling sweep over 5 minutes', (t) => {
  const config = buildConfig({ serve_dir: '/srv/images' }, '/etc/image-server/config.json');
  t.is(config.scan_interval_ms, 1000);
  t.is(config.full_scan_interval_ms, 300_000);
  t.true(config.watch_fs);
});

/** inotify where the platform has it; or no inotify, and a sweep of 2 s so the test is quick. */
const MODES = {
  watched: { watch_fs: true, full_scan_interval_ms: 3_600_000 },
  swept: { watch_fs: false, full_scan_interval_ms: 2000 },
} as const;

for (const [mode, config] of Object.entries(MODES)) {
  test(`${mode}: a new folder renamed in, rm -rf, a manifest and a file replaced by rename are all found`, async (t) => {
    const root = tmpDir(t);
    const bytes = randomBytes(3000);
    const kept = writeImage(root, v2Manifest(bytes, { description: 'old' }), { bytes });
    const doomed = writeImage(root, v2Manifest(bytes), { bytes });
    const server = await startServer(t, { serveDir: root, config });
    const description = async () => ((await (await fetch(`${server.url}/images/${kept.uuid}`)).json()) as { description?: string }).description;

    const staging = tmpDir(t);
    const added = writeImage(staging, v2Manifest(bytes), { bytes });
    fs.renameSync(added.dir, path.join(root, added.uuid));
    t.log(`new folder: ${await waitFor(async () => (await status(server, added.uuid)) === 200, DEADLINE_MS)} ms`);

    fs.rmSync(doomed.dir, { recursive: true });
    t.log(`rm -rf: ${await waitFor(async () => (await status(server, doomed.uuid)) === 404, DEADLINE_MS)} ms`);

    const tmp = path.join(kept.dir, '.manifest.json.tmp');
    fs.writeFileSync(tmp, JSON.stringify({ ...kept.manifest, description: 'new' }));
    fs.renameSync(tmp, path.join(kept.dir, 'manifest.json'));
    t.log(`manifest by rename: ${await waitFor(async () => (await description()) === 'new', DEADLINE_MS)} ms`);

    // A file of another size swapped in: the folder no longer matches its manifest.
    const file = path.join(kept.dir, kept.fileName);
    fs.writeFileSync(`${file}.tmp`, randomBytes(10));
    fs.renameSync(`${file}.tmp`, file);
    t.log(`file swapped out: ${await waitFor(async () => (await status(server, kept.uuid)) === 404, DEADLINE_MS)} ms`);
    t.true(server.store.brokenImages().has(kept.uuid));
    fs.writeFileSync(`${file}.tmp`, bytes);
    fs.renameSync(`${file}.tmp`, file);
    t.log(`file swapped back: ${await waitFor(async () => (await status(server, kept.uuid)) === 200, DEADLINE_MS)} ms`);
    const res = await fetch(`${server.url}/images/${kept.uuid}/file`);
    t.true(Buffer.from(await res.arrayBuffer()).equals(bytes));
    t.deepEqual((await listed(server)).sort(), [kept.uuid, added.uuid].sort());
  });
}

test('with neither inotify nor a sweep due, `image-server rescan` (a .rescan file) forces a full sweep', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(100);
  const img = writeImage(root, v2Manifest(bytes, { description: 'old' }), { bytes });
  const server = await startServer(t, { serveDir: root, config: { watch_fs: false, full_scan_interval_ms: 3_600_000 } });
  fs.writeFileSync(path.join(img.dir, 'manifest.json'), JSON.stringify({ ...img.manifest, description: 'new' }));
  const description = async () => ((await (await fetch(`${server.url}/images/${img.uuid}`)).json()) as { description: string }).description;
  t.is(await description(), 'old', 'nothing looks inside the folder on its own for an hour');
  t.true(await requestRescan(root, DEADLINE_MS), 'the server took the request');
  await waitFor(async () => (await description()) === 'new', DEADLINE_MS);
  t.false(fs.existsSync(path.join(root, '.rescan')));
});

test('an image folder renamed into serve_dir is served at the next poll', async (t) => {
  const root = tmpDir(t);
  const server = await startServer(t, { serveDir: root });
  const staging = tmpDir(t);
  const bytes = randomBytes(2000);
  const img = writeImage(staging, v2Manifest(bytes), { bytes });
  t.is(await status(server, img.uuid), 404);
  fs.renameSync(img.dir, path.join(root, img.uuid));
  t.log(`served after ${await waitFor(async () => (await status(server, img.uuid)) === 200, DEADLINE_MS)} ms`);
  const file = await fetch(`${server.url}/images/${img.uuid}/file`);
  t.true(Buffer.from(await file.arrayBuffer()).equals(bytes));
  t.true(server.logs.some((l) => l.msg === 'image loaded' && l.uuid === img.uuid));
});

test('a folder written the way the original import-image did is skipped until its manifest lands', async (t) => {
  const root = tmpDir(t);
  const server = await startServer(t, { serveDir: root });
  const bytes = randomBytes(64 * 1024);
  const manifest = v1Manifest(bytes, 'orgbase-1.0.0.zfs.gz');
  const uuid = String(manifest.uuid);
  const dir = path.join(root, uuid);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'orgbase-1.0.0.zfs.gz'), bytes.subarray(0, 1000));
  // A poll has looked at the folder once it is listed as broken, and why.
  await waitFor(() => server.store.brokenImages().has(uuid), DEADLINE_MS);
  t.deepEqual(server.store.brokenImages().get(uuid), ['manifest.json is missing']);
  t.is(await status(server, uuid), 404, 'no manifest yet: nothing to serve');
  fs.appendFileSync(path.join(dir, 'orgbase-1.0.0.zfs.gz'), bytes.subarray(1000));
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  t.log(`served ${await waitFor(async () => (await status(server, uuid)) === 200, DEADLINE_MS)} ms after its manifest landed`);
  t.false(server.store.brokenImages().has(uuid));
  const res = await fetch(`${server.url}/datasets/${uuid}/orgbase-1.0.0.zfs.gz`);
  t.true(Buffer.from(await res.arrayBuffer()).equals(bytes));
});

test('rm -rf of an image folder makes it disappear at the next poll; the others stay', async (t) => {
  const root = tmpDir(t);
  const images = [0, 1, 2].map(() => {
    const bytes = randomBytes(10);
    return writeImage(root, v2Manifest(bytes), { bytes });
  });
  const server = await startServer(t, { serveDir: root });
  t.deepEqual((await listed(server)).sort(), images.map((i) => i.uuid).sort());
  const [gone, ...kept] = images as [typeof images[number], ...typeof images];
  fs.rmSync(gone.dir, { recursive: true });
  t.log(`gone after ${await waitFor(async () => (await status(server, gone.uuid)) === 404, DEADLINE_MS)} ms`);
  t.deepEqual((await listed(server)).sort(), kept.map((i) => i.uuid).sort());
  t.true(server.logs.some((l) => l.msg === 'image removed from disk' && l.uuid === gone.uuid));
});

test('a manifest replaced by rename (as rsync does) is re-read at the next poll', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(100);
  const img = writeImage(root, v2Manifest(bytes, { description: 'old' }), { bytes });
  const server = await startServer(t, { serveDir: root });
  const description = async () => ((await (await fetch(`${server.url}/images/${img.uuid}`)).json()) as { description: string }).description;
  t.is(await description(), 'old');
  const tmp = path.join(img.dir, '.manifest.json.tmp');
  fs.writeFileSync(tmp, JSON.stringify({ ...img.manifest, description: 'new' }));
  fs.renameSync(tmp, path.join(img.dir, 'manifest.json'));
  t.log(`re-read after ${await waitFor(async () => (await description()) === 'new', DEADLINE_MS)} ms`);
  const ds = (await (await fetch(`${server.url}/datasets/${img.uuid}`)).json()) as { description: string };
  t.is(ds.description, 'new', 'both views follow the new manifest');
});

test('a one-shot command opening the store (images list) leaves a rescan request for the server', async (t) => {
  const root = tmpDir(t);
  fs.writeFileSync(path.join(root, '.rescan'), 'x');
  const store = await ImageStore.open({ serveDir: root, log: createLogger('silent'), watch: false });
  await store.rescan(true);
  await store.close();
  t.true(fs.existsSync(path.join(root, '.rescan')));
  fs.rmSync(path.join(root, '.rescan'));
});

test('a file swapped behind the index is never served: 404, then the image is dropped', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(4096);
  const img = writeImage(root, v2Manifest(bytes), { bytes });
  // inotify or the sweep would notice the edit first: keep them out of the way.
  const server = await startServer(t, { serveDir: root, config: { watch_fs: false, full_scan_interval_ms: 3_600_000 } });
  fs.writeFileSync(path.join(img.dir, img.fileName), randomBytes(100));
  const res = await fetch(`${server.url}/images/${img.uuid}/file`);
  t.is(res.status, 404);
  t.is(((await res.json()) as { code: string }).code, 'ResourceNotFound');
  t.true(server.logs.some((l) => l.msg === 'image file changed on disk; rescanning' && l.uuid === img.uuid));
  await waitFor(async () => (await status(server, img.uuid)) === 404, DEADLINE_MS);
  t.deepEqual(await listed(server), []);
  t.true(server.store.brokenImages().has(img.uuid), 'the rescan found the size no longer matches');
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

test('a rescan asked for while one is under way settles only after a look that began after the asking', async (t) => {
  const root = tmpDir(t);
  const store = await ImageStore.open({ serveDir: root, log: createLogger('silent'), watch: false });
  t.teardown(() => store.close());
  // Enough folders that the look loads them in several batches, letting other work run in between.
  const early = Array.from({ length: 1000 }, () => {
    const bytes = randomBytes(16);
    return writeImage(root, v2Manifest(bytes), { bytes }).uuid;
  });
  const under = store.rescan();
  while (!early.some((uuid) => store.get(uuid))) await new Promise((resolve) => setImmediate(resolve));
  t.false(early.every((uuid) => store.get(uuid)), 'the first look is still loading');
  // Made after that look read serve_dir's names.
  const bytes = randomBytes(16);
  const { uuid } = writeImage(root, v2Manifest(bytes), { bytes });
  await store.rescan();
  t.truthy(store.get(uuid), 'the folder made during the first look is in the index');
  await under;
  t.is(store.list().length, 1001);
});

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { createLogger } from '../../src/log.js';
import { readIndexCache, writeIndexCache } from '../../src/store/index-cache.js';
import { ImageRecord } from '../../src/store/record.js';
import { ImageStore } from '../../src/store/store.js';
import { tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { waitFor } from '../helpers/server.js';

const log = createLogger('silent');

function images(root: string, n: number) {
  return Array.from({ length: n }, (_, i) => {
    const bytes = randomBytes(100);
    return writeImage(root, v2Manifest(bytes, { description: `image ${i}` }), { bytes, md5: true });
  });
}

test('a restart from the snapshot serves what is on disk, not what was', async (t) => {
  const root = tmpDir(t);
  const [kept, edited, removed] = images(root, 3);
  const first = await ImageStore.open({ serveDir: root, log, watch: false });
  await writeIndexCache(first.layout, first.list());
  await first.close();
  t.is(readIndexCache(first.layout)?.length, 3);

  // While the server was down: one manifest replaced by rename, one folder removed, one added.
  const tmp = path.join(edited!.dir, '.m.tmp');
  fs.writeFileSync(tmp, JSON.stringify({ ...edited!.manifest, description: 'edited' }));
  fs.renameSync(tmp, path.join(edited!.dir, 'manifest.json'));
  fs.rmSync(removed!.dir, { recursive: true });
  const [added] = images(root, 1);

  const store = await ImageStore.open({ serveDir: root, log, scanIntervalMs: 60_000 });
  t.teardown(() => store.close());
  t.deepEqual(store.list().map((r) => r.uuid).sort(), [kept!.uuid, edited!.uuid, added!.uuid].sort());
  t.is(store.get(edited!.uuid)?.manifest.description, 'edited');
  t.is(store.get(kept!.uuid)?.files[0]?.mtime.getTime(), fs.statSync(path.join(kept!.dir, kept!.fileName)).mtime.getTime());
});

test('a server serves from the snapshot at once and re-reads the folders changed while it was down just after', async (t) => {
  const root = tmpDir(t);
  const [kept, edited, removed] = images(root, 3);
  const first = await ImageStore.open({ serveDir: root, log, watch: false });
  await writeIndexCache(first.layout, first.list());
  await first.close();

  const tmp = path.join(edited!.dir, '.m.tmp');
  fs.writeFileSync(tmp, JSON.stringify({ ...edited!.manifest, description: 'edited' }));
  fs.renameSync(tmp, path.join(edited!.dir, 'manifest.json'));
  fs.rmSync(removed!.dir, { recursive: true });
  const [added] = images(root, 1);

  // Looks at serve_dir and sweeps far apart: only the check of the stamps after open() can find the edit.
  const store = await ImageStore.open({ serveDir: root, log, scanIntervalMs: 60_000, stampsInBackground: true });
  t.teardown(() => store.close());
  t.deepEqual(store.list().map((r) => r.uuid).sort(), [kept!.uuid, edited!.uuid, added!.uuid].sort(), 'folders added and gone, at once');
  await waitFor(() => store.get(edited!.uuid)?.manifest.description === 'edited');
  t.is(store.get(kept!.uuid)?.manifest.description, 'image 0');
});

test('text beyond ASCII survives the snapshot, which is ASCII itself', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(100);
  const description = 'café, Ωmega, 日本, and one beyond the BMP: 😀';
  const { uuid } = writeImage(root, v2Manifest(bytes, { description }), { bytes, md5: true });
  const store = await ImageStore.open({ serveDir: root, log, watch: false });
  await writeIndexCache(store.layout, store.list());
  await store.close();
  t.true(fs.readFileSync(store.layout.indexSnapshotPath()).every((byte) => byte < 0x80));
  t.is(readIndexCache(store.layout)?.find((r) => r.uuid === uuid)?.manifest.description, description);
});

test('a snapshot of another version, another folder, or garbage is ignored', async (t) => {
  const root = tmpDir(t);
  images(root, 2);
  const store = await ImageStore.open({ serveDir: root, log, watch: false });
  await writeIndexCache(store.layout, store.list());
  await store.close();
  const file = store.layout.indexSnapshotPath();
  const [headLine, ...lines] = fs.readFileSync(file, 'latin1').split('\n');
  const head = JSON.parse(headLine!);
  const withHead = (changed: object) => fs.writeFileSync(file, [JSON.stringify({ ...head, ...changed }), ...lines].join('\n'));
  withHead({ version: '0.0.0-other' });
  t.is(readIndexCache(store.layout), null);
  withHead({ root: '/elsewhere' });
  t.is(readIndexCache(store.layout), null);
  withHead({ format: 2 });
  t.is(readIndexCache(store.layout), null, 'the format before lines');
  withHead({});
  t.is(readIndexCache(store.layout)?.length, 2, 'the same head again reads');
  fs.writeFileSync(file, [headLine, ...lines.map((l) => l.split('\t').slice(0, -1).join('\t'))].join('\n'));
  t.is(readIndexCache(store.layout), null, 'a line short of a field');
  fs.writeFileSync(file, [headLine, ...lines.map((l) => l.replace(/\t\d+\t/, '\tsoon\t'))].join('\n'));
  t.is(readIndexCache(store.layout), null, 'a published time that is no number');
  fs.writeFileSync(file, '{"format": 1, "records": [');
  t.is(readIndexCache(store.layout), null);
  const again = await ImageStore.open({ serveDir: root, log, scanIntervalMs: 60_000 });
  t.teardown(() => again.close());
  t.is(again.list().length, 2, 'a bad snapshot only costs a full load');
});

test('a snapshot of several MB, written in pieces, reads back record for record', async (t) => {
  const root = tmpDir(t);
  images(root, 1);
  const store = await ImageStore.open({ serveDir: root, log, watch: false });
  await store.close();
  const [one] = store.list();
  const records = Array.from({ length: 3000 }, (_, i) => ImageRecord.fromManifest(
    { ...one!.manifest, uuid: `${i}`, description: `${'é☃'.repeat(500)} ${i}${i === 7 ? '\u0001' : ''}` },
    { legacy: i % 2 ? null : { creator_name: `Ωmega ${i}` }, files: one!.files }, `stamp-${i}`,
  ));
  await writeIndexCache(store.layout, records);
  const file = store.layout.indexSnapshotPath();
  t.true(fs.statSync(file).size > 4 * 1024 * 1024, 'larger than several pieces');
  t.deepEqual(readIndexCache(store.layout)?.map(partsOf), records.map(partsOf));
});

/** What a record says, through its public face. */
function partsOf(r: ImageRecord) {
  const { uuid, publishedMs, isPublic, state, stamp, manifestText, manifest, facts, entry, legacy, files, relabelled } = r;
  // Through JSON: a fact the manifest lacks is an undefined key on one side, no key on the other.
  return { uuid, publishedMs, isPublic, state, stamp, manifestText, manifest, facts: JSON.stringify(facts), entry, legacy, files, relabelled };
}

test('a server that started without a snapshot writes one within seconds, not a minute later', async (t) => {
  const root = tmpDir(t);
  images(root, 2);
  const store = await ImageStore.open({ serveDir: root, log, scanIntervalMs: 60_000 });
  t.teardown(() => store.close());
  const file = store.layout.indexSnapshotPath();
  const deadline = Date.now() + 20_000;
  while (!fs.existsSync(file) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  t.is(readIndexCache(store.layout)?.length, 2);
});

test('a snapshot write that outlives its serve_dir fails, and does not bring the folder back', async (t) => {
  const root = tmpDir(t);
  images(root, 1);
  const store = await ImageStore.open({ serveDir: root, log, watch: false });
  await store.close();
  fs.rmSync(root, { recursive: true });
  const err = await t.throwsAsync(writeIndexCache(store.layout, store.list()));
  t.is((err as NodeJS.ErrnoException).code, 'ENOENT');
  t.false(fs.existsSync(root));
});

test('a file time with a fraction of a millisecond reads back as fs.Stats gives it, so Last-Modified stays the same', async (t) => {
  const root = tmpDir(t);
  const [image] = images(root, 1);
  const file = path.join(image!.dir, image!.fileName);
  // 999.6 ms: truncated, it would fall in the second before the one fs.Stats gives.
  fs.utimesSync(file, 1_700_000_000.9996, 1_700_000_000.9996);
  const store = await ImageStore.open({ serveDir: root, log, watch: false });
  await store.close();
  await writeIndexCache(store.layout, store.list());
  const stat = fs.statSync(file);
  t.not(stat.mtimeMs, Math.trunc(stat.mtimeMs), 'the filesystem keeps the fraction');
  t.is(readIndexCache(store.layout)?.[0]?.files[0]?.mtime.getTime(), stat.mtime.getTime());
});

/*
 * import-image's rule that no two images share a name and version, held
 * by the store's gate on the manifest as it will be written: names and
 * versions set through --set count as much as the arguments, one after
 * the other and at the same moment.
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import test from 'ava';
import { createLogger } from '../../src/log.js';
import { ImageStore } from '../../src/store/store.js';
import { imageDirs, importImage, randomGzip, readManifest, served } from '../gz/kit.js';
import { v2Manifest, writeImage } from '../helpers/images.js';

test('--set name=… version=… cannot take a name and version already taken', async (t) => {
  const s = served(t);
  const first = await importImage(s, ['base', '1.0.0', 'first'], randomGzip());
  t.is(first.status, 0, first.stderr);
  const again = await importImage(s, ['other', '9.9.9', 'again', '--set', 'name=base', '--set', 'version=1.0.0'], randomGzip());
  t.is(again.status, 1);
  t.regex(again.stderr, /base 1\.0\.0 is already taken/);
  t.is(imageDirs(s.serveDir).length, 1);
});

test('two imports racing for one name and version, one of them through --set: exactly one wins, every round', async (t) => {
  const s = served(t);
  for (let round = 0; round < 4; round++) {
    const name = `race${round}`;
    // Both streams end together, so both imports reach the gate at about the same moment.
    const streams = [new PassThrough(), new PassThrough()];
    const runs = [
      importImage(s, [name, '1.0.0', 'plain'], streams[0]),
      importImage(s, ['decoy', '2.0.0', 'via --set', '--set', `name=${name}`, '--set', 'version=1.0.0'], streams[1]),
    ];
    const bytes = randomGzip(256 * 1024);
    for (const stream of streams) stream.end(bytes);
    const results = await Promise.all(runs);
    t.deepEqual(results.map((r) => r.status).sort(), [0, 1], results.map((r) => r.stderr).join('\n'));
    const named = imageDirs(s.serveDir).map((uuid) => readManifest(s.serveDir, uuid)).filter((m) => m.name === name);
    t.is(named.length, 1, `round ${round}: one image named ${name}@1.0.0`);
  }
});

test('import-image starts from the server\'s index snapshot, and still sees the folders added since', async (t) => {
  const s = served(t);
  const first = await importImage(s, ['base', '1.0.0', 'first'], randomGzip());
  t.is(first.status, 0, first.stderr);
  const uuid = first.stdout.trim();
  // The snapshot a stopping server writes; in it, the image goes by another name (its folder is not touched).
  const store = await ImageStore.open({ serveDir: s.serveDir, log: createLogger('silent') });
  await store.close({ snapshot: true });
  const snapshotFile = path.join(s.serveDir, '.index-cache.json');
  fs.writeFileSync(snapshotFile, fs.readFileSync(snapshotFile, 'utf8').replace('"name":"base"', '"name":"ghost"'));
  const ghost = await importImage(s, ['ghost', '1.0.0', 'named as in the snapshot'], randomGzip());
  t.is(ghost.status, 1);
  t.regex(ghost.stderr, new RegExp(`ghost 1\\.0\\.0 is already taken by image ${uuid}`), 'the unchanged folder came from the snapshot');

  const bytes = randomGzip();
  writeImage(s.serveDir, v2Manifest(bytes, { name: 'late' }), { bytes });
  const late = await importImage(s, ['late', '1.0.0', 'added after the snapshot'], randomGzip());
  t.is(late.status, 1);
  t.regex(late.stderr, /late 1\.0\.0 is already taken/, 'a folder added after the snapshot is read');
  t.is(imageDirs(s.serveDir).length, 2);
});

/*
 * The background MD5 pass over folders legacy tools wrote (no server.json):
 * paced so slowly here (md5_rate_mb_s) that it never reaches the files the
 * tests download, so what they see comes from a download moving its file to
 * the front. The real sdc-clients@13 getImageFile, which throws without a
 * Content-MD5, is the judge.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { md5b64, tmpDir, v1Manifest, v2Manifest, writeImage, type ImageOnDisk } from '../helpers/images.js';
import { startServer, waitFor } from '../helpers/server.js';
import {
  getImageFile, imgapiClient,
} from '../helpers/legacy-clients.js';

/** The first file alone costs the pass at least 64 KiB: minutes at this rate. */
const CRAWL = { md5_rate_mb_s: 0.001 };

function legacyImages(root: string, n: number, size: number): ImageOnDisk[] {
  return Array.from({ length: n }, (_, i) => {
    const bytes = randomBytes(size);
    return writeImage(root, v1Manifest(bytes, `legacy-${i}.zfs.bz2`), { bytes, fileName: `legacy-${i}.zfs.bz2` });
  });
}

test('a legacy file downloaded right after start-up carries its Content-MD5, and sdc-clients getImageFile accepts it', async (t) => {
  const root = tmpDir(t);
  const images = legacyImages(root, 4, 3 * 1024 * 1024 + 17);
  const server = await startServer(t, { serveDir: root, config: CRAWL });
  const byListing = (n: number) => images.find((i) => i.uuid === server.store.list().at(n)!.uuid)!;
  const last = byListing(-1);
  t.is(server.store.get(last.uuid)?.files[0]?.md5, undefined, 'the pass has not reached it');
  // The file the pass is on, paused after its first chunk for minutes.
  const current = byListing(0);

  const out = path.join(tmpDir(t), 'file');
  const res = await getImageFile(imgapiClient(t, server.url), last.uuid, out);
  t.is(res?.headers['content-md5'], md5b64(last.bytes));
  t.true(fs.readFileSync(out).equals(last.bytes));

  const raw = await fetch(`${server.url}/images/${current.uuid}/file`);
  t.is(raw.headers.get('content-md5'), md5b64(current.bytes));
  t.true(Buffer.from(await raw.arrayBuffer()).equals(current.bytes));
});

test('an MD5 the download waited for is written to server.json without rebuilding the listings', async (t) => {
  const root = tmpDir(t);
  const [crawled, wanted] = legacyImages(root, 2, 1000);
  const server = await startServer(t, { serveDir: root, config: CRAWL });
  const generation = server.store.generation;
  const res = await fetch(`${server.url}/images/${wanted!.uuid}/file`);
  t.is(res.headers.get('content-md5'), md5b64(wanted!.bytes));
  await res.arrayBuffer();
  const sidecar = path.join(wanted!.dir, 'server.json');
  // Written in a batch: stopping the pass writes what it has (the server does so on shutdown too).
  await server.store.close();
  await server.store.digestsIdle();
  t.deepEqual(JSON.parse(fs.readFileSync(sidecar, 'utf8')), { files: [{ name: wanted!.fileName, md5: md5b64(wanted!.bytes) }] });
  t.false(fs.existsSync(path.join(crawled!.dir, 'server.json')), 'the paced pass never got to the other one');
  await server.store.rescan(true);
  t.is(server.store.generation, generation, 'server.json changed, the listing did not');
  t.is(server.store.get(wanted!.uuid)?.files[0]?.md5, md5b64(wanted!.bytes));
});

test('a file that does not match its manifest gets no MD5 and is sent without one', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(5000);
  const bad = writeImage(root, v2Manifest(bytes), { bytes: Buffer.from(bytes).fill(7, 0, 10) });
  const server = await startServer(t, { serveDir: root, config: CRAWL });
  const res = await fetch(`${server.url}/images/${bad.uuid}/file`);
  t.is(res.status, 200);
  t.is(res.headers.get('content-md5'), null);
  await res.arrayBuffer();
  await waitFor(() => server.logs.some((l) => l.msg === 'file does not match the sha1 in its manifest' && l.uuid === bad.uuid));
});

test('the paced pass still gets through every legacy file on its own', async (t) => {
  const root = tmpDir(t);
  const images = legacyImages(root, 3, 2000);
  const server = await startServer(t, { serveDir: root, config: { md5_rate_mb_s: 5 } });
  await server.store.digestsIdle();
  for (const img of images) t.is(server.store.get(img.uuid)?.files[0]?.md5, md5b64(img.bytes));
});

/*
 * kill -9 import-image at random points, 20 times, while a slow producer
 * feeds it: before it reads, mid-stream, while it fsyncs and renames, after.
 * The kills are spread evenly over the import's life (one in each 1/20 of
 * it), so every stretch of it is hit, and each outcome is logged.
 * Each time the new image is either absent or whole, and every earlier
 * image still matches its sha1; later imports clean up after the dead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { createLogger } from '../../src/log.js';
import { ImageStore } from '../../src/store/store.js';
import { waitFor } from '../helpers/server.js';
import {
  IMPORT_IMAGE, imageDirs, imageFile, importImage, randomGzip, readManifest, served, sha1, UUID_LINE,
} from './kit.js';
import { assertConforms, stagingEntries } from '../helpers/conformance.js';

const KILLS = 20;
const CHUNK = 64 * 1024;

/** Writes `data` to the child's stdin a chunk every few ms, until done or the child is gone. */
async function slowProducer(stdin: NodeJS.WritableStream & { destroyed?: boolean }, data: Buffer): Promise<void> {
  stdin.on('error', () => undefined);
  for (let at = 0; at < data.length; at += CHUNK) {
    if (stdin.destroyed) return;
    const ok = stdin.write(data.subarray(at, at + CHUNK));
    if (!ok) await new Promise((r) => setTimeout(r, 5));
    await sleep(8 + Math.random() * 8);
  }
  if (!stdin.destroyed) stdin.end();
}

/** Kills `child` when the test ends, however it ends, if it still runs. */
function reap(t: ExecutionContext, child: ChildProcess): void {
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  });
}

test.serial('kill -9 import-image at random points: nothing partial is ever visible', async (t) => {
  const s = served(t);
  const known = new Map<string, string>(); // uuid → sha1 of its file
  for (const n of [1, 2]) {
    const data = randomGzip(200 * 1024);
    const r = await importImage(s, ['earlier', `${n}.0.0`, 'published before the kills'], data);
    t.is(r.status, 0, r.stderr);
    known.set(r.stdout.trim(), sha1(data));
  }
  // One import run to its end, fed like the victims: how long an import lives on this machine now.
  const paced = randomGzip(1536 * 1024);
  const startedAt = Date.now();
  const first = spawn(IMPORT_IMAGE, ['--config', s.configFile, 'earlier', '3.0.0', 'fed like the victims'], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  reap(t, first);
  let out = '';
  first.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const firstExit = new Promise<number | null>((r) => first.once('close', r));
  await slowProducer(first.stdin, paced);
  t.is(await firstExit, 0);
  t.regex(out, UUID_LINE);
  known.set(out.trim(), sha1(paced));
  // The kills cover that life and a little more, so some land after the publish.
  const window = Math.round((Date.now() - startedAt) * 1.2);
  t.log(`an import fed like the victims lives ${Date.now() - startedAt} ms; kills spread over ${window} ms`);

  const outcomes = { absent: 0, whole: 0 };
  const killedVersions: string[] = [];
  for (let i = 0; i < KILLS; i++) {
    const uuid = randomUUID();
    const version = `1.0.${i}`;
    const data = randomGzip(1536 * 1024);
    const child = spawn(IMPORT_IMAGE, ['--config', s.configFile, '--uuid', uuid, 'victim', version, 'killed'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    reap(t, child);
    const exited = new Promise((r) => child.once('exit', r));
    const producing = slowProducer(child.stdin, data);
    // Stratified: every stretch of the import's life gets its share of kills.
    const delay = ((i + Math.random()) / KILLS) * window;
    await sleep(delay);
    child.kill('SIGKILL');
    await exited;
    await producing;

    const dirs = imageDirs(s.serveDir);
    if (dirs.includes(uuid)) {
      // Published before it died: then it must be whole.
      const m = readManifest(s.serveDir, uuid);
      t.is(m.state, 'active');
      t.deepEqual(m.files, [{ sha1: sha1(data), size: data.length, compression: 'gzip' }], `kill ${i} after ${delay} ms`);
      t.true(imageFile(s.serveDir, uuid).equals(data));
      known.set(uuid, sha1(data));
      outcomes.whole++;
    } else {
      outcomes.absent++;
      killedVersions.push(version);
    }
    t.deepEqual(dirs, [...known.keys()].sort(), `kill ${i}: only whole images are in serve_dir`);
    for (const [u, hash] of known) {
      t.is(sha1(imageFile(s.serveDir, u)), hash, `kill ${i}: image ${u} still matches its sha1`);
    }
  }
  t.log(`${KILLS} kills: ${outcomes.absent} left nothing, ${outcomes.whole} had published a whole image`);

  // The store loads every image and finds nothing broken.
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const store = await ImageStore.open({ serveDir: s.serveDir, log: createLogger('info', sink), watch: false });
  t.deepEqual(store.list().map((r) => r.uuid).sort(), [...known.keys()].sort());
  for (const record of store.list()) t.is(record.manifest.files?.[0]?.sha1, known.get(record.uuid) ?? 'unknown');
  t.like(logs.find((l) => l.msg === 'index loaded'), { broken: 0 });
  await store.close();
  assertConforms(t, s.serveDir, 'opening the store removed the dead imports\' staging folders');

  // A fresh import works, even for a name and version whose importer was killed holding its lock.
  const again = killedVersions[killedVersions.length - 1] ?? '9.9.9';
  const r = await importImage(s, ['victim', again, 'after the kills'], randomGzip());
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, UUID_LINE);
  assertConforms(t, s.serveDir, 'when done');
});

test.serial('a fresh import-image removes the staging leftovers of a killed one', async (t) => {
  const s = served(t);
  const child = spawn(IMPORT_IMAGE, ['--config', s.configFile, 'victim', '1.0.0', 'killed'], { stdio: ['pipe', 'ignore', 'ignore'] });
  reap(t, child);
  const exited = new Promise((r) => child.once('exit', r));
  child.stdin.on('error', () => undefined);
  child.stdin.write(randomGzip(1024 * 1024).subarray(0, 512 * 1024));
  // Wait until it has staged something, then kill it mid-stream.
  await waitFor(() => stagingEntries(s.serveDir).length > 0, 30_000);
  t.is(stagingEntries(s.serveDir).length, 1);
  child.kill('SIGKILL');
  await exited;
  t.is(stagingEntries(s.serveDir).length, 1, 'the dead import left its staging folder');
  t.deepEqual(imageDirs(s.serveDir), []);
  const r = await importImage(s, ['other', '1.0.0', 'd'], randomGzip());
  t.is(r.status, 0, r.stderr);
  assertConforms(t, s.serveDir, 'when done');
});

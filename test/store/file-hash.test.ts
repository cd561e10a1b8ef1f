/*
 * The hashing of files on disk and of downloads: the same digests whether a
 * file is hashed on the main thread (small) or on the worker threads (big),
 * carried on over bytes that come later, and a read that fails leaves the
 * workers free for the next one.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { FileHashes, hashFile } from '../../src/store/file-hash.js';
import { tmpDir } from '../helpers/images.js';

const expected = (data: Buffer) => ({
  size: data.length,
  sha1: createHash('sha1').update(data).digest('hex'),
  md5: createHash('md5').update(data).digest('base64'),
});

test('a small file and a big one give their sha1 and md5, hashed here or on the workers', async (t) => {
  const dir = tmpDir(t);
  for (const size of [0, 1000, 5 * 1024 * 1024 + 3]) {
    const data = randomBytes(size);
    const file = path.join(dir, `f${size}`);
    fs.writeFileSync(file, data);
    const hashes = await hashFile(file, { chunkBytes: 256 * 1024 });
    t.deepEqual(await hashes.digest(), expected(data), `${size} bytes`);
  }
});

test('hashes carry on over bytes that come after the file, as a resumed download does', async (t) => {
  const dir = tmpDir(t);
  const data = randomBytes(9 * 1024 * 1024 + 11);
  const onDisk = 5 * 1024 * 1024;
  const file = path.join(dir, 'partial');
  fs.writeFileSync(file, data.subarray(0, onDisk));
  for (const whole of [data.length, 1000]) {
    // The expected size decides where the hashing runs; the digests must not depend on it.
    const hashes = new FileHashes(whole);
    await hashFile(file, { hashes });
    for (let at = onDisk; at < data.length; at += 65_536) await hashes.update(data.subarray(at, at + 65_536));
    t.deepEqual(await hashes.digest(), expected(data), `expected size ${whole}`);
  }
});

test('a read that is aborted fails, and the workers hash the next file as usual', async (t) => {
  const dir = tmpDir(t);
  const data = randomBytes(8 * 1024 * 1024);
  const file = path.join(dir, 'big');
  fs.writeFileSync(file, data);
  const abort = new AbortController();
  let chunks = 0;
  await t.throwsAsync(hashFile(file, {
    chunkBytes: 256 * 1024,
    signal: abort.signal,
    pace: () => {
      if (++chunks === 3) abort.abort();
    },
  }), { name: 'AbortError' });
  const hashes = await hashFile(file);
  t.deepEqual(await hashes.digest(), expected(data));
});

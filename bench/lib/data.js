/*
 * The bench's serve_dir, laid out as src/store/layout.ts expects for v2
 * images: <uuid>/manifest.json, the file, and server.json naming the file
 * and giving its MD5, as the server records it for images it took in.
 * Without the MD5 the server's background digest worker would spend the
 * whole bench reading every file and rewriting every server.json (see
 * src/store/digests.ts): a one-off cost of legacy folders, not steady state.
 * Images are written one small batch at a time and the big file one chunk
 * at a time, so memory stays flat however large the data set is.
 */
import { createHash, randomBytes, randomFill, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { MiB } from './util.js';

const randomFillAsync = promisify(randomFill);

export const FILE_NAME = 'file0.zfs.gz';
const OWNER = '930896af-bf8c-48d4-885c-6573a94b1853';
const FIRST_PUBLISHED = Date.parse('2020-01-01T00:00:00.000Z');
/** What one tiny image costs on disk: a directory and three files of one block each, rounded up. */
const BYTES_PER_TINY_IMAGE = 16 * 1024;
const SLACK = 512 * 1024 * 1024;
const BATCH = 64;
const CHUNK = 4 * 1024 * 1024;

/** Refuses, with a message saying how much is missing, when `dir`'s filesystem cannot hold the data. */
export function checkDiskSpace(dir, { images, bigFileBytes }) {
  // The big file, plus one more copy of it at a time while ingest is measured.
  const need = images * BYTES_PER_TINY_IMAGE + 2 * bigFileBytes + SLACK;
  const st = fs.statfsSync(dir);
  const free = st.bavail * st.bsize;
  if (free < need) {
    throw new Error(`not enough free disk space in ${dir}: need ${(need / MiB).toFixed(0)} MiB, `
      + `${(free / MiB).toFixed(0)} MiB available (set TMPDIR to a roomier filesystem)`);
  }
  // Four inodes per image (directory + three files); some filesystems run out of these first.
  if (st.files > 0 && st.ffree < images * 4 + 1000) {
    throw new Error(`not enough free inodes in ${dir}: need ${images * 4 + 1000}, ${st.ffree} free`);
  }
  return { need, free };
}

function manifestFor(uuid, i, sha1, size) {
  return {
    v: 2,
    uuid,
    owner: OWNER,
    name: `bench-${i % 50}`,
    version: `1.0.${i}`,
    state: 'active',
    disabled: false,
    public: true,
    // Distinct and increasing, so the listing order is fully determined.
    published_at: new Date(FIRST_PUBLISHED + i * 60_000).toISOString(),
    type: 'zone-dataset',
    os: 'smartos',
    files: [{ sha1, size, compression: 'gzip' }],
    description: `bench image number ${i}`,
    requirements: { min_platform: { '7.0': '20200101T000000Z' } },
    tags: { role: 'os', bench: true },
  };
}

async function writeMeta(dir, manifest, md5) {
  await fsp.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  await fsp.writeFile(path.join(dir, 'server.json'), JSON.stringify({ files: [{ name: FILE_NAME, md5 }] }));
}

const digest = (algo, bytes, enc) => createHash(algo).update(bytes).digest(enc);

async function writeTinyImage(root, i) {
  const uuid = randomUUID();
  const dir = path.join(root, uuid);
  const bytes = randomBytes(256);
  await fsp.mkdir(dir);
  await fsp.writeFile(path.join(dir, FILE_NAME), bytes);
  await writeMeta(dir, manifestFor(uuid, i, digest('sha1', bytes, 'hex'), bytes.length), digest('md5', bytes, 'base64'));
}

/** Streams `size` random bytes into `file` through one reused buffer, hashing as it goes. */
async function writeRandomFile(file, size) {
  const sha1 = createHash('sha1');
  const md5 = createHash('md5');
  const buf = Buffer.allocUnsafe(CHUNK);
  const fh = await fsp.open(file, 'w');
  try {
    for (let left = size; left > 0;) {
      const n = Math.min(CHUNK, left);
      const chunk = buf.subarray(0, n);
      await randomFillAsync(chunk);
      sha1.update(chunk);
      md5.update(chunk);
      // Awaited before the next fill, so reusing `buf` never races the write.
      await fh.write(chunk, 0, n);
      left -= n;
    }
  } finally {
    await fh.close();
  }
  return { sha1: sha1.digest('hex'), md5: md5.digest('base64') };
}

/**
 * Writes `images` images into `root`; the newest one carries a file of
 * `bigFileBytes`, the others a few hundred bytes. Returns the big image.
 */
export async function buildServeDir(root, { images, bigFileBytes }) {
  fs.mkdirSync(root, { recursive: true });
  const bigIndex = images - 1;
  for (let i = 0; i < bigIndex; i += BATCH) {
    const batch = [];
    for (let k = i; k < Math.min(i + BATCH, bigIndex); k++) batch.push(writeTinyImage(root, k));
    await Promise.all(batch);
  }
  const uuid = randomUUID();
  const dir = path.join(root, uuid);
  fs.mkdirSync(dir);
  const file = path.join(dir, FILE_NAME);
  const { sha1, md5 } = await writeRandomFile(file, bigFileBytes);
  await writeMeta(dir, manifestFor(uuid, bigIndex, sha1, bigFileBytes), md5);
  return { uuid, file, size: bigFileBytes, sha1, md5 };
}

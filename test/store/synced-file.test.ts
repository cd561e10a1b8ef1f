/*
 * The sink an import's file is written through: the bytes on disk are the
 * bytes sent, whatever the chunks and with datasyncs running beside the
 * writes; it never replaces a file; and its descriptor is closed however
 * the stream ends. Serial: they count the process's open descriptors.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import test from 'ava';
import { SyncedFileSink } from '../../src/store/synced-file.js';
import { tmpDir } from '../helpers/images.js';

const openFds = () => fs.readdirSync('/proc/self/fd').length;
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

function chunks(data: Buffer, size: number): Readable {
  return Readable.from((function* pieces() {
    for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
  })());
}

test.serial('the file holds exactly the bytes streamed in, with datasyncs started beside the writes', async (t) => {
  const dir = tmpDir(t);
  const data = randomBytes(9 * 1024 * 1024 + 7);
  const before = openFds();
  // Counted on the FileHandle class itself: the sink's handle is private.
  const probe = await fsp.open(path.join(dir, 'probe'), 'w');
  const handles = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
  await probe.close();
  const datasync = handles.datasync;
  let datasyncs = 0;
  handles.datasync = function counted(this: unknown) {
    datasyncs++;
    return datasync.call(this);
  };
  t.teardown(() => {
    handles.datasync = datasync;
  });
  for (const size of [4093, 65_536, 3_000_017]) {
    const file = path.join(dir, `file-${size}`);
    datasyncs = 0;
    await pipeline(chunks(data, size), new SyncedFileSink(file, 1024 * 1024));
    t.is(sha1(fs.readFileSync(file)), sha1(data), `chunks of ${size} bytes`);
    t.true(datasyncs >= 1, `datasyncs while writing ${size}-byte chunks: ${datasyncs}`);
  }
  t.is(openFds(), before);
});

test.serial('an existing file is refused, not replaced', async (t) => {
  const file = path.join(tmpDir(t), 'file');
  fs.writeFileSync(file, 'kept');
  const err = await t.throwsAsync(pipeline(chunks(Buffer.from('new'), 1), new SyncedFileSink(file)));
  t.is((err as NodeJS.ErrnoException).code, 'EEXIST');
  t.is(fs.readFileSync(file, 'utf8'), 'kept');
});

test.serial('a stream that fails half-way closes the file', async (t) => {
  const file = path.join(tmpDir(t), 'file');
  const before = openFds();
  const failing = Readable.from((function* pieces() {
    for (let i = 0; i < 40; i++) yield randomBytes(256 * 1024);
    throw new Error('the client went away');
  })());
  const sink = new SyncedFileSink(file, 1024 * 1024);
  await t.throwsAsync(pipeline(failing, sink), { message: 'the client went away' });
  if (!sink.closed) await new Promise((resolve) => sink.once('close', resolve));
  t.is(openFds(), before);
  t.true(fs.statSync(file).size > 0, 'the bytes before the failure were written');
});

/*
 * SealCheck (import-image --sealed): the data minus the seal passes through
 * unchanged however it is chunked; a missing, cut or wrong seal fails at
 * the end.
 */
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import test from 'ava';
import { SEAL_LENGTH, SealCheck, sealLine } from '../../src/cli/seal.js';
import { sha1 } from './kit.js';

async function through(chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), new SealCheck(), new Writable({
    write(chunk: Buffer, _enc, done) {
      out.push(chunk);
      done();
    },
  }));
  return Buffer.concat(out);
}

/** Splits `b` into chunks of the given sizes, cycling through them. */
function chunked(b: Buffer, sizes: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < b.length; i++) {
    const n = sizes[i % sizes.length]!;
    chunks.push(b.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

test('the seal line has a fixed length and a fixed form', (t) => {
  t.is(SEAL_LENGTH, 90);
  const line = sealLine(1234, 'A'.repeat(40));
  t.is(line, `IMAGE-SERVER-SEAL size=00000000000000001234 sha1=${'a'.repeat(40)}\n`);
  t.is(line.length, SEAL_LENGTH);
  t.is(sealLine(2 ** 53 - 1, '0'.repeat(40)).length, SEAL_LENGTH);
});

test('data passes through unchanged, the seal stripped, whatever the chunking', async (t) => {
  for (const size of [0, 1, 89, 90, 91, 1000, 200_000]) {
    const data = randomBytes(size);
    const sealed = Buffer.concat([data, Buffer.from(sealLine(size, sha1(data)))]);
    for (const sizes of [[sealed.length], [1], [7, 89, 90, 91], [65536], [3, 100_000]]) {
      t.true((await through(chunked(sealed, sizes))).equals(data), `size ${size}, chunks ${sizes.join(',')}`);
    }
  }
});

test('a missing, cut, wrong or forged seal fails', async (t) => {
  const data = randomBytes(10_000);
  const seal = sealLine(data.length, sha1(data));
  const flipped = Buffer.from(data);
  flipped[0]! ^= 1;
  const cases: [Buffer, RegExp][] = [
    [data, /the stream ended without its seal after 10000 bytes/],
    [Buffer.alloc(0), /ended without its seal after 0 bytes/],
    [Buffer.concat([data, Buffer.from(seal.slice(0, -1))]), /without its seal/],
    [Buffer.concat([data, Buffer.from(seal), Buffer.from('x')]), /without its seal/],
    [Buffer.concat([data.subarray(1), Buffer.from(seal)]), /does not match its seal: sent 10000 bytes .* received 9999 bytes/],
    [Buffer.concat([flipped, Buffer.from(seal)]), /does not match its seal: sent 10000 bytes with sha1 [0-9a-f]{40}, received 10000 bytes/],
    [Buffer.concat([data, Buffer.from(seal.replace('IMAGE', 'image'))]), /without its seal/],
    [Buffer.concat([data, Buffer.from(seal.toUpperCase())]), /without its seal/],
  ];
  for (const [stream, message] of cases) {
    const err = await t.throwsAsync(through(chunked(stream, [4096])));
    t.regex(err!.message, message);
  }
});

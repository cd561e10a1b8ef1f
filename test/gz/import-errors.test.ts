/*
 * import-image's refusals: each exits non-zero, prints exactly one line on
 * stderr and nothing on stdout, and leaves serve_dir (its images, .staging
 * and .locks) exactly as it was.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { tmpDir } from '../helpers/images.js';
import { waitFor } from '../helpers/server.js';
import { sealLine } from '../../src/cli/seal.js';
import { collect } from '../ssh/sshd.js';
import {
  IMPORT_IMAGE, fingerprint, importImage, lines, randomGzip, served, sha1, UUID_LINE, type Served,
} from './kit.js';
import { stagingEntries } from '../helpers/conformance.js';

/** A serve_dir that already holds one image (so .staging and .locks exist too). */
async function withOneImage(t: ExecutionContext): Promise<Served & { uuid: string }> {
  const s = served(t);
  const r = await importImage(s, ['base', '1.0.0', 'the first image'], randomGzip());
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, UUID_LINE);
  return { ...s, uuid: r.stdout.trim() };
}

async function refused(t: ExecutionContext, s: Served, args: string[], input: Buffer, message: RegExp): Promise<void> {
  const before = fingerprint(s.serveDir);
  const r = await importImage(s, args, input);
  t.not(r.status, 0, args.join(' '));
  t.is(r.stdout, '', args.join(' '));
  t.deepEqual(lines(r.stderr).length, 1, `${args.join(' ')}: ${r.stderr}`);
  t.regex(r.stderr, message, args.join(' '));
  t.deepEqual(fingerprint(s.serveDir), before, `${args.join(' ')} left something behind`);
}

test('an empty stream', async (t) => {
  const s = await withOneImage(t);
  await refused(t, s, ['empty', '1.0.0', 'd'], Buffer.alloc(0), /^import-image: the image file is empty$/m);
  await refused(t, s, ['--compression', 'gzip', 'empty', '1.0.0', 'd'], Buffer.alloc(0), /the image file is empty|truncated/);
  await refused(t, s, ['--sealed', 'empty', '1.0.0', 'd'], Buffer.from(sealLine(0, sha1(Buffer.alloc(0)))), /the image file is empty/);
});

test('a bad name or version', async (t) => {
  const s = await withOneImage(t);
  await refused(t, s, ['bad*name', '1.0.0', 'd'], randomGzip(), /^import-image: invalid image data: name: image name has invalid characters/);
  await refused(t, s, ['x'.repeat(1100), '1.0.0', 'd'], randomGzip(), /name: image name is too long/);
  await refused(t, s, ['good', '1.0 beta', 'd'], randomGzip(), /version: image version has invalid characters/);
  await refused(t, s, ['good', '', 'd'], randomGzip(), /version: image version has invalid characters/);
  await refused(t, s, ['good', '1.0.0', 'd', '--uuid', 'not-a-uuid'], randomGzip(), /uuid/);
  await refused(t, s, ['good', '1.0.0', 'd', '--os', 'plan9'], randomGzip(), /invalid image os, "plan9"/);
  await refused(t, s, ['good', '1.0.0'], randomGzip(), /missing required argument 'description'/);
  await refused(t, s, ['--bogus', 'good', '1.0.0', 'd'], randomGzip(), /unknown option '--bogus'/);
  await refused(t, s, ['--tag', 'novalue', 'good', '1.0.0', 'd'], randomGzip(), /expected KEY=VALUE/);
});

test('a name and version already taken, or a uuid', async (t) => {
  const s = await withOneImage(t);
  await refused(t, s, ['base', '1.0.0', 'again'], randomGzip(), new RegExp(`^import-image: base 1.0.0 is already taken by image ${s.uuid}$`, 'm'));
  await refused(t, s, ['--uuid', s.uuid, 'other', '1.0.0', 'd'], randomGzip(), new RegExp(`an image with uuid ${s.uuid} already exists`));
  // --check answers the same, without reading a stream
  await refused(t, s, ['--check', 'base', '1.0.0', 'again'], Buffer.alloc(0), /already taken/);
  // a uuid whose image was deleted (its tombstone) is never reused, and --check says so up front
  const dead = randomUUID();
  fs.mkdirSync(path.join(s.serveDir, '.deleted'), { recursive: true });
  fs.writeFileSync(path.join(s.serveDir, '.deleted', dead), '{}\n');
  await refused(t, s, ['--check', '--uuid', dead, 'other', '1.0.0', 'd'], Buffer.alloc(0), new RegExp(`uuid ${dead} belonged to an image that was deleted`));
  await refused(t, s, ['--uuid', dead, 'other', '1.0.0', 'd'], randomGzip(), /belonged to an image that was deleted/);
  const ok = await importImage(s, ['--check', 'base', '1.0.1', 'free'], Buffer.alloc(0));
  t.is(ok.status, 0, ok.stderr);
  t.is(ok.stdout, '');
});

test('a missing origin', async (t) => {
  const s = await withOneImage(t);
  const missing = randomUUID();
  await refused(t, s, ['--origin', missing, 'inc', '1.0.0', 'd'], randomGzip(), new RegExp(`^import-image: origin image ${missing} does not exist$`, 'm'));
});

test('a corrupt gzip stream fails (it used to stall and exit 0)', async (t) => {
  const s = await withOneImage(t);
  const data = randomGzip(4 * 1024 * 1024);
  for (let i = data.length >> 1; i < (data.length >> 1) + 64; i++) data[i]! ^= 0xff;
  await refused(t, s, ['corrupt', '1.0.0', 'd'], data, /^import-image: the gzip stream is truncated or corrupt/m);
});

test('a truncated gzip stream and an unsealed or mismatched sealed stream', async (t) => {
  const s = await withOneImage(t);
  const data = randomGzip(512 * 1024);
  await refused(t, s, ['cut', '1.0.0', 'd'], data.subarray(0, data.length - 100), /the gzip stream is truncated or corrupt \(unexpected end of file\)/);
  await refused(t, s, ['--sealed', 'cut', '1.0.0', 'd'], data, /the stream ended without its seal after \d+ bytes/);
  const seal = Buffer.from(sealLine(data.length, sha1(data)));
  await refused(t, s, ['--sealed', 'cut', '1.0.0', 'd'], Buffer.concat([data.subarray(0, 4096), seal]), /does not match its seal: sent \d+ bytes/);
  await refused(t, s, ['--sealed', 'cut', '1.0.0', 'd'], Buffer.concat([data, seal.subarray(0, seal.length - 1)]), /without its seal/);
  // and the same stream, whole and sealed, is published without its seal
  const r = await importImage(s, ['--sealed', 'whole', '1.0.0', 'd'], Buffer.concat([data, seal]));
  t.is(r.status, 0, r.stderr);
  const m = JSON.parse(fs.readFileSync(path.join(s.serveDir, r.stdout.trim(), 'manifest.json'), 'utf8'));
  t.deepEqual(m.files, [{ sha1: sha1(data), size: data.length, compression: 'gzip' }]);
});

test('a broken pipe: gzip killed mid-stream', async (t) => {
  const s = await withOneImage(t);
  const before = fingerprint(s.serveDir);
  const dir = tmpDir(t);
  const pidFile = path.join(dir, 'gzip.pid');
  const errFile = path.join(dir, 'import.err');
  // A slow producer, a gzip whose pid we know, and import-image reading it.
  const script = [
    'slow() { for i in $(seq 1 2000); do head -c 65536 /dev/urandom || exit; sleep 0.01; done; }',
    `slow | (echo $BASHPID > '${pidFile}'; exec gzip -1 -c) | '${IMPORT_IMAGE}' --config '${s.configFile}' broken 1.0.0 d 2>'${errFile}'`,
  ].join('\n');
  const run = collect(spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] }));
  // Once import-image has stored some of the stream, kill gzip.
  await waitFor(() => stagingEntries(s.serveDir).some((e) => {
    const folder = path.join(s.serveDir, '.staging', e);
    try {
      return fs.readdirSync(folder).some((f) => fs.statSync(path.join(folder, f)).size > 256 * 1024);
    } catch {
      return false;
    }
  }), 20_000);
  process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL');
  const r = await run;
  t.not(r.status, 0);
  t.is(r.stdout, '');
  const stderr = fs.readFileSync(errFile, 'utf8');
  t.is(lines(stderr).length, 1, stderr);
  t.regex(stderr, /^import-image: the gzip stream is truncated or corrupt/);
  t.deepEqual(fingerprint(s.serveDir), before);
});

/*
 * 2 GiB (past the 2^31 - 1 of any 32-bit length) through nginx (the example
 * configuration) to and from the image server on its unix socket: an
 * imgadm-style upload, then the download of what was stored, with the
 * resident memory of the node server and of nginx's workers sampled every
 * 200 ms. Both must stay flat: nginx streams (proxy_buffering and
 * proxy_request_buffering off) and the server streams from and to disk, so
 * neither holds more than a few buffers whatever the size of the file.
 *
 * The bytes come from a deterministic generator (AES-256-CTR keystream:
 * fast, incompressible) as a stream, hashed on the way out and on the way
 * back; 2 GiB is never in memory, and lands on disk once (the upload is
 * what the download serves).
 */
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ExecutionContext } from 'ava';
import { tmpDir } from '../helpers/images.js';
import { testNeeding } from '../helpers/system-tools.js';
import { BASIC, call, jsonBody, minimalManifest, writers } from '../publish/kit.js';
import { MiB, NGINX, RssSampler, mib, startStack, type Stack, type RssTrack } from './nginx.js';

const test = testNeeding(NGINX, 'nginx', 'nginx');

const SIZE = 2 * 1024 ** 3;
const GiB = 1024 ** 3;
/*
 * Memory bounds, peak minus baseline over the transfer. nginx with
 * buffering off relays through a fixed buffer per connection (a few KiB to
 * a few hundred): 16 MiB is far above that and far below any spooling. The
 * node server moves 64 KiB chunks whose Buffers the garbage collector frees
 * in batches, so its resident set breathes by some MiB; 64 MiB allows for
 * that and still fails if even 3% of the file were held in memory.
 */
const NGINX_BOUND = 16 * MiB;
const NODE_BOUND = 64 * MiB;

/** SIZE bytes of AES-256-CTR keystream for `seed`: the same bytes every time, at GB/s. */
function generate(size: number, seed: string): Readable {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16));
  const zeros = Buffer.alloc(1024 * 1024);
  let left = size;
  return new Readable({
    highWaterMark: zeros.length,
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const n = Math.min(left, zeros.length);
      left -= n;
      this.push(cipher.update(n === zeros.length ? zeros : zeros.subarray(0, n)));
    },
  });
}

/** Passes bytes through, feeding the hashes and counting. */
function tap(...hashes: Hash[]): Transform & { bytes: number } {
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      for (const h of hashes) h.update(chunk);
      t.bytes += chunk.length;
      done(null, chunk);
    },
  }) as Transform & { bytes: number };
  t.bytes = 0;
  return t;
}

async function requireDisk(t: ExecutionContext): Promise<boolean> {
  const st = await fs.promises.statfs(os.tmpdir());
  const free = st.bavail * st.bsize;
  if (free < 3 * GiB) {
    t.fail(`${os.tmpdir()} has ${(free / GiB).toFixed(2)} GiB free; the 2 GiB transfer tests need at least 3 GiB`);
    return false;
  }
  return true;
}

function sampler(stack: Stack): RssSampler {
  const pid = stack.server.proc.pid!;
  return new RssSampler({ node: () => [pid], nginx: () => stack.nginx.workers() });
}

function checkMemory(t: ExecutionContext, label: string, tracks: Record<string, RssTrack>): void {
  const { node, nginx } = tracks as { node: RssTrack; nginx: RssTrack };
  t.log(`${label}: node ${mib(node.baseline)} → peak ${mib(node.peak)} (+${mib(node.peak - node.baseline)}), `
    + `nginx workers ${mib(nginx.baseline)} → peak ${mib(nginx.peak)} (+${mib(nginx.peak - nginx.baseline)}), ${node.samples} samples`);
  t.true(node.samples >= 10, 'sampled through the transfer');
  t.true(nginx.baseline > 0, 'nginx workers found');
  t.true(node.peak - node.baseline < NODE_BOUND, `node grew ${mib(node.peak - node.baseline)} (bound ${mib(NODE_BOUND)})`);
  t.true(nginx.peak - nginx.baseline < NGINX_BOUND, `nginx grew ${mib(nginx.peak - nginx.baseline)} (bound ${mib(NGINX_BOUND)})`);
}

const rate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

test.serial('2 GiB through nginx, up as imgadm publishes and back down as imgadm imports: exact bytes and digests, flat memory on both sides', async (t) => {
  // About a minute on a quiet machine; a busy one may need several.
  t.timeout(600_000);
  if (!(await requireDisk(t))) return;
  const serveDir = tmpDir(t, 'imgsrv-2g-');
  const stack = await startStack(t, { serve_dir: serveDir, loglevel: 'info', ...(await writers()) });
  t.is((await call(stack.base, 'GET', '/ping', { auth: null })).status, 200);
  const manifest = minimalManifest({ name: 'two-gib' });
  const uuid = String(manifest.uuid);
  t.is((await call(stack.base, 'POST', `/images/${uuid}?action=import`, jsonBody(manifest))).status, 200);

  // Up: streamed from the generator, hashed on the way out.
  let memory = sampler(stack);
  memory.start();
  let started = Date.now();
  const sentSha1 = createHash('sha1');
  const sentMd5 = createHash('md5');
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${stack.base}/images/${uuid}/file?compression=none`, {
      method: 'PUT',
      agent: false,
      // As imgadm sends it: a Content-Length, and the JSON client's Content-Type.
      headers: { authorization: BASIC, 'content-type': 'application/json', 'content-length': SIZE },
    }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => resolve({ status: r.statusCode!, body }));
      r.on('error', reject);
    });
    req.on('error', reject);
    pipeline(generate(SIZE, 'round trip'), tap(sentSha1, sentMd5), req).catch(reject);
  });
  let ms = Date.now() - started;
  checkMemory(t, 'upload', memory.stop());
  t.log(`uploaded 2 GiB through nginx in ${(ms / 1000).toFixed(1)} s (${rate(SIZE, ms)}), including the server's fsync`);
  t.is(res.status, 200, res.body.slice(0, 300));
  const digest = sentSha1.digest('hex');
  const contentMd5 = sentMd5.digest('base64');
  const image = JSON.parse(res.body) as { files: { sha1: string; size: number }[] };
  t.is(image.files[0]!.size, SIZE);
  t.is(image.files[0]!.sha1, digest, 'the sha1 the server computed while receiving is the sha1 of what was sent');
  const activated = await call(stack.base, 'POST', `/images/${uuid}?action=activate`, { body: '{}', headers: { 'content-type': 'application/json' } });
  t.is(activated.status, 200);
  const stored = fs.readdirSync(path.join(serveDir, uuid)).filter((n) => n !== 'manifest.json' && n !== 'server.json');
  t.is(stored.length, 1);
  t.is(fs.statSync(path.join(serveDir, uuid, stored[0]!)).size, SIZE);

  // Down: every byte hashed on arrival, nothing kept.
  memory = sampler(stack);
  memory.start();
  started = Date.now();
  const got = createHash('sha1');
  const { status, headers, bytes } = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; bytes: number }>((resolve, reject) => {
    http.get(`${stack.base}/images/${uuid}/file`, { agent: false }, (r) => {
      const counter = tap(got);
      pipeline(r, counter, new Writable({ write: (_c, _e, done) => done() }))
        .then(() => resolve({ status: r.statusCode!, headers: r.headers, bytes: counter.bytes }), reject);
    }).on('error', reject);
  });
  ms = Date.now() - started;
  checkMemory(t, 'download', memory.stop());
  t.log(`downloaded 2 GiB through nginx in ${(ms / 1000).toFixed(1)} s (${rate(SIZE, ms)})`);
  t.is(status, 200);
  t.is(Number(headers['content-length']), SIZE);
  t.is(headers['content-encoding'], undefined);
  t.is(headers['transfer-encoding'], undefined);
  t.is(headers['content-md5'], contentMd5, 'the MD5 the server computed while receiving');
  t.is(bytes, SIZE);
  t.is(got.digest('hex'), digest, 'the sha1 of what came back is the sha1 of what was sent');
});

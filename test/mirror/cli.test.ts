/*
 * `image-server mirror` as an operator runs it: a real child process,
 * upstreams on loopback in this test process. --dry-run prints the plan
 * and changes nothing; a run prints what it copied, progress goes to
 * stderr as plain lines (no terminal here), and any failure makes the exit
 * status non-zero.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { sha1, tmpDir } from '../helpers/images.js';
import { startServer, waitFor } from '../helpers/server.js';
import {
  IMAGE_SERVER, assertOnlyWholeImages, dsapidImgapiImage, fileRequests, imgapiHandler, partials, publish, runCli, sendJson,
  standIn, treeOf,
} from './kit.js';

function configFor(t: Parameters<typeof tmpDir>[0], serveDir: string): string {
  const file = path.join(tmpDir(t, 'imgsrv-conf-'), 'config.json');
  fs.writeFileSync(file, JSON.stringify({ serve_dir: serveDir }));
  return file;
}

test('--dry-run prints what would be copied, origins first, and changes nothing', async (t) => {
  const upstream = await startServer(t);
  const base = await publish(upstream, { name: 'base', version: '1', state: 'disabled', disabled: true });
  const app = await publish(upstream, { name: 'app', version: '2', origin: base.uuid });
  await publish(upstream, { name: 'unwanted', version: '1' });
  const serveDir = tmpDir(t);
  const config = configFor(t, serveDir);
  const before = treeOf(serveDir);

  const r = await runCli(t, ['--config', config, 'mirror', upstream.url, '--dry-run', '--name', 'app']);
  t.is(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.regex(lines[0]!, new RegExp(`^would copy ${base.uuid} base 1 1\\.0 KiB \\(origin of ${app.uuid}\\)$`));
  t.regex(lines[1]!, new RegExp(`^would copy ${app.uuid} app 2 `));
  t.regex(lines[2]!, /^2 to copy, 0 already here, 0 failed/);
  t.deepEqual(treeOf(serveDir), before, 'serve_dir is untouched');
  t.is(upstream.logs.filter((l) => l.route === 'GetImageFile').length, 0);
});

test('a run prints what it copied, logs progress on stderr, and a second run copies nothing', async (t) => {
  const upstream = await startServer(t);
  const base = await publish(upstream, { name: 'base', version: '1' });
  const app = await publish(upstream, { name: 'app', version: '2', origin: base.uuid });
  const linux = await publish(upstream, { name: 'ubuntu', version: '1', os: 'linux' });
  const serveDir = tmpDir(t);
  const config = configFor(t, serveDir);

  const r = await runCli(t, ['--config', config, 'mirror', upstream.url, '--type', 'imgapi', '--name', 'app', '--name', 'ubuntu', '--os', 'smartos']);
  t.is(r.status, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n'), [
    `copied ${base.uuid} base 1`,
    `copied ${app.uuid} app 2`,
    `2 copied, 0 already here, 0 failed (from ${upstream.url}, 1 image(s) selected)`,
  ]);
  t.regex(r.stderr, new RegExp(`mirror: copying ${base.uuid} base 1 \\(1\\.0 KiB\\) \\(origin\\)`));
  t.regex(r.stderr, new RegExp(`mirror: copied ${app.uuid} app 2`));
  t.false(r.stderr.includes('\u001b['), 'no terminal control characters off a terminal');
  t.true(fs.existsSync(path.join(serveDir, app.uuid, 'manifest.json')));
  t.false(fs.existsSync(path.join(serveDir, linux.uuid)));

  const again = await runCli(t, ['--config', config, 'mirror', upstream.url, '--name', 'app']);
  t.is(again.status, 0, again.stderr);
  t.regex(again.stdout, /^0 copied, 1 already here, 0 failed/m);

  const dsapi = await runCli(t, ['--config', config, 'mirror', `${upstream.url}/datasets`, '--type', 'dsapi', '--os', 'linux']);
  t.is(dsapi.status, 0, dsapi.stderr);
  t.regex(dsapi.stdout, new RegExp(`^copied ${linux.uuid} ubuntu 1$`, 'm'));
});

test('exits non-zero when an image fails, or when the listing does', async (t) => {
  const image = dsapidImgapiImage({ name: 'gone' }, 64);
  const upstream = await standIn(t, imgapiHandler([image], {
    onFile: (_req, res) => {
      sendJson(res, { code: 'ResourceNotFound', message: 'image has no file' }, 404);
      return true;
    },
  }));
  const serveDir = tmpDir(t);
  const config = configFor(t, serveDir);
  const r = await runCli(t, ['--config', config, 'mirror', upstream.url]);
  t.is(r.status, 1);
  t.regex(r.stdout, new RegExp(`^FAILED ${String(image.manifest.uuid)} gone .*HTTP 404 \\(image has no file\\)`, 'm'));
  t.regex(r.stdout, /0 copied, 0 already here, 1 failed/);
  t.deepEqual(fs.readdirSync(serveDir).filter((n) => !n.startsWith('.')), []);

  const listing = await runCli(t, ['--config', config, 'mirror', `${upstream.url}/no/such/prefix`]);
  t.is(listing.status, 1);
  t.regex(listing.stderr, /^image-server: listing http:\/\/127\.0\.0\.1:\d+\/no\/such\/prefix failed: .*HTTP 404/m);

  const bad = await runCli(t, ['--config', config, 'mirror', upstream.url, '--type', 'ftp']);
  t.not(bad.status, 0);
  t.regex(bad.stderr, /Allowed choices are imgapi, dsapi/);
});

test('a mirror killed mid-download resumes with Range in the next process, after a server start in between', async (t) => {
  const image = dsapidImgapiImage({ name: 'killed' }, 16);
  const bytes = randomBytes(512 * 1024);
  image.bytes = bytes;
  image.manifest.files = [{ sha1: sha1(bytes), size: bytes.length, compression: 'gzip' }];
  let stall = true;
  const upstream = await standIn(t, imgapiHandler([image], {
    onFile: (_req, res) => {
      if (!stall) return false;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length });
      res.write(bytes.subarray(0, 200 * 1024));
      return true;
    },
  }));
  const serveDir = tmpDir(t);
  const config = configFor(t, serveDir);
  const proc = spawn(IMAGE_SERVER, ['--config', config, 'mirror', upstream.url], { cwd: tmpDir(t), stdio: 'ignore' });
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  await waitFor(() => partials(serveDir)[0]?.size === 200 * 1024, 15_000);
  proc.kill('SIGKILL');
  await exited;
  const [partial] = partials(serveDir);

  // A server start cleans up interrupted imports, but leaves partial downloads alone.
  const server = await startServer(t, { serveDir });
  t.deepEqual(partials(serveDir), [partial!]);
  t.is(server.store.list().length, 0);

  stall = false;
  const r = await runCli(t, ['--config', config, 'mirror', upstream.url]);
  t.is(r.status, 0, r.stderr);
  t.is(fileRequests(upstream.requests).at(-1)!.headers.range, `bytes=${200 * 1024}-`);
  await server.store.rescan();
  t.is(server.store.get(String(image.manifest.uuid))!.manifest.files[0]!.sha1, sha1(bytes));
  t.deepEqual(partials(serveDir), []);
  await assertOnlyWholeImages(t, serveDir);
});

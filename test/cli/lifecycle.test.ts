/*
 * The server as a process: unix sockets, signals, and the timeouts that must
 * never cut a multi-GB transfer or a connection imgadm is about to reuse.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import test from 'ava';
import { sha1, socketPath, tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { startServer, waitFor } from '../helpers/server.js';
import { spawnServer } from './spawn.js';

function get(opts: http.RequestOptions): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** A socket file left behind by a process that died: bound, nobody listening. */
function staleSocket(p: string): void {
  const script = "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))";
  try {
    execFileSync(process.execPath, ['-e', script, p], { stdio: 'ignore' });
  } catch {
    // killed on purpose, leaving the socket file behind
  }
  if (!fs.statSync(p).isSocket()) throw new Error('no stale socket was made');
}

test('serves over a unix socket with the configured mode, replacing a stale socket file', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(3000);
  const img = writeImage(root, v2Manifest(bytes), { bytes });
  const sock = socketPath(t);
  staleSocket(sock);
  const child = await spawnServer(t, { serve_dir: root, listen_port: sock, socket_mode: '0660' });
  t.is(child.where, sock);
  t.is(fs.statSync(sock).mode & 0o777, 0o660);
  const list = await get({ socketPath: sock, path: '/images', headers: { host: 'images.example.net' } });
  t.deepEqual((JSON.parse(list.body.toString()) as { uuid: string }[]).map((m) => m.uuid), [img.uuid]);
  const ds = JSON.parse((await get({ socketPath: sock, path: `/datasets/${img.uuid}`, headers: { host: 'images.example.net' } })).body.toString());
  t.is(ds.files[0].url, `http://images.example.net/datasets/${img.uuid}/${img.fileName}`);
  const file = await get({ socketPath: sock, path: ds.files[0].url.replace('http://images.example.net', '') });
  t.is(sha1(file.body), img.sha1);
});

test('a socket another server is listening on is left alone, and the start fails', async (t) => {
  const sock = socketPath(t, 'busy.sock');
  const other = net.createServer().listen(sock);
  t.teardown(() => other.close());
  await new Promise((r) => other.once('listening', r));
  await t.throwsAsync(spawnServer(t, { serve_dir: tmpDir(t), listen_port: sock }), { message: /another server is listening/ });
  t.true(fs.existsSync(sock));
});

test('SIGTERM stops accepting, lets an in-flight download finish, then exits 0', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(8 * 1024 * 1024);
  const img = writeImage(root, v2Manifest(bytes), { bytes });
  const child = await spawnServer(t, { serve_dir: root });
  const url = new URL(`${child.where}/images/${img.uuid}/file`);
  const received: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    http.get(url, (res) => {
      // Read at about 4 MB/s so the download is still running when SIGTERM arrives.
      res.on('data', (c: Buffer) => {
        received.push(c);
        res.pause();
        setTimeout(() => res.resume(), c.length / 4000);
      });
      res.on('end', resolve);
      res.on('error', reject);
      child.proc.kill('SIGTERM');
    }).on('error', reject);
  });
  await waitFor(() => child.logs.some((l) => l.msg === 'stopping: draining requests in flight'));
  await t.throwsAsync(fetch(`${child.where}/ping`), undefined, 'no new connections while draining');
  await done;
  t.is(sha1(Buffer.concat(received)), img.sha1, 'the download in flight completed intact');
  t.is(await child.exited, 0);
});

test('SIGHUP forces a rescan', async (t) => {
  const root = tmpDir(t);
  const child = await spawnServer(t, { serve_dir: root, watch_fs: false, scan_interval_ms: 3_600_000, full_scan_interval_ms: 3_600_000 });
  const bytes = randomBytes(10);
  const img = writeImage(root, v2Manifest(bytes), { bytes });
  t.is((await fetch(`${child.where}/images/${img.uuid}`)).status, 404, 'the hourly poll has not seen it');
  child.proc.kill('SIGHUP');
  await waitFor(async () => (await fetch(`${child.where}/images/${img.uuid}`)).status === 200, 10_000);
  t.true(child.logs.some((l) => l.msg === 'SIGHUP: rescanning serve_dir and reloading users and tokens'));
  const file = await fetch(`${child.where}/images/${img.uuid}/file`);
  t.is(sha1(Buffer.from(await file.arrayBuffer())), img.sha1);
});

test('no request timeout, only an idle one, and keep-alive outlives imgadm pauses', async (t) => {
  const server = await startServer(t);
  const s = server.listening.server;
  t.is(s.requestTimeout, 0, "Node's 300 s default would cut multi-GB transfers");
  t.true(s.keepAliveTimeout >= 65_000);
  t.is(s.headersTimeout, 60_000);
  t.is(s.timeout, 600_000, 'a transfer is cut only when it stalls');
});

test('an idle keep-alive connection is still usable after 6 s (Node defaults to 5 s)', async (t) => {
  const server = await startServer(t);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const sockets = new Set<net.Socket>();
  const ping = () => new Promise<number>((resolve, reject) => {
    const req = http.get(`${server.url}/ping`, { agent }, (res) => {
      sockets.add(res.socket);
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
  });
  t.is(await ping(), 200);
  // The idle time is what is tested: past Node's 5 s default, short of ours.
  await new Promise((r) => setTimeout(r, 6000));
  t.is(await ping(), 200);
  t.is(sockets.size, 1, 'the second request reused the first connection');
});

test('a slow download that outlives the 5 s keep-alive default completes', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(2 * 1024 * 1024);
  const img = writeImage(root, v2Manifest(bytes), { bytes });
  const server = await startServer(t, { serveDir: root });
  const started = Date.now();
  const body = await new Promise<Buffer>((resolve, reject) => {
    http.get(`${server.url}/images/${img.uuid}/file`, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        res.pause();
        // about 300 KB/s, so 2 MiB take about 7 s
        setTimeout(() => res.resume(), c.length / 300);
      });
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    }).on('error', reject);
  });
  t.true(Date.now() - started > 5000, 'the transfer really was slow');
  t.is(sha1(body), img.sha1);
});

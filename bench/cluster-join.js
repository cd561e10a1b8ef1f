#!/usr/bin/env node
/*
 * How long two empty servers take to join a cluster of many small images:
 * a real etcd on loopback, server A started on a serve_dir of N images (it
 * registers them all), then B and C started empty; the clock runs from
 * their start until both report nothing pending. Progress is printed every
 * 10 s; a run that has not finished after BENCH_JOIN_LIMIT_S seconds is
 * stopped and reported with how far it got.
 *
 *   node bench/cluster-join.js [repository to run, default this one]
 *   BENCH_JOIN_IMAGES=2000 BENCH_JOIN_LIMIT_S=600
 *
 * Needs `npm run build` in the repository it runs, and etcd (etcd-server).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const repo = path.resolve(process.argv[2] ?? here);
const images = Number(process.env.BENCH_JOIN_IMAGES ?? 2000);
const limitMs = Number(process.env.BENCH_JOIN_LIMIT_S ?? 600) * 1000;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imgsrv-join-'));
const children = [];

function cleanup() {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(root, { recursive: true, force: true });
}
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function until(what, check, ms) {
  const started = Date.now();
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not answering yet
    }
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function ping(port) {
  const res = await fetch(`http://127.0.0.1:${port}/ping`);
  return (await res.json()).cluster;
}

function writeImages(dir) {
  const clock = Date.parse('2020-01-01T00:00:00Z');
  for (let i = 0; i < images; i++) {
    const bytes = randomBytes(1024);
    const uuid = randomUUID();
    fs.mkdirSync(path.join(dir, uuid), { recursive: true });
    fs.writeFileSync(path.join(dir, uuid, 'file0.zfs.gz'), bytes);
    fs.writeFileSync(path.join(dir, uuid, 'manifest.json'), JSON.stringify({
      v: 2, uuid, owner: '930896af-bf8c-48d4-885c-6573a94b1853', name: `join-${i}`, version: '1.0.0',
      state: 'active', disabled: false, public: true, published_at: new Date(clock + i * 60_000).toISOString(),
      type: 'zone-dataset', os: 'smartos',
      files: [{ sha1: createHash('sha1').update(bytes).digest('hex'), size: bytes.length, compression: 'gzip' }],
    }));
  }
}

async function server(name, etcd, prefix) {
  const port = await freePort();
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  if (name === 'a') writeImages(dir);
  const config = path.join(root, `${name}.json`);
  fs.writeFileSync(config, JSON.stringify({
    serve_dir: dir, listen_port: port, listen_address: '127.0.0.1', loglevel: 'warn',
    cluster: { etcd: { endpoints: [etcd], prefix }, advertise_url: `http://127.0.0.1:${port}`, id: name },
  }));
  const log = fs.openSync(path.join(root, `${name}.log`), 'a');
  children.push(spawn(path.join(repo, 'scripts', 'image-server'), ['--config', config], { stdio: ['ignore', log, log] }));
  return port;
}

async function main() {
  const [client, peer] = [await freePort(), await freePort()];
  const etcd = `http://127.0.0.1:${client}`;
  children.push(spawn('etcd', [
    '--name', 'join', '--data-dir', path.join(root, 'etcd'),
    '--listen-client-urls', etcd, '--advertise-client-urls', etcd,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `join=http://127.0.0.1:${peer}`, '--log-level', 'warn',
  ], { stdio: 'ignore' }));
  await until('etcd', async () => (await (await fetch(`${etcd}/health`)).json()).health === 'true', 20_000);
  const prefix = `/join-${randomUUID().slice(0, 8)}/`;
  const a = await server('a', etcd, prefix);
  await until('A registered every image', async () => (await ping(a)).indexed === images && (await ping(a)).pending === 0, 600_000);
  const started = Date.now();
  const joiners = [await server('b', etcd, prefix), await server('c', etcd, prefix)];
  let next = started + 10_000;
  for (;;) {
    const states = await Promise.all(joiners.map((p) => ping(p).catch(() => undefined)));
    const done = states.map((s) => (s && s.indexed === images ? images - s.pending : 0));
    const took = Date.now() - started;
    if (states.every((s) => s && s.indexed === images && s.pending === 0)) {
      console.log(`${repo}: ${images} images, two joiners level after ${(took / 1000).toFixed(1)} s`);
      return;
    }
    if (took > limitMs) {
      console.log(`${repo}: ${images} images, after ${(took / 1000).toFixed(0)} s the joiners hold ${done.join(' and ')} (stopped)`);
      return;
    }
    if (Date.now() >= next) {
      console.log(`  ${(took / 1000).toFixed(0)} s: ${done.join(', ')} of ${images}`);
      next += 10_000;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

try {
  await main();
} finally {
  cleanup();
}

/*
 * The cluster at scale, with a real etcd on loopback and three servers of
 * the repository under test (issue 14's targets):
 *
 *   register  server A starts on a serve_dir of N images and registers them all
 *   join      B and C start empty; both hold every image, nothing pending
 *   idle      B's CPU over a minute, from 75 s after all three are level
 *   restart   all three stopped, then started at once: all level again
 *
 * Data: N small images generated as a stream (free space checked first) in
 * a temp folder removed at the end, with everything the phase started.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTempDir, removeTempDir, track } from '../lib/cleanup.js';
import { buildServeDir, checkDiskSpace } from '../lib/data.js';
import { freePort } from '../lib/net.js';
import { limitRow } from '../lib/report.js';
import { log } from '../lib/util.js';

const TICKS_PER_SECOND = 100; // USER_HZ
const TARGETS = { registerS: 30, joinS: 300, idlePercent: 2, restartS: 30 };

export function etcdBinary() {
  const found = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).stdout.trim();
  return found || undefined;
}

function cpuTicks(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

async function until(what, check, limitMs, progress) {
  const started = Date.now();
  let next = started + 10_000;
  for (;;) {
    if (await check().catch(() => false)) return (Date.now() - started) / 1000;
    if (Date.now() - started > limitMs) throw new Error(`${what}: not within ${limitMs / 1000} s`);
    if (progress && Date.now() >= next) {
      await progress(Math.round((Date.now() - started) / 1000)).catch(() => undefined);
      next += 10_000;
    }
    await sleep(250);
  }
}

async function startEtcd(dir) {
  const [client, peer] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${client}`;
  const child = track(spawn(etcdBinary(), [
    '--name', 'bench', '--data-dir', path.join(dir, 'etcd'),
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `bench=http://127.0.0.1:${peer}`, '--log-level', 'warn',
  ], { stdio: 'ignore' }));
  await until('etcd healthy', async () => (await (await fetch(`${url}/health`)).json()).health === 'true', 30_000);
  return { url, stop: () => child.kill('SIGKILL') };
}

/** One clustered server of `repo`; start() and stop() may be called again. */
class Node {
  constructor(repo, dir, name, etcd, port) {
    this.cli = path.join(repo, 'dist', 'src', 'cli', 'image-server.js');
    this.name = name;
    this.port = port;
    this.serveDir = path.join(dir, name);
    this.config = path.join(dir, `${name}.json`);
    this.logFile = path.join(dir, `${name}.log`);
    fs.mkdirSync(this.serveDir, { recursive: true });
    fs.writeFileSync(this.config, JSON.stringify({
      serve_dir: this.serveDir, listen_port: port, listen_address: '127.0.0.1', loglevel: 'warn',
      cluster: { etcd: { endpoints: [etcd], prefix: '/bench/' }, advertise_url: `http://127.0.0.1:${port}`, id: name },
    }));
  }

  start() {
    const out = fs.openSync(this.logFile, 'a');
    this.child = track(spawn(process.execPath, [this.cli, '--config', this.config], { stdio: ['ignore', out, out] }));
    fs.closeSync(out);
    this.exited = once(this.child, 'exit');
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    if (await Promise.race([this.exited, sleep(20_000).then(() => 'late')]) === 'late') {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  async cluster() {
    return (await (await fetch(`http://127.0.0.1:${this.port}/ping`)).json()).cluster;
  }

  /** Holds every one of `images`, nothing pending, level with the index. */
  async level(images) {
    const c = await this.cluster();
    return c.indexed === images && c.pending === 0 && c.pulling === 0 && c.lag_seconds === 0;
  }
}

export async function clusterPhase({ images, repo, limitS = 600 }) {
  if (!etcdBinary()) throw new Error('etcd is not installed (Debian package etcd-server)');
  const dir = makeTempDir('imgsrv-cluster-');
  const nodes = [];
  let etcd;
  try {
    checkDiskSpace(dir, { images: images * 3, bigFileBytes: 0 });
    etcd = await startEtcd(dir);
    const ports = [await freePort(), await freePort(), await freePort()];
    const [a, b, c] = ['a', 'b', 'c'].map((name, i) => new Node(repo, dir, name, etcd.url, ports[i]));
    nodes.push(a, b, c);
    log(`cluster: writing ${images} images into A's serve_dir`);
    await buildServeDir(a.serveDir, { images, bigFileBytes: 1024 });
    const limitMs = limitS * 1000;

    a.start();
    const registerS = await until('A registers its images', () => a.level(images), limitMs);
    log(`cluster: A registered ${images} images in ${registerS.toFixed(1)} s`);

    b.start();
    c.start();
    const joinS = await until('B and C join', async () => (await b.level(images)) && (await c.level(images)), limitMs,
      async (s) => log(`cluster: ${s} s: B ${(await b.cluster()).pending} pending, C ${(await c.cluster()).pending} pending`));
    log(`cluster: B and C level after ${joinS.toFixed(1)} s`);

    await until('A level', () => a.level(images), 60_000);
    // Past the one-off work that follows a join: the index snapshot, written a minute after the last change.
    await sleep(75_000);
    const before = cpuTicks(b.child.pid);
    await sleep(60_000);
    const idlePercent = ((cpuTicks(b.child.pid) - before) / TICKS_PER_SECOND / 60) * 100;
    log(`cluster: B idle at ${idlePercent.toFixed(2)} % of a core`);

    await Promise.all(nodes.map((n) => n.stop()));
    for (const n of nodes) n.start();
    const restartS = await until('all three level after a restart', async () =>
      (await Promise.all(nodes.map((n) => n.level(images)))).every(Boolean), limitMs);
    log(`cluster: all three level ${restartS.toFixed(1)} s after starting together`);

    const n = images.toLocaleString('en');
    return {
      rows: [
        limitRow(`Cluster, ${n} images: a server registers an existing serve_dir`, 's', registerS, TARGETS.registerS, 1),
        limitRow(`Cluster, ${n} images: two empty servers join`, 's', joinS, TARGETS.joinS, 1),
        limitRow('Cluster: a level server idles at, over 60 s', '% of a core', idlePercent, TARGETS.idlePercent, 2),
        limitRow(`Cluster, ${n} images: three servers started together are level`, 's', restartS, TARGETS.restartS, 1),
      ],
      setup: [`Cluster: one etcd (${spawnSync(etcdBinary(), ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0]}) and three `
        + `servers on loopback, ${n} images of 256 bytes (md5 known); level = every image held, nothing pending or being `
        + 'pulled, lag_seconds 0, read from /ping every 250 ms; default cluster settings.'],
    };
  } finally {
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
    etcd?.stop();
    removeTempDir(dir);
  }
}

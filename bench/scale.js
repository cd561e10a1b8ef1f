/*
 * `node bench/scale.js [images] [idle seconds]` (default 10000, 60): what
 * the server costs at rest as the catalog grows (issue 13). On a generated
 * catalog in a temp folder (free space checked first, removed at the end),
 * with the built server as a subprocess and default scan settings: start-up
 * to a complete GET /images without and with the index snapshot, RSS after
 * start and under list load, and CPU while idle, from /proc/<pid>/stat.
 * Prints the figures; asserts nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { forceCleanup, makeTempDir, removeTempDir } from './lib/cleanup.js';
import { buildServeDir, checkDiskSpace } from './lib/data.js';
import { freePort, get } from './lib/net.js';
import { readRss } from './lib/rss.js';
import { assertBuilt, spawnServer, writeConfig } from './lib/server.js';
import { log, mib } from './lib/util.js';

const TICK = 100; // USER_HZ
const images = Number(process.argv[2] ?? 10_000);
const idleSeconds = Number(process.argv[3] ?? 60);

function cpuTicks(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** Spawns the server and times it to the first GET /images holding every image; leaves it running. */
async function start(configFile, port) {
  const t0 = performance.now();
  const server = spawnServer(configFile, port);
  for (;;) {
    if (!server.alive()) throw new Error(`server exited:\n${server.output()}`);
    if (performance.now() - t0 > 120_000) throw new Error('no complete listing within 120 s');
    const res = await get(port, '/images').catch(() => undefined);
    const seconds = (performance.now() - t0) / 1000;
    if (res?.status === 200 && JSON.parse(res.body.toString('utf8')).length === images) return { server, seconds };
    await sleep(res ? 20 : 2);
  }
}

async function measure(label, configFile, port) {
  const { server, seconds } = await start(configFile, port);
  const rssStart = readRss(server.pid);
  // Rest starts after the one-off work of a start: the snapshot written a
  // minute after a start without one, the 30 s verification after a start with one.
  await sleep(75_000);
  const before = cpuTicks(server.pid);
  await sleep(idleSeconds * 1000);
  const idleShare = (cpuTicks(server.pid) - before) / TICK / idleSeconds;
  let rssLoad = 0;
  for (let i = 0; i < 20; i++) {
    await get(port, `/images?name=bench-${i}`);
    await get(port, '/images');
    rssLoad = Math.max(rssLoad, readRss(server.pid));
  }
  await server.stop();
  const row = `${label}: start-up ${seconds.toFixed(2)} s, RSS after start ${mib(rssStart)} MiB, `
    + `idle CPU ${(idleShare * 100).toFixed(2)} % of a core over ${idleSeconds} s, RSS under list load ${mib(rssLoad)} MiB`;
  log(row);
  return row;
}

async function main() {
  assertBuilt();
  const dir = makeTempDir('imgsrv-scale-');
  try {
    const serveDir = path.join(dir, 'serve');
    checkDiskSpace(dir, { images, bigFileBytes: 0 });
    log(`writing ${images} images`);
    await buildServeDir(serveDir, { images, bigFileBytes: 1024 });
    const port = await freePort();
    const configFile = writeConfig(dir, { port, serveDir });
    const rows = [await measure('no snapshot', configFile, port)];
    const snapshot = path.join(serveDir, '.index-cache.json');
    log(`snapshot: ${fs.existsSync(snapshot) ? `${mib(fs.statSync(snapshot).size)} MiB` : 'none written'}`);
    rows.push(await measure('snapshot', configFile, port));
    process.stdout.write(`\n${images} images\n${rows.join('\n')}\n`);
  } finally {
    removeTempDir(dir);
  }
}

main().catch((err) => {
  forceCleanup();
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});

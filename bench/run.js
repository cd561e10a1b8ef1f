#!/usr/bin/env node
/*
 * The benchmark: our server against nginx serving the same bytes, in one
 * run, on loopback. `npm run bench` builds first, then runs this.
 *
 * This file only sets the stage and tears it down; each measurement is a
 * phase in bench/phases/ returning { rows, setup } for the report, so a new
 * benchmark (upload through HTTP, import-image) is one more phase file and
 * one more call below.
 *
 *   data      10,000 images and one 1 GiB file in a temp serve_dir
 *   startup   spawn → first full GET /images, median of several restarts
 *   listing   wrk on GET /images and GET /datasets, ours vs nginx
 *   download  one client, then 32 at once, on the 1 GiB file, ours vs nginx
 *   memory    our server's VmRSS, sampled all through listing and download
 *   ingest    1 GiB through HTTP PUT and through import-image, vs cat > file && sync
 *   scale     cost at rest on a catalog of its own: 10,000 images, and 100,000 with --100k
 *   cluster   with --cluster: three servers and a real etcd, 10,000 images (register, join, idle, restart)
 *
 * Knobs for quick trial runs (the defaults are the real benchmark):
 *   BENCH_IMAGES=10000 BENCH_FILE_MIB=1024 BENCH_SECONDS=10 BENCH_CLIENTS=32 BENCH_STARTUPS=5
 * and BENCH_RSS_CSV=/some/file.csv to keep every RSS sample for a closer look.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { makeTempDir, removeTempDir } from './lib/cleanup.js';
import { cpuMark, foreignCpu } from './lib/cpu.js';
import { buildServeDir, checkDiskSpace } from './lib/data.js';
import { download } from './lib/load.js';
import { freePort, get } from './lib/net.js';
import { nginxVersion, startNginx } from './lib/nginx.js';
import { codeVersion, machineInfo, table, writeResults } from './lib/report.js';
import { RssSampler } from './lib/rss.js';
import { assertBuilt, REPO_ROOT, startServer, writeConfig } from './lib/server.js';
import { log, MiB, mib } from './lib/util.js';
import { downloadPhase } from './phases/download.js';
import { ingestPhase } from './phases/ingest.js';
import { LISTING_URLS, listingPhase } from './phases/listing.js';
import { memoryRows } from './phases/memory.js';
import { clusterPhase } from './phases/cluster.js';
import { scalePhase } from './phases/scale.js';
import { startupPhase } from './phases/startup.js';

const FLAGS = new Set(process.argv.slice(2));
for (const flag of FLAGS) {
  if (flag !== '--100k' && flag !== '--cluster') throw new Error(`unknown option ${flag} (there are --100k and --cluster)`);
}

const int = (name, dflt) => {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new Error(`${name} must be a positive integer, not ${v}`);
  return Number(v);
};

const P = {
  images: int('BENCH_IMAGES', 10_000),
  bigFileBytes: int('BENCH_FILE_MIB', 1024) * MiB,
  seconds: int('BENCH_SECONDS', 10),
  startups: int('BENCH_STARTUPS', 5),
  clients: int('BENCH_CLIENTS', 32),
  // 8 connections over 2 wrk threads: enough to keep one event loop busy
  // without the load generator taking more than its share of the 2 cores.
  wrkConnections: 8,
  wrkThreads: 2,
  warmupSeconds: 2,
  singleRounds: 5,
  manyRounds: 3,
  ingestRounds: 3,
};
const DEFAULTS = { images: 10_000, bigFileBytes: 1024 * MiB, seconds: 10, startups: 5, clients: 32 };

const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
const sha1 = (b) => createHash('sha1').update(b).digest('hex');

async function makeData(tmp) {
  const serveDir = path.join(tmp, 'serve_dir');
  const { need, free } = checkDiskSpace(tmp, P);
  log(`disk: need ${mib(need)} MiB, ${mib(free)} MiB free in ${tmp}`);
  const t0 = performance.now();
  const big = await buildServeDir(serveDir, P);
  log(`wrote ${P.images} images (one of ${mib(P.bigFileBytes)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { serveDir, big };
}

/**
 * Fetches each listing from our server once, checks it, and saves the exact
 * body for nginx to serve, so both servers send the very same bytes.
 */
async function saveListings(port, staticDir) {
  fs.mkdirSync(staticDir);
  const saved = {};
  for (const url of LISTING_URLS) {
    const res = await get(port, url);
    const count = res.status === 200 ? JSON.parse(res.body.toString('utf8')).length : -1;
    if (count !== P.images) throw new Error(`GET ${url}: status ${res.status}, ${count} images, expected ${P.images}`);
    const file = path.join(staticDir, `${url.slice(1)}.json`);
    fs.writeFileSync(file, res.body);
    saved[url] = { file, bytes: res.body.length, sha1: sha1(res.body), type: res.headers['content-type'] };
  }
  return saved;
}

/** nginx must really answer with the same bytes, or the comparison means nothing. */
async function checkNginx(ports, saved, big) {
  for (const port of ports) {
    for (const [url, s] of Object.entries(saved)) {
      const res = await get(port, url);
      if (res.status !== 200 || sha1(res.body) !== s.sha1) throw new Error(`nginx ${url} does not serve our bytes`);
      if (res.headers['content-type'] !== s.type) {
        throw new Error(`nginx ${url}: Content-Type ${res.headers['content-type']}, ours ${s.type}`);
      }
    }
    await download(port, `/images/${big.uuid}/file`, { clients: 1, size: big.size, limitSeconds: 120 });
  }
}

async function main() {
  assertBuilt();
  const machine = machineInfo(nginxVersion());
  const date = new Date().toISOString();
  const code = codeVersion(REPO_ROOT);
  // Other work on a 2-core box skews every figure; say so in the results.
  const loadAtStart = os.loadavg()[0];
  if (loadAtStart > 1) log(`warning: load average ${loadAtStart.toFixed(2)} before start; figures will be noisy`);
  const cpuAtStart = cpuMark();
  const tmp = makeTempDir();
  const stops = [];
  let report;
  const rows = [];
  const setup = [];
  const add = (phase) => {
    rows.push(...phase.rows);
    setup.push(...phase.setup);
  };
  try {
    const { serveDir, big } = await makeData(tmp);
    const [ourPort, nginxOn, nginxOff] = [await freePort(), await freePort(), await freePort()];
    const configFile = writeConfig(tmp, { port: ourPort, serveDir });

    add(await startupPhase({ configFile, port: ourPort, P }));

    const ours = await startServer(configFile, ourPort);
    stops.push(() => ours.stop());
    const rss = new RssSampler(ours.pid, 100);
    stops.push(() => rss.stop());
    const saved = await saveListings(ourPort, path.join(tmp, 'static'));
    const routes = [
      ...LISTING_URLS.map((url) => ({ path: url, file: saved[url].file, type: saved[url].type })),
      { path: `/images/${big.uuid}/file`, file: big.file, type: 'application/octet-stream' },
    ];
    const nginx = await startNginx(path.join(tmp, 'nginx'), [
      { port: nginxOn, sendfile: true, routes },
      { port: nginxOff, sendfile: false, routes },
    ]);
    stops.push(() => nginx.stop());
    await checkNginx([nginxOn, nginxOff], saved, big);
    log('nginx serves the same bytes on both ports');

    const nginxPorts = { 'sendfile on': nginxOn, 'sendfile off': nginxOff };
    add(await listingPhase({ ours, nginxPorts, rss, P }));
    add(await downloadPhase({ ours, nginxPort: nginxOn, rss, big, P }));
    rss.stop();
    add(memoryRows(rss, P, P.clients * big.size));
    add(await ingestPhase({ port: ourPort, configFile, serveDir, big, P }));
    if (process.env.BENCH_RSS_CSV) {
      const t0 = rss.samples[0]?.t ?? 0;
      fs.writeFileSync(process.env.BENCH_RSS_CSV, `ms,phase,rss_mib\n${rss.samples
        .map((x) => `${(x.t - t0).toFixed(0)},${x.label},${mib(x.bytes)}`).join('\n')}\n`);
    }

    setup.unshift(
      `Data: ${P.images} active v2 images in a temp serve_dir (manifest.json, server.json with name and md5, file): `
        + `${P.images - 1} files of 256 bytes and one of ${mib(P.bigFileBytes)} MiB; page cache warm.`,
      `Listings: GET /images ${saved['/images'].bytes} bytes, GET /datasets ${saved['/datasets'].bytes} bytes `
        + `(${saved['/images'].type}); nginx serves the exact bodies our server returned, saved as files.`,
      `Our server: node dist/src/cli/image-server.js --config <tmp>/config.json (loglevel warn, other keys default).`,
      `nginx: 1 worker process (ours is one process), gzip off, access_log off, tcp_nopush on; listings measured `
        + `with sendfile on and off, downloads with sendfile on.`,
      `wrk: ${P.wrkThreads} threads, ${P.wrkConnections} keep-alive connections, ${P.seconds} s per run after a `
        + `${P.warmupSeconds} s warm-up; any socket error or non-2xx answer fails the bench.`,
      `Downloads: one curl process per client (-o /dev/null), status and byte count checked against the size, `
        + `one connection per download, the same client for both servers; aggregate = all bytes / wall time.`,
    );
    report = { date, machine, code, setup, rows };
  } finally {
    for (const stop of stops.reverse()) {
      // One failed stop must not keep the others (or the temp folder) around.
      await Promise.resolve().then(stop).catch((err) => process.stderr.write(`bench: ${err.message}\n`));
    }
    removeTempDir(tmp);
  }
  // Each makes a catalog of its own, once the main one is gone.
  const more = [() => scalePhase({ images: 10_000 })];
  if (FLAGS.has('--100k')) more.push(() => scalePhase({ images: 100_000 }));
  if (FLAGS.has('--cluster')) more.push(() => clusterPhase({ images: 10_000, repo: REPO_ROOT }));
  for (const phase of more) {
    const { rows: r, setup: s } = await phase();
    report.rows.push(...r);
    report.setup.push(...s);
  }
  // Written only now: every child has exited, so the CPU they used is counted as ours.
  writeReport(report, loadAtStart, foreignCpu(cpuAtStart));
}

function writeReport(report, loadAtStart, foreign) {
  const notes = [];
  report.setup.push(`1-minute load average before the run: ${loadAtStart.toFixed(2)}. CPU used by other processes `
    + `during the run: ${foreign.seconds.toFixed(1)} s, ${(foreign.share * 100).toFixed(1)} % of the machine.`);
  if (foreign.share > 0.05 || loadAtStart > 1) {
    notes.push(`Other processes used ${(foreign.share * 100).toFixed(1)} % of the machine's CPU during this run `
      + `(load ${loadAtStart.toFixed(2)} before it): the figures are noisier than on a quiet machine.`);
    log(`warning: other processes used ${(foreign.share * 100).toFixed(1)} % of the CPU during the run`);
  }
  if (Object.entries(DEFAULTS).some(([k, v]) => P[k] !== v)) {
    notes.push(`Trial run with non-default sizes: ${JSON.stringify(P)}. Not comparable with the targets.`);
  }
  writeResults(RESULTS, { ...report, notes });
  process.stdout.write(`\n${table(report.rows)}\n\nwritten to ${path.relative(process.cwd(), RESULTS)}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
  process.exitCode = 1;
});

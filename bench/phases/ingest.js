/*
 * Taking an image in: a stream uploaded through HTTP PUT (AddImageFile, as
 * imgadm publish sends it) and the same stream piped into import-image,
 * each against two baselines in the same run: `cat > file && sync` of the
 * same bytes (the disk's pace) and `openssl md5` of them (the pace of the
 * slowest hash every import must compute). An import can go no faster
 * than the slower of the two, so that is what it is measured against.
 * Ours includes the sha1 too, the fsync, and the rename that publishes.
 * The source is the bench's big image file, warm in the page cache.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { BENCH_USER, REPO_ROOT } from '../lib/server.js';
import { log, median, MiB } from '../lib/util.js';

const TARGET = 0.9;

function timed(fn) {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
}

function catSync(src, dst) {
  const s = timed(() => execFileSync('bash', ['-c', 'cat "$1" > "$2" && sync', 'bench', src, dst]));
  fs.rmSync(dst, { force: true });
  return s;
}

function opensslMd5(src) {
  return timed(() => execFileSync('openssl', ['md5', src], { stdio: ['ignore', 'ignore', 'inherit'] }));
}

function curl(args) {
  const r = spawnSync('curl', ['-sS', '--fail-with-body', '-u', `${BENCH_USER.name}:${BENCH_USER.password}`, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`curl ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** One AddImageFile upload of `src` into a fresh unactivated image; the image is deleted after. */
function upload(port, src, sha1) {
  const uuid = randomUUID();
  const base = `http://127.0.0.1:${port}/images/${uuid}`;
  const manifest = { v: 2, uuid, name: 'bench-upload', version: uuid.slice(0, 8), type: 'zone-dataset', os: 'smartos' };
  curl(['-X', 'POST', '-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(manifest), `${base}?action=import`]);
  const s = timed(() => curl(['-T', src, '-H', 'Content-Type: application/json', '-H', 'Expect:', '-o', '/dev/null',
    `${base}/file?compression=none&sha1=${sha1}`]));
  curl(['-X', 'DELETE', base]);
  return s;
}

function importImage(configFile, src) {
  const cli = path.join(REPO_ROOT, 'scripts', 'import-image');
  const version = randomUUID().slice(0, 8);
  let uuid = '';
  const s = timed(() => {
    uuid = execFileSync(cli, ['--config', configFile, '--compression', 'none', 'bench-import', version, 'bench'],
      { stdio: [fs.openSync(src, 'r'), 'pipe', 'inherit'], encoding: 'utf8' }).trim();
  });
  execFileSync(path.join(REPO_ROOT, 'scripts', 'image-server'), ['--config', configFile, 'images', 'delete', uuid], { stdio: 'ignore' });
  return s;
}

function row(name, ours, baseline, baselineName, bytes) {
  const mbs = (s) => bytes / 1e6 / s;
  const ratio = mbs(ours) / mbs(baseline);
  return {
    name: `${name} (MB/s; baseline: the slower of cat > file && sync and openssl md5, here ${baselineName})`,
    ours: mbs(ours).toFixed(0),
    nginx: mbs(baseline).toFixed(0),
    ratio: `${ratio.toFixed(2)}×`,
    target: `≥ ${TARGET.toFixed(1)}× baseline`,
    met: ratio >= TARGET,
  };
}

export async function ingestPhase({ port, configFile, serveDir, big, P }) {
  const dst = path.join(path.dirname(serveDir), 'cat-sync.bin');
  const rounds = { cat: [], md5: [], put: [], imp: [] };
  for (let i = 0; i < P.ingestRounds; i++) {
    rounds.cat.push(catSync(big.file, dst));
    rounds.md5.push(opensslMd5(big.file));
    rounds.put.push(upload(port, big.file, big.sha1));
    rounds.cat.push(catSync(big.file, dst));
    rounds.md5.push(opensslMd5(big.file));
    rounds.imp.push(importImage(configFile, big.file));
    log(`ingest round ${i + 1}/${P.ingestRounds}: cat+sync ${rounds.cat.slice(-2).map((s) => s.toFixed(2)).join('/')} s, `
      + `openssl md5 ${rounds.md5.slice(-2).map((s) => s.toFixed(2)).join('/')} s, `
      + `PUT ${rounds.put.at(-1).toFixed(2)} s, import-image ${rounds.imp.at(-1).toFixed(2)} s`);
  }
  const cat = median(rounds.cat);
  const md5 = median(rounds.md5);
  const [baseline, baselineName] = md5 > cat ? [md5, 'openssl md5'] : [cat, 'cat+sync'];
  return {
    rows: [
      row(`Upload ${(big.size / MiB).toFixed(0)} MiB through HTTP PUT, median of ${P.ingestRounds}`, median(rounds.put), baseline, baselineName, big.size),
      row(`Import ${(big.size / MiB).toFixed(0)} MiB through import-image, median of ${P.ingestRounds}`, median(rounds.imp), baseline, baselineName, big.size),
    ],
    setup: [
      `Ingest: the ${(big.size / MiB).toFixed(0)} MiB image file (warm in the page cache) as the source; `
        + `PUT with curl -T (Content-Type application/json, as imgadm sends it), import-image reading it on stdin; `
        + `each against cat > file && sync of the same file on the same filesystem and openssl md5 of it; rounds interleaved.`,
      `Ingest rounds (s): cat+sync ${rounds.cat.map((s) => s.toFixed(2)).join(', ')}; openssl md5 ${rounds.md5.map((s) => s.toFixed(2)).join(', ')}; PUT ${rounds.put.map((s) => s.toFixed(2)).join(', ')}; `
        + `import-image ${rounds.imp.map((s) => s.toFixed(2)).join(', ')}.`,
    ],
  };
}

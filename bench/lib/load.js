/*
 * Load generators, each a child process with fixed concurrency and a hard
 * time limit: wrk for the listing benchmarks (C, epoll, far cheaper per
 * request than any Node client) and curl for the big-file downloads, one
 * process per client, each reporting its status and byte count so every
 * download is checked against the file's size.
 *
 * Why curl and not a Node http.get client: against nginx on this 2-core box
 * a single-process Node client topped out at ~1.3 GB/s with 32 downloads,
 * where 32 curl processes reached ~3.3 GB/s; the Node client would have
 * measured itself, not the servers. Both servers get the same client.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { track } from './cleanup.js';
import { HOST } from './net.js';

const WRK = process.env.WRK ?? 'wrk';
const WRK_SCRIPT = fileURLToPath(new URL('./wrk-report.lua', import.meta.url));
const CURL = process.env.CURL ?? 'curl';

export const MB = 1e6;

/** Runs a child to completion; rejects on a non-zero exit or after limitMs. `pkg` is the Debian package to suggest. */
function run(cmd, args, limitMs, pkg) {
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr = (stderr + c).slice(-4000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${err.message}${err.code === 'ENOENT' ? ` (apt-get install -y ${pkg})` : ''}`));
    });
    // 'close', not 'exit': only 'close' guarantees stdout has been read to the end.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${stderr}${stdout.slice(-2000)}`));
    });
  });
}

/**
 * wrk against one URL; resolves { rps, mbps, requests, bytes, seconds, latency }.
 * Any socket error or non-2xx answer fails the bench: a fast wrong answer is no result.
 */
export async function wrk(port, urlPath, { connections, threads, seconds }) {
  const args = ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`,
    '--timeout', '10s', '-s', WRK_SCRIPT, `http://${HOST}:${port}${urlPath}`];
  const out = await run(WRK, args, (seconds + 30) * 1000, 'wrk');
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no summary:\n${out}`);
  const r = JSON.parse(line.slice('WRK_JSON '.length));
  const errors = Object.entries(r.errors).filter(([, n]) => n > 0);
  if (errors.length > 0 || r.requests === 0) {
    throw new Error(`wrk ${urlPath} on port ${port}: ${r.requests} requests, errors ${JSON.stringify(r.errors)}`);
  }
  const secs = r.duration_us / 1e6;
  return {
    requests: r.requests,
    bytes: r.bytes,
    seconds: secs,
    rps: r.requests / secs,
    mbps: r.bytes / secs / MB,
    latency: r.latency_us,
  };
}

/**
 * `clients` simultaneous downloads of one file, each its own curl process on
 * its own connection; resolves { mbps, seconds, bytes, clients: [{ bytes, seconds }] }.
 * The aggregate is all bytes over the wall time from the first spawn to the last exit.
 */
export async function download(port, urlPath, { clients, size, limitSeconds }) {
  const url = `http://${HOST}:${port}${urlPath}`;
  const args = ['-sS', '-o', '/dev/null', '--max-time', String(limitSeconds),
    '-w', '%{http_code} %{size_download} %{time_total}\\n', url];
  const t0 = performance.now();
  const outs = await Promise.all(Array.from({ length: clients }, () => run(CURL, args, (limitSeconds + 10) * 1000, 'curl')));
  const seconds = (performance.now() - t0) / 1000;
  const results = outs.map((out) => {
    const [status, bytes, total] = out.trim().split(' ');
    if (status !== '200' || Number(bytes) !== size) {
      throw new Error(`curl ${url}: status ${status}, ${bytes} bytes, expected 200 and ${size} bytes`);
    }
    return { bytes: Number(bytes), seconds: Number(total) };
  });
  const bytes = results.reduce((sum, r) => sum + r.bytes, 0);
  return { bytes, seconds, clients: results, mbps: bytes / seconds / MB };
}

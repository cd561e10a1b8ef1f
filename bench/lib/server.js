/*
 * Our server as a real subprocess, started the way an operator starts it
 * (the built CLI with --config), so start-up time includes Node's own boot,
 * module loading and the initial scan of serve_dir.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { track } from './cleanup.js';
import { get, waitForListen } from './net.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = path.join(REPO_ROOT, 'dist/src/cli/image-server.js');

/** The publisher of the ingest phase; the hash is image-server passwd's output for this password. */
export const BENCH_USER = {
  name: 'bench',
  password: 'bench-password',
  hash: '$scrypt$ln=10,r=8,p=1$i25l/RJuGb7VywRrpPRM6g==$KjhAbBl1lzlg+DVrSzxW5xXEkFZTMEnHAzz+mpJTMLs=',
};

/** Writes the server's config file; only the keys an operator would set for this. */
export function writeConfig(dir, { port, serveDir }) {
  const file = path.join(dir, 'config.json');
  const config = {
    listen_port: port, listen_address: '127.0.0.1', serve_dir: serveDir, loglevel: 'warn',
    users: { [BENCH_USER.name]: { password: BENCH_USER.hash } },
  };
  fs.writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

export function assertBuilt() {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm run bench does)`);
}

/** Spawns the server; resolves a handle once the child exists (not yet listening). */
export function spawnServer(configFile, port) {
  const child = track(spawn(process.execPath, [CLI, '--config', configFile], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  // Kept for the error message if it dies; loglevel warn keeps this small.
  let output = '';
  const keep = (c) => {
    output = (output + c.toString()).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = once(child, 'exit');
  return {
    child,
    pid: child.pid,
    port,
    output: () => output,
    alive: () => child.exitCode === null && child.signalCode === null,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const done = await Promise.race([exited, sleep(10_000).then(() => null)]);
      if (done === null) {
        child.kill('SIGKILL');
        await exited;
        throw new Error('our server did not stop within 10 s of SIGTERM');
      }
    },
  };
}

export async function startServer(configFile, port) {
  const server = spawnServer(configFile, port);
  try {
    await waitForListen(port, { timeoutMs: 60_000, alive: server.alive });
  } catch (err) {
    await server.stop().catch(() => {});
    throw new Error(`${err.message}\n${server.output()}`, { cause: err });
  }
  return server;
}

/**
 * Seconds from spawn until a GET /images has returned `expected` images in
 * full. Polls every few ms while the port refuses, so the figure is the
 * server's, not the poll interval's.
 */
export async function timeStartup(configFile, port, expected) {
  const t0 = performance.now();
  const server = spawnServer(configFile, port);
  try {
    let last = 'no answer';
    for (;;) {
      if (!server.alive()) throw new Error(`our server exited during start-up:\n${server.output()}`);
      if (performance.now() - t0 > 60_000) {
        throw new Error(`our server did not list ${expected} images within 60 s (last: ${last})`);
      }
      let res;
      try {
        res = await get(port, '/images');
      } catch {
        await sleep(2);
        continue;
      }
      const seconds = (performance.now() - t0) / 1000;
      // Checked after taking the time: parsing is the bench's cost, not the server's.
      // A partial list (an index still loading) does not count; keep polling.
      const count = res.status === 200 ? JSON.parse(res.body.toString('utf8')).length : -1;
      if (count === expected) return seconds;
      last = `status ${res.status}, ${count} images`;
    }
  } finally {
    await server.stop();
  }
}

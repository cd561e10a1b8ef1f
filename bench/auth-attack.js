#!/usr/bin/env node
/*
 * Downloads under a wrong-password flood (issue 11 item 2): how long a
 * 4 KiB and a 200 MiB download take while a client with no credentials
 * sends 50 wrong passwords a second for a real user, and how long a wrong
 * password takes to be refused for a known and for an unknown user name.
 * Run after `npm run build`; prints figures, asserts nothing.
 *
 *   node bench/auth-attack.js
 *   AUTH_CONFIG='{"auth_failures_per_client":{"burst":1000000,"per_minute":1000000}}' node bench/auth-attack.js
 *
 * AUTH_CONFIG merges keys into the server's config (to measure the worker
 * pool alone, with the rate limits out of the way). The user's hash has
 * the parameters `image-server passwd` uses (ln=15), as in production.
 */
import { randomBytes, scryptSync } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTempDir, removeTempDir } from './lib/cleanup.js';
import { buildServeDir, checkDiskSpace } from './lib/data.js';
import { freePort, HOST } from './lib/net.js';
import { assertBuilt, startServer } from './lib/server.js';
import { log, median, MiB } from './lib/util.js';

const RATE = 50;
const BIG = 200 * MiB;
const DOWNLOAD_CAP_MS = 30_000;
const USER = { name: 'admin', password: 'the-right-one' };
const SECOND = { name: 'ops', password: 'another-right-one' };

function userHash(password) {
  const salt = randomBytes(16);
  const key = scryptSync(password, salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * MiB });
  return `$scrypt$ln=15,r=8,p=1$${salt.toString('base64')}$${key.toString('base64')}`;
}

const basic = (user, pass) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

/** One GET on its own connection; counts bytes until the end or `capMs`. */
function fetchCounting(port, urlPath, { headers = {}, capMs = DOWNLOAD_CAP_MS } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let bytes = 0;
    let status = 0;
    let retryAfter;
    const done = (complete) => resolve({ status, bytes, ms: performance.now() - t0, complete, retryAfter });
    const req = http.get({ host: HOST, port, path: urlPath, agent: false, headers }, (res) => {
      status = res.statusCode;
      retryAfter = res.headers['retry-after'];
      res.on('data', (c) => {
        bytes += c.length;
      });
      res.on('end', () => done(true));
      res.on('error', () => done(false));
    });
    req.setTimeout(capMs, () => {
      req.destroy();
      done(false);
    });
    req.on('error', () => done(false));
  });
}

/** Fires RATE wrong-password requests a second, without waiting for answers, until stopped. */
function flood(port, urlPath) {
  const statuses = {};
  let stopped = false;
  const inflight = new Set();
  const timer = setInterval(() => {
    if (stopped) return;
    const p = fetchCounting(port, urlPath, { headers: { authorization: basic(USER.name, randomBytes(6).toString('hex')) } })
      .then((r) => {
        statuses[r.status || 'error'] = (statuses[r.status || 'error'] ?? 0) + 1;
        inflight.delete(p);
      });
    inflight.add(p);
  }, 1000 / RATE);
  return {
    statuses,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all(inflight);
    },
  };
}

/** Median time to refuse a wrong password, known and unknown names interleaved; 8 in all, under the default limit of 10. */
async function refusalTimes(port, urlPath, n = 4) {
  const times = { known: [], unknown: [] };
  const statuses = new Set();
  for (let i = 0; i < n; i++) {
    for (const [which, name] of [['known', USER.name], ['unknown', 'nobody']]) {
      const r = await fetchCounting(port, urlPath, { headers: { authorization: basic(name, `wrong-${i}`) } });
      times[which].push(r.ms);
      statuses.add(r.status);
    }
  }
  return `known ${median(times.known).toFixed(1)} ms, unknown ${median(times.unknown).toFixed(1)} ms (medians of ${n}; statuses ${[...statuses].join(',')})`;
}

async function login(port, user) {
  const r = await fetchCounting(port, '/ping', { headers: { authorization: basic(user.name, user.password) } });
  return `${r.ms.toFixed(0)} ms, status ${r.status}${r.retryAfter ? `, Retry-After ${r.retryAfter}` : ''}`;
}

const show = (r, size) => `${r.ms.toFixed(0)} ms, ${r.bytes}/${size} bytes, status ${r.status}${r.complete ? '' : ' (cut off)'}`;

async function main() {
  assertBuilt();
  const root = makeTempDir('imgsrv-authbench-');
  try {
    checkDiskSpace(root, { images: 2, bigFileBytes: BIG });
    const serveDir = path.join(root, 'serve');
    const small = await buildServeDir(serveDir, { images: 1, bigFileBytes: 4096 });
    const big = await buildServeDir(serveDir, { images: 1, bigFileBytes: BIG });
    const port = await freePort();
    const config = {
      listen_port: port, listen_address: HOST, serve_dir: serveDir, loglevel: 'warn',
      users: { [USER.name]: { password: userHash(USER.password) }, [SECOND.name]: { password: userHash(SECOND.password) } },
      ...JSON.parse(process.env.AUTH_CONFIG ?? '{}'),
    };
    const configFile = path.join(root, 'config.json');
    fs.writeFileSync(configFile, JSON.stringify(config));
    const server = await startServer(configFile, port);
    try {
      const smallPath = `/images/${small.uuid}/file`;
      const bigPath = `/images/${big.uuid}/file`;
      log(`quiet: 4 KiB ${show(await fetchCounting(port, smallPath), 4096)}`);
      log(`quiet: 200 MiB ${show(await fetchCounting(port, bigPath), BIG)}`);
      log(`wrong password refused: ${await refusalTimes(port, '/ping')}`);
      log(`right password (${USER.name}), before the attack: ${await login(port, USER)}`);
      await sleep(1000);
      const attack = flood(port, '/ping');
      await sleep(2000);
      log(`under attack: 4 KiB ${show(await fetchCounting(port, smallPath), 4096)}`);
      log(`under attack: 200 MiB ${show(await fetchCounting(port, bigPath), BIG)}`);
      log(`under attack: right password, logged in before: ${await login(port, USER)}`);
      log(`under attack: right password, first login (${SECOND.name}), same address: ${await login(port, SECOND)}`);
      await attack.stop();
      log(`attack answers: ${JSON.stringify(attack.statuses)}`);
    } finally {
      await server.stop();
    }
  } finally {
    removeTempDir(root);
  }
}

await main();

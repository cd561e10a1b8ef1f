/*
 * Wrong passwords against a running server (issue 11): a flood of them must
 * not starve downloads (password checks run on worker threads of their own,
 * not on libuv's pool that file reads use), failures are limited per
 * client with 429 and Retry-After, and a user name that does not exist is
 * answered exactly as one that does.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import test from 'ava';
import { hashPassword } from '../../src/credentials.js';
import { tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { requireFreeSpace, writeLargeImage } from '../helpers/large-file.js';
import { OPERATOR, OPERATOR_AUTH, startServer, waitFor } from '../helpers/server.js';
import { assertApiError, json, request, stableHeaders } from './kit.js';

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
const BIG = 200 * 1024 * 1024;
const RATE = 50;

/** RATE wrong-password requests a second for `user`, each on its own connection, not waiting for answers. */
function flood(url: string, user: string) {
  const statuses: Record<string, number> = {};
  const inflight = new Set<Promise<void>>();
  let n = 0;
  const timer = setInterval(() => {
    const p = request(`${url}/ping`, { headers: { authorization: basic(user, `guess-${n++}`) } })
      .then((res) => String(res.status), () => 'error')
      .then((status) => {
        statuses[status] = (statuses[status] ?? 0) + 1;
        inflight.delete(p);
      });
    inflight.add(p);
  }, 1000 / RATE);
  return {
    statuses,
    answered: () => Object.values(statuses).reduce((a, b) => a + b, 0),
    async stop() {
      clearInterval(timer);
      await Promise.all(inflight);
    },
  };
}

/** GETs `url`, hashing and counting the body as it streams. */
function download(url: string): Promise<{ status: number; bytes: number; sha1: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      const hash = createHash('sha1');
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
      });
      res.on('end', () => resolve({ status: res.statusCode!, bytes, sha1: hash.digest('hex') }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

test.serial('downloads go on, whole, while 50 wrong passwords a second are checked', async (t) => {
  t.timeout(300_000);
  const serveDir = tmpDir(t);
  if (!(await requireFreeSpace(t, serveDir, BIG))) return;
  const big = await writeLargeImage(serveDir, BIG, 'auth-flood');
  const small = writeImage(serveDir, v2Manifest(Buffer.alloc(4096, 7)), { bytes: Buffer.alloc(4096, 7) });
  // Production's scrypt cost, and limits out of the way: every guess runs scrypt.
  const unlimited = { burst: 1_000_000, per_minute: 1_000_000 };
  const server = await startServer(t, {
    serveDir,
    config: {
      users: { admin: { password: await hashPassword('the-right-one', 15) } },
      auth_client_failures: unlimited,
      auth_user_failures: unlimited,
    },
  });
  const attack = flood(server.url, 'admin');
  try {
    await waitFor(() => (attack.statuses['401'] ?? 0) >= 2, 60_000);
    const smallRes = await download(`${server.url}/images/${small.uuid}/file`);
    t.deepEqual(smallRes, { status: 200, bytes: 4096, sha1: small.sha1 });
    const before = attack.answered();
    const bigRes = await download(`${server.url}/images/${big.uuid}/file`);
    t.deepEqual(bigRes, { status: 200, bytes: BIG, sha1: big.sha1 });
    t.log(`${attack.answered() - before} wrong passwords answered during the 200 MiB download`);
  } finally {
    await attack.stop();
  }
  t.log(JSON.stringify(attack.statuses));
  t.true((attack.statuses['401'] ?? 0) > 0, 'guesses were checked');
  t.deepEqual(Object.keys(attack.statuses).filter((s) => s !== '401' && s !== '503'), [],
    'a guess is refused as wrong, or as busy when the queue is full');
});

test('after the failure limit a client gets 429 with Retry-After, for known and unknown names alike; a remembered login still works', async (t) => {
  const server = await startServer(t);
  const burst = server.config.auth_client_failures.burst;
  t.is((await request(`${server.url}/ping`, { headers: { authorization: OPERATOR_AUTH } })).status, 200);
  for (let i = 0; i < burst; i++) {
    const name = i % 2 ? OPERATOR.user : 'nobody';
    assertApiError(t, await request(`${server.url}/ping`, { headers: { authorization: basic(name, 'wrong') } }), 401, 'UnauthorizedError');
  }
  const known = await request(`${server.url}/ping`, { headers: { authorization: basic(OPERATOR.user, 'wrong') } });
  const unknown = await request(`${server.url}/ping`, { headers: { authorization: basic('nobody', 'wrong') } });
  for (const res of [known, unknown]) {
    assertApiError(t, res, 429, 'TooManyRequests');
    t.regex(String(res.headers['retry-after']), /^[1-9]\d*$/);
  }
  t.deepEqual(json(known), json(unknown));
  t.is((await request(`${server.url}/ping`, { headers: { authorization: OPERATOR_AUTH } })).status, 200,
    'credentials that were verified a moment ago skip the limit');
});

test('a wrong password for an existing user and any password for an unknown one get the same answer', async (t) => {
  const server = await startServer(t);
  const known = await request(`${server.url}/images`, { headers: { authorization: basic(OPERATOR.user, 'wrong') } });
  const unknown = await request(`${server.url}/images`, { headers: { authorization: basic('no-such-user', 'wrong') } });
  assertApiError(t, known, 401, 'UnauthorizedError');
  t.is(unknown.status, known.status);
  t.deepEqual(unknown.body, known.body);
  t.deepEqual(stableHeaders(unknown), stableHeaders(known));
});

/*
 * Three real servers replicating through a real etcd on loopback: publish,
 * delete and state changes reach every server; a server killed mid-pull,
 * or down while etcd compacts its history, catches up after a restart;
 * with etcd stopped every server keeps serving and they converge once it
 * is back; 50 images published at once to different servers converge.
 * Convergence times are measured and reported, never asserted tightly.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { ExecutionContext } from 'ava';
import { Range } from 'etcd3';
import { sha1, v2Manifest, writeImage } from '../helpers/images.js';
import { testNeeding } from '../helpers/system-tools.js';
import { IMAGE_SERVER } from '../cli/spawn.js';
import { assertSchema } from '../http/kit.js';
import { BASIC, call } from '../publish/kit.js';
import { ETCD, EtcdProcess, Node, Throttle, measured, servedEverywhere, testPrefix, threeServers, until } from './kit.js';

const test = testNeeding(ETCD, 'etcd', 'etcd-server');

/** Runs `body`; on failure, the servers' warnings go into the test's log. */
async function withDiagnostics(t: ExecutionContext, nodes: () => Node[], body: () => Promise<void>): Promise<void> {
  try {
    await body();
    if (process.env.CLUSTER_TEST_DEBUG) for (const n of nodes()) for (const line of n.problems()) t.log(line);
  } catch (err) {
    for (const n of nodes()) for (const line of n.problems().slice(-20)) t.log(line);
    throw err;
  }
}

function admin(node: Node, args: string[]): string {
  return execFileSync(IMAGE_SERVER, ['--config', node.adminConfig(), ...args], { encoding: 'utf8' });
}

test.serial('publish, delete and state changes on any server reach every server', async (t) => {
  t.timeout(120_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  // Keys under the prefix that no server wrote are ignored, never followed into serve_dir.
  const junk = etcd.client();
  await junk.put(`${prefix}images/not-a-uuid`).value('{}');
  await junk.put(`${prefix}images/${randomUUID()}`).value('{"manifest": {"name": "no"}}');
  await junk.put(`${prefix}holders/../../etc/passwd`).value('http://127.0.0.1:1');
  await junk.put(`${prefix}servers/ghost`).value('not json');
  const [a, b, c] = await threeServers(t, etcd, prefix);
  await withDiagnostics(t, () => [a, b, c], async () => {
    // Published to A over HTTP → B and C serve it, byte for byte.
    const img = await a.publish();
    measured(t, 'publish on A → served by B and C', await servedEverywhere([b, c], img));
    const onB = await b.image(img.uuid);
    const onA = await a.image(img.uuid);
    t.deepEqual(onB, onA, 'the manifest (uuid, owner, published_at, state) is kept as published');

    // A private image: peers pull it with their peer_auth credentials.
    const secret = await a.publish(randomBytes(8 * 1024), { public: false });
    t.falsy(await a.image(secret.uuid), 'anonymous callers do not see it');
    measured(t, 'private image published on A → served by B and C', (await until('private image on B and C', async () =>
      (await b.image(secret.uuid, BASIC)) && (await c.image(secret.uuid, BASIC)))).ms);
    t.is(await c.fileSha1(secret.uuid, BASIC), secret.sha1);
    t.is((await b.image(secret.uuid, BASIC))?.public, false);

    // Written straight into C's serve_dir (as import-image or rsync do) → A and B serve it.
    const bytes = randomBytes(32 * 1024);
    const direct = writeImage(c.serveDir, v2Manifest(bytes), { bytes });
    measured(t, 'image written into C\'s serve_dir → served by A and B',
      await servedEverywhere([a, b], { uuid: direct.uuid, sha1: direct.sha1 }));

    // A folder another tool wrote labels its gzip file "none" (a label from the file name): C serves
    // and registers it as the bytes say, so A and B store and list it as gzip too.
    const gz = gzipSync(randomBytes(16 * 1024));
    const mislabelled = writeImage(c.serveDir, v2Manifest(gz, { files: [{ sha1: sha1(gz), size: gz.length, compression: 'none' }] }),
      { bytes: gz });
    await servedEverywhere([a, b], mislabelled);
    for (const n of [a, b, c]) t.is((await n.image(mislabelled.uuid))?.files[0].compression, 'gzip', `listed as gzip on ${n.name}`);
    t.true(c.child.logs.some((r) => r.uuid === mislabelled.uuid && r.labelled === 'none' && r.actual === 'gzip'),
      'C warned that the label was wrong');

    // Disable on C → disabled everywhere.
    t.is((await call(c.url, 'POST', `/images/${img.uuid}?action=disable`)).status, 200);
    measured(t, 'disable on C → disabled on A and B', (await until('disabled on A and B', async () =>
      (await a.image(img.uuid))?.state === 'disabled' && (await b.image(img.uuid))?.state === 'disabled')).ms);

    // Enabled with the images CLI on A (no HTTP) → active everywhere.
    admin(a, ['images', 'enable', img.uuid]);
    measured(t, 'images enable (CLI) on A → active on B and C', (await until('active on B and C', async () =>
      (await b.image(img.uuid))?.state === 'active' && (await c.image(img.uuid))?.state === 'active')).ms);

    // A corrupt copy found by verify --repair on B: disabled there, and so everywhere.
    const file = fs.readdirSync(path.join(b.serveDir, direct.uuid)).find((n) => n !== 'manifest.json' && n !== 'server.json')!;
    fs.writeFileSync(path.join(b.serveDir, direct.uuid, file), randomBytes(bytes.length));
    t.throws(() => admin(b, ['verify', '--repair']));
    measured(t, 'verify --repair on B → disabled on A and C', (await until('disabled on A and C', async () =>
      (await a.image(direct.uuid))?.state === 'disabled' && (await c.image(direct.uuid))?.state === 'disabled')).ms);

    // Delete on B → gone everywhere, and never pulled again.
    t.is((await call(b.url, 'DELETE', `/images/${img.uuid}`)).status, 204);
    measured(t, 'delete on B → gone from A and C', (await until('gone from A and C', async () =>
      !(await a.image(img.uuid)) && !(await c.image(img.uuid)))).ms);

    // Cluster state in /ping and /metrics.
    const { value: ping } = await until('A sees two peers, nothing pending', async () => {
      const p = await a.ping();
      return p.cluster?.peers === 2 && p.cluster.pending === 0 ? p : undefined;
    });
    t.like(ping.cluster, { id: 'a', etcd: 'up', peers: 2, pending: 0, pulling: 0, lag_seconds: 0 });
    assertSchema(t, 'GET /ping 200', ping);
    const metrics = await a.metrics();
    t.regex(metrics, /^image_server_cluster_peers 2$/m);
    t.regex(metrics, /^image_server_cluster_pending_pulls 0$/m);
    t.regex(metrics, /^image_server_cluster_etcd_up 1$/m);
    t.regex(metrics, /^image_server_cluster_lag_seconds 0$/m);
    // A later change from B reaching A and C means both have acted on everything before it.
    const later = await b.publish();
    await servedEverywhere([a, c], later);
    for (const n of [a, b, c]) t.falsy(await n.image(img.uuid), `a deleted image stays deleted on ${n.name}`);
    t.false(fs.existsSync(path.join(a.serveDir, img.uuid)));
  });
});

test.serial('a server killed with -9 mid-pull completes the pull after a restart', async (t) => {
  t.timeout(150_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  // Peers reach A through a proxy that holds each transfer after 8 MB, so C is caught mid-file.
  const a = await Node.start(t, 'a', etcd, prefix, { proxy: true });
  const [b, c] = await Promise.all([Node.start(t, 'b', etcd, prefix), Node.start(t, 'c', etcd, prefix)]);
  await withDiagnostics(t, () => [a, b, c], async () => {
    const size = 96 * 1024 * 1024;
    a.proxy!.holdAfter(8 * 1024 * 1024);
    const img = await a.publishLarge(size);
    const { value: partial } = await until('C receiving the file', () => c.partials().find((f) => f.size >= 1024 * 1024), 60_000);
    await c.kill9();
    t.log(`C was killed with ${partial.size} of ${size} bytes received`);
    t.false(fs.existsSync(path.join(c.serveDir, img.uuid)), 'nothing was published from the partial file');
    t.true(c.partials().length > 0, 'the partial download is kept for the next attempt');
    a.proxy!.release();

    await c.start();
    const started = Date.now();
    await servedEverywhere([b, c], img, 120_000);
    measured(t, `C restarted → pulled the ${size / 1024 / 1024} MB image`, Date.now() - started);
    t.deepEqual(c.partials(), [], 'the interrupted transfer left nothing behind');
    const resumed = c.child.logs.find((r) => r.msg === 'resuming an interrupted pull' && r.uuid === img.uuid);
    t.true(typeof resumed?.offset === 'number' && resumed.offset >= partial.size,
      `the restarted pull resumed from the kept bytes (${String(resumed?.offset)} ≥ ${partial.size})`);
  });
});

test.serial('a peer dying mid-transfer makes the puller finish from another holder', async (t) => {
  t.timeout(150_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  const a = await Node.start(t, 'a', etcd, prefix, { proxy: true });
  const b = await Node.start(t, 'b', etcd, prefix);
  let c: Node | undefined;
  await withDiagnostics(t, () => [a, b, ...(c ? [c] : [])], async () => {
    const size = 64 * 1024 * 1024;
    const img = await a.publishLarge(size);
    await servedEverywhere([b], img, 90_000);
    // C starts late; its first try goes to A (holders are tried in id order), held mid-file.
    a.proxy!.holdAfter(4 * 1024 * 1024);
    c = await Node.start(t, 'c', etcd, prefix);
    const late = c;
    await until('C receiving from A', () => late.partials().some((f) => f.size >= 1024 * 1024), 60_000);
    t.is(late.child.logs.find((r) => r.msg === 'pulling image from a peer')?.peer, 'a');
    await a.kill9();
    a.proxy!.release(); // the dead peer's connection closes
    const started = Date.now();
    await servedEverywhere([late], img, 90_000);
    measured(t, 'peer A killed mid-transfer → C pulled from B', Date.now() - started);
    t.true(late.child.logs.some((r) => r.msg === 'pull failed; will retry' && r.peer === 'a'));
    t.true(late.child.logs.some((r) => r.msg === 'pulled image from a peer' && r.peer === 'b'));
  });
});

test.serial('a server down while etcd compacts its history catches up after a restart', async (t) => {
  t.timeout(120_000);
  const etcd = await EtcdProcess.start(t);
  const [a, b, c] = await threeServers(t, etcd);
  await withDiagnostics(t, () => [a, b, c], async () => {
    const keep = await a.publish();
    const doomed = await b.publish();
    const offline = await c.publish();
    await servedEverywhere([a, b, c], keep);
    await servedEverywhere([a, b, c], doomed);
    await servedEverywhere([a, b, c], offline);

    t.is(await c.stop(), 0, 'SIGTERM stops a cluster member cleanly');
    measured(t, 'C stopped (SIGTERM) → A counts one peer', (await until('A sees C leave', async () =>
      (await a.ping()).cluster?.peers === 1, 15_000)).ms);
    const added = await a.publish();
    // An origin and an image built on it, published while C is down: C pulls the origin first.
    const origin = await a.publish(randomBytes(256 * 1024));
    const child = await a.publish(randomBytes(1024), { origin: origin.uuid });
    t.is((await call(b.url, 'DELETE', `/images/${doomed.uuid}`)).status, 204);
    t.is((await call(a.url, 'POST', `/images/${keep.uuid}?action=disable`)).status, 200);
    await servedEverywhere([b], added);
    await until('delete and disable indexed', async () => !(await a.image(doomed.uuid)) && (await b.image(keep.uuid))?.state === 'disabled');
    const revision = await etcd.compact();
    t.log(`etcd compacted at revision ${revision}`);
    // Changed on C while it is stopped: C publishes that after its restart, rather than undo it.
    admin(c, ['images', 'disable', offline.uuid]);

    await c.start();
    const started = Date.now();
    await servedEverywhere([c], added);
    await servedEverywhere([c], origin);
    await servedEverywhere([c], child);
    await until('C caught up', async () => !(await c.image(doomed.uuid)) && (await c.image(keep.uuid))?.state === 'disabled');
    await until('the offline change reached A and B', async () =>
      (await a.image(offline.uuid))?.state === 'disabled' && (await b.image(offline.uuid))?.state === 'disabled');
    measured(t, 'C restarted after compaction → caught up (3 new, 1 deleted, 1 disabled; its own offline disable out)', Date.now() - started);
    t.is((await c.image(offline.uuid))?.state, 'disabled');
    const logs = c.child.logs;
    const originDone = logs.findIndex((r) => r.msg === 'pulled image from a peer' && r.uuid === origin.uuid);
    const childStarted = logs.findIndex((r) => r.msg === 'pulling image from a peer' && r.uuid === child.uuid);
    t.true(originDone >= 0 && childStarted > originDone, 'the origin was pulled before the image built on it');
    t.is((await c.image(child.uuid))?.origin, origin.uuid);
  });
});

test.serial('a server cut off from etcd while its history is compacted catches up without a restart', async (t) => {
  t.timeout(120_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  // C reaches etcd through a proxy that can cut the network between them.
  const link = await Throttle.start(t, etcd.clientPort);
  const [a, b] = await Promise.all([Node.start(t, 'a', etcd, prefix), Node.start(t, 'b', etcd, prefix)]);
  const c = await Node.start(t, 'c', etcd, prefix, { etcdEndpoint: `http://127.0.0.1:${link.port}` });
  await withDiagnostics(t, () => [a, b, c], async () => {
    const doomed = await a.publish();
    await servedEverywhere([a, b, c], doomed);

    link.cut();
    await until('C sees etcd down', async () => (await c.ping()).cluster?.etcd === 'down', 30_000);
    const added = await b.publish();
    t.is((await call(a.url, 'DELETE', `/images/${doomed.uuid}`)).status, 204);
    await until('B has the deletion', async () => !(await b.image(doomed.uuid)));
    // C still pulls what it knew of, but cannot learn of `added` or the deletion.
    t.truthy(await c.image(doomed.uuid));
    t.log(`etcd compacted at revision ${await etcd.compact()}`);

    link.restore();
    const started = Date.now();
    await servedEverywhere([c], added);
    await until('deletion reached C', async () => !(await c.image(doomed.uuid)));
    measured(t, 'etcd link restored after compaction → C caught up (1 new, 1 deleted)', Date.now() - started);
    t.is(c.child.logs.filter((r) => r.msg === 'joining the cluster').length, 1, 'without a restart');
  });
});

test.serial('with etcd stopped every server keeps serving, and they converge once it is back', async (t) => {
  t.timeout(150_000);
  const etcd = await EtcdProcess.start(t);
  const [a, b, c] = await threeServers(t, etcd);
  await withDiagnostics(t, () => [a, b, c], async () => {
    const before = await a.publish();
    const toDisable = await c.publish();
    await servedEverywhere([a, b, c], before);
    await servedEverywhere([a, b, c], toDisable);

    await etcd.stop();
    await until('every server sees etcd down', async () => {
      for (const n of [a, b, c]) if ((await n.ping()).cluster?.etcd !== 'down') return false;
      return true;
    }, 30_000);
    // A server that starts while etcd is down serves what it holds.
    await b.kill9();
    await b.start();
    for (const n of [a, b, c]) {
      t.is(await n.fileSha1(before.uuid), before.sha1, `${n.name} still serves with etcd down`);
    }
    t.like((await b.ping()).cluster, { etcd: 'down' });
    // Changes made while etcd is down stay local for now: both are complete
    // where they were made, and etcd is the only way to the others.
    const during = await b.publish();
    t.is((await call(a.url, 'POST', `/images/${toDisable.uuid}?action=disable`)).status, 200);
    t.is((await a.image(toDisable.uuid))?.state, 'disabled');
    t.falsy(await c.image(during.uuid));
    t.is((await c.image(toDisable.uuid))?.state, 'active');
    const ping = await a.ping();
    t.like(ping.cluster, { etcd: 'down' });
    t.true(ping.cluster.lag_seconds > 0);

    await etcd.start();
    const started = Date.now();
    await servedEverywhere([a, c], during, 90_000);
    await until('disable reached B and C', async () =>
      (await b.image(toDisable.uuid))?.state === 'disabled' && (await c.image(toDisable.uuid))?.state === 'disabled', 90_000);
    measured(t, 'etcd back → converged (1 publish, 1 disable made while it was down)', Date.now() - started);
    await until('etcd up everywhere', async () => {
      for (const n of [a, b, c]) if ((await n.ping()).cluster?.etcd !== 'up') return false;
      return true;
    });
  });
});

test.serial('50 images published at once to different servers converge on all three', async (t) => {
  t.timeout(150_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  const nodes = await threeServers(t, etcd, prefix);
  await withDiagnostics(t, () => nodes, async () => {
    const started = Date.now();
    const images = await Promise.all(Array.from({ length: 50 }, (_, i) => nodes[i % 3]!.publish(randomBytes(16 * 1024 + i))));
    const published = Date.now();
    t.log(`50 publishes took ${published - started} ms`);
    const want = new Set(images.map((i) => i.uuid));
    await until('all 50 on every server', async () => {
      for (const n of nodes) {
        const have = await n.uuids();
        if ([...want].some((u) => !have.has(u))) return false;
      }
      return true;
    }, 120_000);
    measured(t, '50 concurrent publishes (last one done) → all 50 on all three', Date.now() - published);
    for (const n of nodes) {
      for (const img of images) t.is(await n.fileSha1(img.uuid), img.sha1);
    }
    const index = etcd.client();
    const holders = await index.getAll().prefix(`${prefix}holders/`).keys();
    t.is(holders.length, 150, 'every image lists all three servers as holders');
  });
});

test.serial('servers authenticate to an etcd with auth enabled, with a role limited to their prefix', async (t) => {
  t.timeout(90_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  const admin = etcd.client();
  await admin.role('root').create().catch(() => undefined);
  await admin.user('root').create('root-password');
  await admin.user('root').addRole('root');
  const role = await admin.role('imgsrv').create();
  await role.grant({ permission: 'Readwrite', range: Range.prefix(prefix) });
  await (await admin.user('imgsrv').create('imgsrv-password')).addRole('imgsrv');
  await admin.auth.authEnable({});
  const credentials = { username: 'imgsrv', password: 'imgsrv-password' };
  const a = await Node.start(t, 'a', etcd, prefix, { credentials });
  const b = await Node.start(t, 'b', etcd, prefix, { credentials });
  await withDiagnostics(t, () => [a, b], async () => {
    const img = await a.publish();
    measured(t, 'publish on A → served by B (etcd with auth)', await servedEverywhere([b], img));
    const { value: ping } = await until('B sees A', async () => {
      const p = await b.ping();
      return p.cluster?.peers === 1 ? p : undefined;
    });
    t.like(ping.cluster, { etcd: 'up', pending: 0 });
  });
});

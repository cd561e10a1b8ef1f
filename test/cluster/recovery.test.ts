/*
 * Real servers on a real etcd, where the cluster goes wrong: a server
 * restarted after images were deleted and disabled elsewhere never serves
 * them as they were, not even in its first answers; peers of a holder
 * whose file is corrupt give up on it and report it, rather than pull
 * again and again, and tell the holder, which sets its copy aside; all try
 * again when a holder with good bytes appears;
 * an image disabled in the index mid-pull stops being pulled at once; a
 * holder whose scrub finds its own copy corrupt sets it aside and pulls a
 * good one, and the image stays active everywhere.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { writeImage } from '../helpers/images.js';
import { testNeeding } from '../helpers/system-tools.js';
import { call } from '../publish/kit.js';
import { ETCD, EtcdProcess, Node, measured, servedEverywhere, testPrefix, until } from './kit.js';

const test = testNeeding(ETCD, 'etcd', 'etcd-server');

async function withDiagnostics(t: ExecutionContext, nodes: () => Node[], body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    for (const n of nodes()) for (const line of n.problems().slice(-20)) t.log(line);
    throw err;
  }
}

test.serial('a server restarted after a delete and a disable elsewhere never serves either as it was', async (t) => {
  t.timeout(120_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  const [a, b] = await Promise.all([Node.start(t, 'a', etcd, prefix), Node.start(t, 'b', etcd, prefix)]);
  await withDiagnostics(t, () => [a, b], async () => {
    const doomed = await a.publish();
    const dimmed = await a.publish();
    await servedEverywhere([b], doomed);
    await servedEverywhere([b], dimmed);

    t.is(await b.stop(), 0);
    t.is((await call(a.url, 'DELETE', `/images/${doomed.uuid}`)).status, 204);
    t.is((await call(a.url, 'POST', `/images/${dimmed.uuid}?action=disable`)).status, 200);
    const index = etcd.client();
    await until('delete and disable in etcd', async () =>
      (await index.get(`${prefix}deleted/${doomed.uuid}`).string()) !== null
      && (await index.get(`${prefix}images/${dimmed.uuid}`).string())?.includes('"disabled":true'));

    // Every answer B gives, from its very first, is looked at.
    const seen: string[] = [];
    let answered = 0;
    let starting = true;
    const watcher = (async () => {
      while (starting || answered < 20) {
        try {
          const one = await call(b.url, 'GET', `/images/${doomed.uuid}`, { auth: null });
          const file = await call(b.url, 'GET', `/images/${doomed.uuid}/file`, { auth: null });
          const other = await call(b.url, 'GET', `/images/${dimmed.uuid}`, { auth: null });
          const list = await call(b.url, 'GET', '/images', { auth: null });
          answered++;
          if (one.status !== 404) seen.push(`GetImage of the deleted image: ${one.status}`);
          if (file.status !== 404) seen.push(`GetImageFile of the deleted image: ${file.status}`);
          if (other.status === 200 && JSON.parse(other.body.toString()).state !== 'disabled') seen.push('the disabled image as active');
          const listed = JSON.parse(list.body.toString()) as { uuid: string; state: string }[];
          if (listed.some((m) => m.uuid === doomed.uuid)) seen.push('the deleted image in ListImages');
          if (listed.some((m) => m.uuid === dimmed.uuid && m.state === 'active')) seen.push('the disabled image listed as active');
        } catch {
          // not listening yet
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const started = Date.now();
    await b.start();
    starting = false;
    await watcher;
    measured(t, 'B restarted → listening, caught up with a delete and a disable', Date.now() - started);
    t.deepEqual(seen, [], 'B never served the deleted image nor the disabled one as active');
    t.true(answered >= 20);
    t.is((await b.image(dimmed.uuid))?.state, 'disabled');
    t.false(fs.existsSync(path.join(b.serveDir, doomed.uuid)));
  });
});

test.serial('peers give up on a holder whose bytes do not match and tell it, it sets its copy aside, and all pull again when a good holder appears', async (t) => {
  t.timeout(120_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  const a = await Node.start(t, 'a', etcd, prefix);
  let b: Node | undefined;
  let c: Node | undefined;
  await withDiagnostics(t, () => [a, ...(b ? [b] : []), ...(c ? [c] : [])], async () => {
    const bytes = randomBytes(48 * 1024);
    const img = await a.publish(bytes);
    const index = etcd.client();
    await until('A holds the image in the index', async () => (await index.get(`${prefix}holders/${img.uuid}/a`).string()) !== null);
    // Same size, one byte flipped, the file's stamp kept: A goes on serving it as it is, until told.
    const dir = path.join(a.serveDir, img.uuid);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    const name = fs.readdirSync(dir).find((n) => n !== 'manifest.json' && n !== 'server.json')!;
    const file = path.join(dir, name);
    const stat = fs.statSync(file);
    const corrupt = fs.readFileSync(file);
    corrupt[corrupt.length >> 1]! ^= 0xff;
    fs.writeFileSync(file, corrupt);
    fs.utimesSync(file, stat.atime, stat.mtime);
    t.not(await a.fileSha1(img.uuid), img.sha1);

    b = await Node.start(t, 'b', etcd, prefix);
    c = await Node.start(t, 'c', etcd, prefix);
    const peers = [b, c];
    const setAside = await until('A sets its copy aside', () =>
      a.child.logs.find((r) => r.msg === 'a peer found this copy corrupt: set aside; the cluster pulls a good one' && r.uuid === img.uuid), 30_000);
    t.true(peers.some((n) => n.name === setAside.value.reported_by), 'on the word of a peer');
    measured(t, 'peers started → the holder of a corrupt copy set it aside', setAside.ms);
    t.is((await call(a.url, 'GET', `/images/${img.uuid}/file`, { auth: null })).status, 404, 'A no longer serves the corrupt file');
    const kept = fs.readdirSync(path.join(a.serveDir, '.quarantine')).filter((n) => n.startsWith(`${img.uuid}-`));
    t.is(kept.length, 1, 'the corrupt folder is kept in .quarantine');
    t.deepEqual(fs.readFileSync(path.join(a.serveDir, '.quarantine', kept[0]!, name)), corrupt, 'with the bytes as found');
    await until('A withdrew its holder key and the report is gone', async () =>
      (await index.getAll().prefix(`${prefix}holders/${img.uuid}/`).keys()).length === 0
      && (await index.getAll().prefix(`${prefix}suspect/`).keys()).length === 0);

    for (const n of [a, ...peers]) {
      const { value: ping } = await until(`${n.name} gives up`, async () => {
        const p = await n.ping();
        return p.cluster?.failed === 1 && p.cluster.pending === 0 ? p : undefined;
      });
      t.like(ping.cluster, { failed: 1, failed_images: [img.uuid], pending: 0, pulling: 0 });
      t.regex(await n.metrics(), /^image_server_cluster_failed_pulls 1$/m);
    }
    t.regex((await index.get(`${prefix}images/${img.uuid}`).string()) ?? '', /"state":"active"/, 'the image stays active in the index');
    // Time passes, measured by a later image reaching both: no one asked A again.
    const later = await a.publish();
    await servedEverywhere(peers, later);
    // A peer that came after A withdrew never asked it at all.
    const tries = peers.map((n) => n.child.logs.filter((r) => r.msg === 'pulling image from a peer' && r.uuid === img.uuid).length);
    t.true(tries.every((n) => n <= 1) && tries.some((n) => n === 1), `each peer asked the bad holder at most once: ${tries.join(', ')}`);
    for (const n of peers) t.falsy(await n.image(img.uuid));

    // A good copy appears on C: C becomes a holder, and A and B pull from it.
    writeImage(c.serveDir, manifest, { bytes, fileName: name });
    const started = Date.now();
    await servedEverywhere([a, b, c], img);
    measured(t, 'a good holder appeared → the servers that had given up pulled from it', Date.now() - started);
    for (const n of [a, b]) {
      await until(`${n.name} no longer reports a failure`, async () => (await n.ping()).cluster?.failed === 0);
      t.true(n.child.logs.some((r) => r.msg === 'pulled image from a peer' && r.uuid === img.uuid && r.peer === 'c'));
    }
  });
});

test.serial('a holder whose scrub finds its copy corrupt sets it aside, stops serving it and pulls a good copy', async (t) => {
  t.timeout(120_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  const a = await Node.start(t, 'a', etcd, prefix);
  // A scrub round every ~0.4 s at 50 MB/s; scrub_repair stays off: in a cluster the copy is set aside anyway.
  const b = await Node.start(t, 'b', etcd, prefix, { config: { scrub_rate_mb_s: 50, scrub_interval_hours: 0.0001 } });
  await withDiagnostics(t, () => [a, b], async () => {
    const img = await a.publish(randomBytes(256 * 1024));
    await servedEverywhere([b], img);
    const dir = path.join(b.serveDir, img.uuid);
    const name = fs.readdirSync(dir).find((n) => n !== 'manifest.json' && n !== 'server.json')!;
    const bytes = fs.readFileSync(path.join(dir, name));
    bytes[1000] = bytes[1000]! ^ 0xff;
    fs.writeFileSync(path.join(dir, name), bytes);

    const setAside = await until('B set its copy aside', () =>
      b.child.logs.find((r) => r.msg === 'scrub: corrupt copy set aside; the cluster pulls a good one' && r.uuid === img.uuid), 30_000);
    measured(t, 'byte flipped on B → copy set aside by the scrub', setAside.ms);
    const kept = fs.readdirSync(path.join(b.serveDir, '.quarantine')).filter((n) => n.startsWith(`${img.uuid}-`));
    t.is(kept.length, 1, 'the corrupt folder is kept in .quarantine');
    t.deepEqual(fs.readFileSync(path.join(b.serveDir, '.quarantine', kept[0]!, name)), bytes, 'with the bytes as found');
    const at = b.child.logs.indexOf(setAside.value);
    await until('B pulled a good copy', () => b.child.logs.slice(at).some((r) => r.msg === 'pulled image from a peer' && r.uuid === img.uuid),
      30_000);
    await servedEverywhere([b], img);
    for (const n of [a, b]) t.is((await n.image(img.uuid))?.state, 'active', `still active on ${n.name}`);
    const holders = await etcd.client().getAll().prefix(`${prefix}holders/${img.uuid}/`).keys();
    t.deepEqual(holders.map((k) => k.slice(k.lastIndexOf('/') + 1)).sort(), ['a', 'b'], 'B holds it again');
  });
});

test.serial('a holder told about bad bytes of a copy that is sound keeps serving it, also when told while it was down', async (t) => {
  t.timeout(120_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  const a = await Node.start(t, 'a', etcd, prefix);
  await withDiagnostics(t, () => [a], async () => {
    const bytes = randomBytes(32 * 1024);
    const img = await a.publish(bytes);
    const index = etcd.client();
    await until('A holds the image in the index', async () => (await index.get(`${prefix}holders/${img.uuid}/a`).string()) !== null);
    const report = JSON.stringify({ by: 'z', at: new Date().toISOString(), problem: 'a flaky network' });
    const checked = () => a.child.logs.filter((r) => r.msg === 'a peer reported bad bytes from this server; its copy matches its manifest'
      && r.uuid === img.uuid && r.reported_by === 'z').length;

    await index.put(`${prefix}suspect/${img.uuid}/a`).value(report);
    await until('A checked its copy and removed the report', async () =>
      checked() === 1 && (await index.get(`${prefix}suspect/${img.uuid}/a`).string()) === null);

    t.is(await a.stop(), 0);
    await index.put(`${prefix}suspect/${img.uuid}/a`).value(report);
    await a.start();
    await until('A, restarted, checked its copy again and removed the report', async () =>
      checked() === 1 && (await index.get(`${prefix}suspect/${img.uuid}/a`).string()) === null);

    const got = await call(a.url, 'GET', `/images/${img.uuid}/file`, { auth: null });
    t.is(got.status, 200);
    t.deepEqual(got.body, bytes, 'A still serves its sound copy');
    t.is((await index.getAll().prefix(`${prefix}holders/${img.uuid}/`).keys()).length, 1, 'and still holds it in the index');
    t.false(fs.existsSync(path.join(a.serveDir, '.quarantine')));
  });
});

test.serial('an image disabled in the index mid-pull leaves the queue at once, and is pulled once enabled', async (t) => {
  t.timeout(120_000);
  const etcd = await EtcdProcess.start(t);
  const prefix = testPrefix();
  // Peers reach A through a proxy that holds each transfer after 1 MB, so B is caught mid-file.
  const a = await Node.start(t, 'a', etcd, prefix, { proxy: true });
  let b: Node | undefined;
  await withDiagnostics(t, () => [a, ...(b ? [b] : [])], async () => {
    a.proxy!.holdAfter(1024 * 1024);
    const img = await a.publishLarge(48 * 1024 * 1024);
    b = await Node.start(t, 'b', etcd, prefix);
    const puller = b;
    await until('B receiving the file', () => puller.partials().some((f) => f.size >= 512 * 1024), 60_000);
    t.like((await b.ping()).cluster, { pending: 1, pulling: 1 });

    t.is((await call(a.url, 'POST', `/images/${img.uuid}?action=disable`)).status, 200);
    const { ms } = await until('B dropped the pull', async () => {
      const c = (await puller.ping()).cluster;
      return c.pending === 0 && c.pulling === 0;
    }, 30_000);
    measured(t, 'disabled in the index → pull running on B stopped', ms);
    // Time passes, measured by a later image reaching B: the disabled one is not pulled meanwhile.
    a.proxy!.release();
    const later = await a.publish();
    await servedEverywhere([b], later);
    t.falsy(await b.image(img.uuid, null));
    t.false(fs.existsSync(path.join(b.serveDir, img.uuid)));
    t.is(b.child.logs.filter((r) => r.msg === 'pulling image from a peer' && r.uuid === img.uuid).length, 1);

    t.is((await call(a.url, 'POST', `/images/${img.uuid}?action=enable`)).status, 200);
    await servedEverywhere([b], img, 90_000);
    t.is((await b.image(img.uuid))?.state, 'active');
    t.true(b.child.logs.some((r) => r.msg === 'resuming an interrupted pull' && r.uuid === img.uuid),
      'the pull dropped when the image was disabled resumed from its partial download');
    t.deepEqual(b.partials(), [], 'the partial download is gone once imported');
  });
});

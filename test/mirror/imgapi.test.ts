/*
 * Mirroring from a second instance of this server over IMGAPI: the origin
 * chain comes first whatever its state, filters pick the rest, manifests
 * keep uuid, published_at and owner, the sidecar names the upstream, the
 * copies serve the very bytes, and a second run downloads nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { count, failed } from '../../src/mirror/report.js';
import { sha1 } from '../helpers/images.js';
import { startServer } from '../helpers/server.js';
import { json, request } from '../http/kit.js';
import { assertOnlyWholeImages, mirrorInto, partials, publish } from './kit.js';

const OWNER = '7b0f1c2d-3e4f-4a5b-8c6d-9e0f1a2b3c4d';

test('copies an origin chain (unactivated and disabled origins) before the image, with its manifest and bytes', async (t) => {
  const upstream = await startServer(t);
  const local = await startServer(t);
  const base = await publish(upstream, { name: 'base', version: '1', state: 'unactivated', owner: OWNER });
  const mid = await publish(upstream, { name: 'mid', version: '1', state: 'disabled', disabled: true, origin: base.uuid, owner: OWNER });
  const app = await publish(upstream, { name: 'app', version: '2', origin: mid.uuid, owner: OWNER });
  const other = await publish(upstream, { name: 'other', version: '1' });

  const mirror = mirrorInto(t, local, { url: upstream.url, type: 'imgapi', filters: { name: ['app'] } });
  const report = await mirror.run();
  t.false(failed(report), JSON.stringify({ error: report.error, results: report.results }));
  t.deepEqual(report.plan.map((e) => e.image.uuid), [base.uuid, mid.uuid, app.uuid], 'origins first');
  t.deepEqual(report.plan.map((e) => e.role), ['origin', 'origin', 'selected']);
  t.deepEqual(report.plan[0]!.originOf, [mid.uuid]);
  t.is(count(report, 'copied'), 3);
  t.is(local.store.get(other.uuid), undefined, 'the name filter leaves other images out');

  const states = [base, mid, app].map((p) => local.store.get(p.uuid)!.manifest.state);
  t.deepEqual(states, ['unactivated', 'disabled', 'active'], 'origins keep their state; the picked image is active');
  for (const p of [base, mid, app]) {
    const m = local.store.get(p.uuid)!.manifest;
    t.is(m.owner, OWNER);
    t.is(m.published_at, p.manifest.published_at as string);
    t.deepEqual(m.files, [{ sha1: p.sha1, size: p.bytes.length, compression: 'gzip' }]);
    const sidecar = JSON.parse(fs.readFileSync(path.join(local.serveDir, p.uuid, 'server.json'), 'utf8'));
    t.deepEqual(sidecar.source, { via: 'mirror', url: upstream.url, type: 'imgapi' });
    t.is(sidecar.history.at(-1).event, 'mirrored');
    const file = await request(`${local.url}/images/${p.uuid}/file`);
    t.is(file.status, 200);
    t.is(sha1(file.body), p.sha1, 'the copy serves the same bytes');
  }
  t.is(local.store.get(app.uuid)!.manifest.origin, mid.uuid);
  const shown = json<Record<string, unknown>>(await request(`${local.url}/images/${app.uuid}`));
  t.is(shown.published_at, app.manifest.published_at);

  const fileGets = () => upstream.logs.filter((r) => r.route === 'GetImageFile').length;
  t.is(fileGets(), 3);
  const again = await mirror.run();
  t.false(failed(again));
  t.is(count(again, 'copied'), 0);
  t.is(count(again, 'present'), 1);
  t.is(again.plan.length, 0);
  t.is(fileGets(), 3, 'a verified image is never downloaded again');
  t.deepEqual(partials(local.serveDir), []);
  await assertOnlyWholeImages(t, local.serveDir);
});

test('without filters copies every active image, and an origin already here stops the chain', async (t) => {
  const upstream = await startServer(t);
  const local = await startServer(t);
  const base = await publish(upstream, { name: 'base', version: '1' });
  const child = await publish(upstream, { name: 'child', version: '1', origin: base.uuid });
  const linux = await publish(upstream, { name: 'ubuntu', version: '22.04', os: 'linux', type: 'lx-dataset', requirements: { brand: 'lx' } });
  const disabled = await publish(upstream, { name: 'old', version: '1', state: 'disabled', disabled: true });

  // Only the base first, by name.
  const first = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi', filters: { name: ['base'] } }).run();
  t.is(count(first, 'copied'), 1);
  const all = mirrorInto(t, local, { url: `${upstream.url}/`, type: 'imgapi' });
  const report = await all.run();
  t.false(failed(report), JSON.stringify({ error: report.error, results: report.results }));
  t.deepEqual(report.plan.map((e) => e.image.uuid).sort(), [child.uuid, linux.uuid].sort(), 'the base is here already');
  t.truthy(local.store.get(linux.uuid));
  t.is(local.store.get(disabled.uuid), undefined, 'a disabled image nobody builds on is not copied');

  const byOs = await startServer(t);
  const onlyLinux = await mirrorInto(t, byOs, { url: upstream.url, type: 'imgapi', filters: { os: ['linux'], imageType: ['lx-dataset'] } }).run();
  t.deepEqual(onlyLinux.results.map((r) => r.uuid), [linux.uuid]);
});

test('a dry run lists the copies, origins first, and changes nothing', async (t) => {
  const upstream = await startServer(t);
  const local = await startServer(t);
  const base = await publish(upstream, { name: 'base', version: '1', state: 'disabled', disabled: true });
  const app = await publish(upstream, { name: 'app', version: '1', origin: base.uuid });
  const before = fs.readdirSync(local.serveDir);
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }).run({ dryRun: true });
  t.deepEqual(report.results.map((r) => [r.uuid, r.outcome]), [[base.uuid, 'planned'], [app.uuid, 'planned']]);
  t.deepEqual(fs.readdirSync(local.serveDir), before);
  t.is(upstream.logs.filter((r) => r.route === 'GetImageFile').length, 0);
});

test('an origin missing upstream fails its image only; one deleted here is not brought back', async (t) => {
  const upstream = await startServer(t);
  const local = await startServer(t);
  const base = await publish(upstream, { name: 'base', version: '1' });
  const orphan = await publish(upstream, { name: 'orphan', version: '1', origin: base.uuid });
  const fine = await publish(upstream, { name: 'fine', version: '1' });
  // An upstream that lost an origin: removed by hand, as the store itself refuses to.
  fs.rmSync(path.join(upstream.serveDir, base.uuid), { recursive: true, force: true });
  await upstream.store.rescan(true);
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }).run();
  const byUuid = new Map(report.results.map((r) => [r.uuid, r]));
  t.is(byUuid.get(orphan.uuid)!.outcome, 'failed');
  t.regex(byUuid.get(orphan.uuid)!.error!, /origin .* does not exist upstream/);
  t.is(byUuid.get(fine.uuid)!.outcome, 'copied');
  t.true(failed(report));

  await local.writer.remove(fine.uuid, { via: 'admin', by: 'test' });
  const again = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi', filters: { name: ['fine'] } }).run();
  t.deepEqual(again.results.map((r) => r.outcome), ['deleted']);
  t.false(failed(again));
  t.is(local.store.get(fine.uuid), undefined);
});

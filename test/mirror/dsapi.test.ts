/*
 * Mirroring over DSAPI: from a second instance of this server (its v1
 * manifests upgraded as imgadm upgrades them, legacy creator facts kept
 * for this server's own DSAPI view), and from a stand-in shaped like
 * dsapid (nanosecond published_at, hex files[].md5, file URLs naming
 * another host, an origin chain, .xz files without a compression field).
 */
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { count, failed } from '../../src/mirror/report.js';
import { sha1, v1Manifest, writeImage } from '../helpers/images.js';
import { startServer } from '../helpers/server.js';
import { json, request } from '../http/kit.js';
import { assertOnlyWholeImages, bytesOf, fileRequests, mirrorInto, publish, sendBytes, sendJson, standIn } from './kit.js';

test('copies from another instance over DSAPI: v1 manifests upgraded, legacy facts kept', async (t) => {
  const upstream = await startServer(t);
  const local = await startServer(t);
  const v2 = await publish(upstream, { name: 'base-64', version: '23.4.0', owner: '9b2f1c64-3e8d-4a7b-8c5e-0d1f2a3b4c5d' });
  const bytes = bytesOf('gzip', 2048);
  const legacy = writeImage(upstream.serveDir, v1Manifest(bytes, 'orgbase-1.0.0.zfs.gz'), { bytes, fileName: 'orgbase-1.0.0.zfs.gz' });
  const hidden = await publish(upstream, { name: 'hidden', version: '1', state: 'disabled', disabled: true });
  await upstream.store.rescan(true);

  for (const url of [`${upstream.url}/datasets`, upstream.url]) {
    const target = url === upstream.url ? await startServer(t) : local;
    const report = await mirrorInto(t, target, { url, type: 'dsapi' }).run();
    t.false(failed(report), JSON.stringify({ error: report.error, results: report.results }));
    t.deepEqual(report.results.map((r) => r.uuid).sort(), [v2.uuid, legacy.uuid].sort());
    t.is(count(report, 'copied'), 2);
  }
  t.is(local.store.get(hidden.uuid), undefined);

  const copied = local.store.get(legacy.uuid)!;
  t.is(copied.manifest.owner, '5f0b7d2a-1c3e-4b8f-9e6d-7a8b9c0d1e2f', 'creator_uuid became the owner');
  // The upstream serves the date its loader normalised from "2014-01-21T05:44Z".
  t.is(copied.manifest.published_at, '2014-01-21T05:44:00.000Z');
  t.is(copied.manifest.state, 'active');
  t.is(copied.manifest.files[0]!.compression, 'gzip');
  t.is(copied.manifest.urn, 'internal:internal:orgbase:1.0.0');
  const dataset = json<Record<string, unknown>>(await request(`${local.url}/datasets/${legacy.uuid}`));
  t.is(dataset.creator_name, 'internal', 'the local DSAPI view gives the legacy facts back');
  t.is(dataset.cloud_name, 'internal');
  const file = await request(`${local.url}/images/${legacy.uuid}/file`);
  t.is(sha1(file.body), sha1(bytes));
  t.is(local.store.get(v2.uuid)!.manifest.owner, '9b2f1c64-3e8d-4a7b-8c5e-0d1f2a3b4c5d');
  t.is(local.store.get(v2.uuid)!.manifest.published_at, v2.manifest.published_at as string);
  const sidecar = JSON.parse(fs.readFileSync(path.join(local.serveDir, v2.uuid, 'server.json'), 'utf8'));
  t.deepEqual(sidecar.source, { via: 'mirror', url: `${upstream.url}/datasets`, type: 'dsapi' });
  await assertOnlyWholeImages(t, local.serveDir);
});

interface DsImage {
  manifest: Record<string, unknown>;
  bytes: Buffer;
  path: string;
}

/** A v1 manifest as dsapid's DSAPI encoder writes it (docs/protocol.md §6.1). */
function dsapidItem(fields: Record<string, unknown> = {}, file: { ext?: string; compression?: string; md5?: string } = {}): DsImage {
  const bytes = bytesOf(file.ext === '.xz' ? 'xz' : file.ext === '.img' ? 'none' : 'gzip', 3000);
  const uuid = randomUUID();
  const name = String(fields.name ?? 'base-64');
  const filePath = `${name}-16.4.1.zfs${file.ext ?? '.gz'}`;
  const entry: Record<string, unknown> = {
    url: `https://datasets.example.org/datasets/${uuid}/${filePath}`,
    path: filePath,
    md5: file.md5 ?? createHash('md5').update(bytes).digest('hex'),
    sha1: sha1(bytes),
    size: bytes.length,
  };
  if (file.compression) entry.compression = file.compression;
  return {
    bytes,
    path: filePath,
    manifest: {
      uuid,
      name,
      version: '16.4.1',
      description: 'shape emitted by dsapid',
      os: 'smartos',
      type: 'zone-dataset',
      urn: `smartos:smartos:${name}:16.4.1`,
      published_at: '2017-01-10T11:12:13.123456789Z',
      created_at: '2017-01-10T11:12:13.123456789Z',
      creator_uuid: 'a979f956-12cb-4216-bf4c-ae73e6f14dde',
      creator_name: 'sdc',
      vendor_uuid: 'a979f956-12cb-4216-bf4c-ae73e6f14dde',
      requirements: { networks: [{ name: 'net0', description: 'public' }] },
      files: [entry],
      ...fields,
    },
  };
}

async function dsapidStandIn(t: Parameters<typeof standIn>[0], listed: DsImage[], unlisted: DsImage[] = []) {
  const all = [...listed, ...unlisted];
  return standIn(t, (req, res) => {
    // dsapid routes by path; a client that sent the absolute URL would show its host here.
    const parts = new URL(req.url ?? '/', 'http://x').pathname.split('/').filter(Boolean);
    if (parts[0] !== 'datasets') return sendJson(res, { error: { message: 'Not found', code: 404 } }, 404);
    if (parts.length === 1) return sendJson(res, listed.map((i) => i.manifest));
    const image = all.find((i) => i.manifest.uuid === parts[1]);
    if (!image) return sendJson(res, { error: { message: 'Not found', code: 404 } }, 404);
    if (parts.length === 2) return sendJson(res, image.manifest);
    if (parts[2] !== image.path) return sendJson(res, { error: { message: 'Not found', code: 404 } }, 404);
    return sendBytes(req, res, image.bytes);
  });
}

test('copies dsapid-style manifests: nanosecond dates, hex md5, file URLs on another host, an origin chain', async (t) => {
  const base = dsapidItem({ name: 'base', disabled: true });
  const app = dsapidItem({ name: 'app', origin: base.manifest.uuid });
  const xz = dsapidItem({ name: 'xzimage' }, { ext: '.xz' });
  const explicit = dsapidItem({ name: 'explicit' }, { ext: '.img', compression: 'none' });
  const upstream = await dsapidStandIn(t, [app, xz, explicit], [base]);
  const local = await startServer(t);

  const report = await mirrorInto(t, local, { url: `${upstream.url}/datasets`, type: 'dsapi' }).run();
  t.false(failed(report), JSON.stringify({ error: report.error, results: report.results }));
  const order = report.plan.map((e) => e.image.uuid);
  t.true(order.indexOf(String(base.manifest.uuid)) < order.indexOf(String(app.manifest.uuid)), 'the origin (disabled, not listed) comes first');
  t.is(report.plan.find((e) => e.image.uuid === base.manifest.uuid)!.role, 'origin');
  t.is(count(report, 'copied'), 4);

  const a = local.store.get(String(app.manifest.uuid))!;
  t.is(a.manifest.published_at, '2017-01-10T11:12:13.123Z', 'nanoseconds cut to what IMGAPI accepts');
  t.is(a.manifest.owner, 'a979f956-12cb-4216-bf4c-ae73e6f14dde');
  t.is(a.manifest.origin, String(base.manifest.uuid));
  t.is(a.manifest.state, 'active');
  t.is(local.store.get(String(base.manifest.uuid))!.manifest.state, 'disabled');
  t.is(local.store.get(String(xz.manifest.uuid))!.manifest.files[0]!.compression, 'xz', 'the .xz pitfall avoided');
  t.is(local.store.get(String(explicit.manifest.uuid))!.manifest.files[0]!.compression, 'none');
  for (const r of fileRequests(upstream.requests)) {
    t.false(r.url.includes('example.org'), 'files[].url is taken as a path on the upstream host');
    t.is(r.headers.host, `127.0.0.1:${upstream.port}`);
  }
  t.is(fileRequests(upstream.requests).length, 4);
  const served = await request(`${local.url}/images/${String(xz.manifest.uuid)}/file`);
  t.is(sha1(served.body), sha1(xz.bytes));
  await assertOnlyWholeImages(t, local.serveDir);
});

test('an md5 that does not match the bytes fails the image, and nothing is published', async (t) => {
  const bad = dsapidItem({ name: 'badmd5' }, { md5: '0cc175b9c0f1b6a831c399e269772661' });
  const good = dsapidItem({ name: 'good' });
  const upstream = await dsapidStandIn(t, [bad, good]);
  const local = await startServer(t);
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'dsapi' }).run();
  const byUuid = new Map(report.results.map((r) => [r.uuid, r]));
  t.is(byUuid.get(String(bad.manifest.uuid))!.outcome, 'failed');
  t.regex(byUuid.get(String(bad.manifest.uuid))!.error!, /md5/);
  t.is(byUuid.get(String(good.manifest.uuid))!.outcome, 'copied');
  t.is(local.store.get(String(bad.manifest.uuid)), undefined);
  t.deepEqual((await assertOnlyWholeImages(t, local.serveDir)).sort(), [String(good.manifest.uuid)]);
});

test('a v1 manifest imgadm cannot upgrade is reported, the others are copied', async (t) => {
  const broken = dsapidItem({ name: 'broken', owner: '930896af-bf8c-48d4-885c-6573a94b1853' });
  const fine = dsapidItem({ name: 'fine' });
  const upstream = await dsapidStandIn(t, [broken, fine]);
  const local = await startServer(t);
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'dsapi' }).run();
  const byUuid = new Map(report.results.map((r) => [r.uuid, r]));
  t.regex(byUuid.get(String(broken.manifest.uuid))!.error!, /cannot upgrade the v1 manifest/);
  t.is(byUuid.get(String(fine.manifest.uuid))!.outcome, 'copied');
  // Filtered out, a broken manifest is nobody's concern.
  const other = await startServer(t);
  const filtered = await mirrorInto(t, other, { url: upstream.url, type: 'dsapi', filters: { name: ['fine'] } }).run();
  t.false(failed(filtered));
});

/*
 * An upstream with more than 1,000 images: the listing is paged exactly as
 * sdc-clients pages it (no limit first, then marker=<last uuid>&limit=1000,
 * the marker inclusive, stop on a short page), every image is copied once,
 * and a dsapid-like upstream that ignores marker and limit ends the
 * paging instead of looping.
 */
import test from 'ava';
import { count, failed } from '../../src/mirror/report.js';
import { startServer } from '../helpers/server.js';
import { dsapidImgapiImage, fileRequests, imgapiHandler, mirrorInto, standIn } from './kit.js';

const N = 1005;

test(`pages through ${N} images and copies each exactly once`, async (t) => {
  const images = Array.from({ length: N }, (_, i) => dsapidImgapiImage({ name: `img${i % 7}` }, 32));
  const upstream = await standIn(t, imgapiHandler(images));
  const local = await startServer(t);
  // A thousand tiny copies wait on fsync, not on bytes: many at a time keep this test short.
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }, { concurrency: 32 }).run();
  t.false(failed(report), JSON.stringify({ error: report.error, failed: report.results.filter((r) => r.outcome === 'failed').slice(0, 3) }));

  const lists = upstream.requests.filter((r) => r.url.startsWith('/images?') || r.url === '/images');
  t.is(lists.length, 2);
  t.is(lists[0]!.url, '/images', 'the first page asks for no limit');
  const second = new URL(lists[1]!.url, 'http://x').searchParams;
  t.is(second.get('limit'), '1000');
  const byDate = [...images].sort((a, b) => String(a.manifest.published_at).localeCompare(String(b.manifest.published_at)));
  t.is(second.get('marker'), String(byDate[999]!.manifest.uuid), 'the marker is the last uuid of the first page');

  t.is(report.listed, N);
  t.is(count(report, 'copied'), N);
  const gets = new Map<string, number>();
  for (const r of fileRequests(upstream.requests)) {
    const uuid = r.url.split('/')[2]!;
    gets.set(uuid, (gets.get(uuid) ?? 0) + 1);
  }
  t.is(gets.size, N);
  t.true([...gets.values()].every((n) => n === 1), 'every file fetched once');
  t.is(local.store.list().length, N);
  const one = local.store.get(String(images[500]!.manifest.uuid))!;
  t.regex(one.manifest.published_at!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'nanoseconds cut to milliseconds');
  t.is(one.manifest.owner, 'a979f956-12cb-4216-bf4c-ae73e6f14dde');
});

test('an upstream that ignores marker and limit (dsapid) is listed once, without looping', async (t) => {
  const images = Array.from({ length: 1002 }, () => dsapidImgapiImage({}, 16));
  const upstream = await standIn(t, imgapiHandler(images, { ignoreMarker: true }));
  const local = await startServer(t);
  const report = await mirrorInto(t, local, { url: upstream.url, type: 'imgapi' }).run({ dryRun: true });
  t.false(failed(report));
  t.is(upstream.requests.length, 2, 'the repeated last uuid stops the paging');
  t.is(report.listed, 1002);
  t.is(count(report, 'planned'), 1002);
});

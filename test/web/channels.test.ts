/*
 * The web catalog on a server with channels: it lists every channel's
 * images (not only the default channel's), shows each image's channels in
 * the table and on the image page, and the import command names the
 * image's channel. It filters by channel, showing exactly what the server
 * lists in the channel picked.
 */
import { randomBytes } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import { tmpDir, v2Manifest, writeImage, type ImageOnDisk } from '../helpers/images.js';
import { OPERATOR_AUTH, startServer, type TestServer } from '../helpers/server.js';
import { call, parse } from '../publish/kit.js';
import {
  assertOnlyOrigin, browserTest, catalogReady, counts, drawnRows, openBrowser, outFile,
} from './browser.js';

declare const document: any;

const CHANNELS = [
  { name: 'release', description: 'tested images', default: true },
  { name: 'dev', description: 'fresh builds' },
];

browserTest('the catalog lists every channel, shows the channels of each image, and imports with -C', async (t) => {
  const root = tmpDir(t);
  const image = (fields: Record<string, unknown>) => {
    const bytes = randomBytes(100);
    return writeImage(root, v2Manifest(bytes, fields), { bytes });
  };
  const dev = image({ name: 'devimg', channels: ['dev'] });
  const both = image({ name: 'bothimg', channels: ['dev', 'release'] });
  const old = image({ name: 'oldimg' });
  const srv = await startServer(t, { serveDir: root, config: { loglevel: 'warn', channels: CHANNELS } });
  const { page, errors } = await openBrowser(t);
  await page.goto(`${srv.url}/`);
  await catalogReady(page);
  t.like(await counts(page), { total: 3 });
  const channelsOf = (uuid: string) => page.$$eval(`#catalog-table tr.row[data-uuid="${uuid}"] td.name .channel`,
    (spans: any[]) => spans.map((s) => s.textContent));
  t.deepEqual(await channelsOf(dev.uuid), ['dev']);
  t.deepEqual(await channelsOf(both.uuid), ['dev', 'release']);
  t.deepEqual(await channelsOf(old.uuid), ['release'], 'an image without the field is in the default channel');

  await page.fill('#search', 'dev');
  await page.waitForFunction(() => document.querySelector('#catalog-status')?.dataset.count === '2');

  await page.goto(`${srv.url}/#/image/${dev.uuid}`);
  await page.waitForSelector('#image-channels');
  t.is((await page.textContent('#image-channels'))?.trim(), 'dev');
  t.is(await page.inputValue('#cmd-import'), `imgadm import -C dev ${dev.uuid}`);
  t.deepEqual(errors, []);
});

/** A serve_dir with three images: one in dev, one in dev and release, one with no channels field (so in release). */
async function channelServer(t: ExecutionContext) {
  const root = tmpDir(t);
  const image = (fields: Record<string, unknown>) => {
    const bytes = randomBytes(100);
    return writeImage(root, v2Manifest(bytes, fields), { bytes });
  };
  const images = {
    dev: image({ name: 'devimg', channels: ['dev'] }),
    both: image({ name: 'bothimg', channels: ['dev', 'release'] }),
    old: image({ name: 'oldimg' }),
  };
  const srv = await startServer(t, { serveDir: root, config: { loglevel: 'warn', channels: CHANNELS } });
  return { srv, images };
}

/** The uuids the server lists in `channel`. */
async function listed(srv: TestServer, channel: string): Promise<string[]> {
  const res = await call(srv.url, 'GET', `/images?state=all&channel=${channel}`, { auth: OPERATOR_AUTH });
  return parse<{ uuid: string }[]>(res).map((m) => m.uuid).sort();
}

const uuids = (...images: ImageOnDisk[]) => images.map((i) => i.uuid).sort();

browserTest('the channel picker shows exactly the images the server lists in that channel', async (t) => {
  const { srv, images } = await channelServer(t);
  const { page, errors, requests } = await openBrowser(t);
  await page.goto(`${srv.url}/`);
  await catalogReady(page);
  await page.waitForSelector('#channel-filter');
  t.true(await page.isVisible('#channel-filter'));
  const options = await page.$$eval('#channel-filter option', (els: any[]) => els.map((o) => [o.value, o.textContent]));
  t.deepEqual(options, [['', 'All channels'], ['release', 'release, the default (2)'], ['dev', 'dev (2)']]);

  const shown = async (channel: string) => {
    await page.selectOption('#channel-filter', channel);
    const want = channel ? (await listed(srv, channel)).length : 3;
    await page.waitForFunction((n) => document.querySelector('#catalog-status')?.dataset.count === String(n), want);
    return (await drawnRows(page)).map((r) => r.uuid).sort();
  };
  t.deepEqual(await shown('dev'), await listed(srv, 'dev'));
  t.deepEqual(await shown('dev'), uuids(images.dev, images.both));
  t.deepEqual(await shown('release'), await listed(srv, 'release'));
  t.deepEqual(await shown('release'), uuids(images.both, images.old), 'the image without the field is in the default channel');
  t.deepEqual(await shown(''), uuids(images.dev, images.both, images.old), 'all channels');

  // The channel works with the search, and is still picked on coming back from an image.
  await page.selectOption('#channel-filter', 'dev');
  await page.fill('#search', 'bothimg');
  await page.waitForFunction(() => document.querySelector('#catalog-status')?.dataset.count === '1');
  t.deepEqual((await drawnRows(page)).map((r) => r.uuid), [images.both.uuid]);
  await page.screenshot({ path: outFile('channels-catalog.png') });
  await page.goto(`${srv.url}/#/image/${images.dev.uuid}`);
  await page.waitForSelector('#image-channels');
  await page.click('#back-to-catalog');
  await page.waitForSelector('#catalog-view:not([hidden])');
  t.is(await page.inputValue('#channel-filter'), 'dev');
  t.deepEqual(errors, []);
  assertOnlyOrigin(t, requests, srv.url);
});

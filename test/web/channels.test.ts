/*
 * The web catalog on a server with channels: it lists every channel's
 * images (not only the default channel's), shows each image's channels in
 * the table and on the image page, and the import command names the
 * image's channel. It filters by channel; a publisher adds an image to a
 * channel and takes it out of one (out of the last one deletes it), and
 * publishes into the channel picked. A server without channels shows
 * none of this. Every change is checked on the server, not only on the page.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { tmpDir, v2Manifest, writeImage, type ImageOnDisk } from '../helpers/images.js';
import { OPERATOR_AUTH, startServer, type TestServer } from '../helpers/server.js';
import { call, parse } from '../publish/kit.js';
import {
  assertOnlyOrigin, browserTest, catalogReady, counts, drawnRows, openBrowser, outFile, signIn,
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
async function channelServer(t: ExecutionContext, config: Record<string, unknown> = { channels: CHANNELS }) {
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
  const srv = await startServer(t, { serveDir: root, config: { loglevel: 'warn', ...config } });
  return { srv, images };
}

/** What the server holds of an image: its channels (API version 2 shows them), or null when it is gone. */
async function held(srv: TestServer, uuid: string): Promise<string[] | null> {
  const res = await call(srv.url, 'GET', `/images/${uuid}?channel=*`, { auth: OPERATOR_AUTH, headers: { 'accept-version': '~2' } });
  if (res.status === 404) return null;
  if (res.status !== 200) throw new Error(`GET /images/${uuid}: ${res.status} ${res.body.toString()}`);
  return parse(res).channels;
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

browserTest('a publisher adds an image to a channel and takes it out of each; out of the last one deletes it', async (t) => {
  const { srv, images } = await channelServer(t);
  const b = await openBrowser(t);
  const { page } = b;
  const { uuid } = images.dev;
  await signIn(b, srv.url);
  await page.goto(`${srv.url}/#/image/${uuid}`);
  await page.waitForSelector('#channel-actions');
  t.deepEqual(await page.$$eval('#channel-add-select option', (els: any[]) => els.map((o) => o.value)), ['release'],
    'only the channels it is not in');
  t.deepEqual(await page.$$eval('#channel-actions button', (els: any[]) => els.map((e) => e.textContent)),
    ['Add to channel', 'Remove from channel dev']);
  await page.screenshot({ path: outFile('channels-image.png'), fullPage: true });

  // Add to release: asked first, then on the server and on the page.
  await page.selectOption('#channel-add-select', 'release');
  await page.click('#action-channel-add');
  await page.waitForSelector('#confirm-dialog');
  t.is(await page.textContent('#confirm-title'), 'Add devimg 1.0.0 to channel release?');
  await page.keyboard.press('Escape');
  t.deepEqual(await held(srv, uuid), ['dev'], 'Escape did nothing');
  await page.click('#action-channel-add');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => document.querySelector('#image-channels')?.textContent === 'dev, release');
  t.deepEqual(await held(srv, uuid), ['dev', 'release']);
  t.is(await page.textContent('#action-result'), 'Add to channel release: done.');
  t.false(await page.isVisible('#channel-add-select'), 'in every channel: nothing left to add to');

  // Out of dev: it stays in release.
  await page.click('#action-channel-remove-dev');
  await page.waitForSelector('#confirm-dialog');
  t.is(await page.textContent('#confirm-title'), 'Remove devimg 1.0.0 from channel dev?');
  t.regex(await page.textContent('#confirm-text') ?? '', /stays in release/);
  t.is(await page.textContent('#confirm-ok'), 'Remove');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => document.querySelector('#image-channels')?.textContent === 'release');
  t.deepEqual(await held(srv, uuid), ['release']);
  t.deepEqual(await page.$$eval('#channel-add-select option', (els: any[]) => els.map((o) => o.value)), ['dev']);

  // Out of release, its last channel: the confirmation says the image goes, and it does.
  await page.click('#action-channel-remove-release');
  await page.waitForSelector('#confirm-dialog');
  t.regex(await page.textContent('#confirm-text') ?? '', /release is its last channel: the image and its file are removed from this server/);
  t.is(await page.textContent('#confirm-ok'), 'Delete');
  await page.keyboard.press('Enter'); // the Cancel button has the focus, as for Delete
  t.deepEqual(await held(srv, uuid), ['release']);
  await page.click('#action-channel-remove-release');
  await page.click('#confirm-ok');
  await page.waitForSelector('#catalog-view:not([hidden])');
  t.is(await held(srv, uuid), null, 'deleted');
  await page.waitForFunction(() => document.querySelector('#catalog-status')?.dataset.total === '2');

  // The server changed under the page: its refusal is shown as the other actions show theirs.
  await page.goto(`${srv.url}/#/image/${images.both.uuid}`);
  await page.waitForSelector('#action-channel-remove-dev');
  t.is((await call(srv.url, 'DELETE', `/images/${images.both.uuid}?channel=dev`, { auth: OPERATOR_AUTH })).status, 204);
  await page.click('#action-channel-remove-dev');
  await page.click('#confirm-ok');
  await page.waitForSelector('#action-error');
  t.regex(await page.textContent('#action-error') ?? '', /^Remove from channel dev failed: .+/);
  t.deepEqual(await held(srv, images.both.uuid), ['release']);
  t.deepEqual(b.errors, []);
  assertOnlyOrigin(t, b.requests, srv.url);
});

browserTest('the publish form publishes into the channel picked, the default one preselected', async (t) => {
  const { srv } = await channelServer(t);
  const b = await openBrowser(t);
  const { page } = b;
  const bytes = randomBytes(64 * 1024);
  bytes.fill(0, 0, 16); // no compression magic by chance
  const file = path.join(tmpDir(t), 'chan.zfs');
  fs.writeFileSync(file, bytes);
  await signIn(b, srv.url);
  await page.click('#upload-link');
  await page.waitForSelector('#up-channel');
  await page.waitForFunction(() => !document.querySelector('#up-channel').closest('.f').hidden);
  t.deepEqual(await page.$$eval('#up-channel option', (els: any[]) => els.map((o) => o.value)), ['release', 'dev']);
  t.is(await page.inputValue('#up-channel'), 'release', 'the default channel is preselected');
  await page.screenshot({ path: outFile('channels-upload.png'), fullPage: true });
  await page.fill('#up-name', 'chanpub');
  await page.fill('#up-version', '1.0.0');
  await page.selectOption('#up-os', 'smartos');
  await page.selectOption('#up-type', 'zone-dataset');
  await page.setInputFiles('#up-file', file);
  await page.selectOption('#up-channel', 'dev');
  await page.click('#up-submit');
  await page.waitForSelector('#upload-done');
  const href = await page.getAttribute('#upload-done-link', 'href') ?? '';
  const uuid = href.replace('#/image/', '');
  t.deepEqual(await held(srv, uuid), ['dev']);
  t.true((await listed(srv, 'dev')).includes(uuid));
  t.false((await listed(srv, 'release')).includes(uuid));
  t.is(await page.inputValue('#up-channel'), 'release', 'the form is reset to the default channel');
  t.deepEqual(b.errors, []);
});

browserTest('a server without channels shows no channel picker and no channel actions', async (t) => {
  const { srv, images } = await channelServer(t, {});
  t.is((await call(srv.url, 'GET', '/channels', { auth: OPERATOR_AUTH })).status, 404, 'no GET /channels');
  const b = await openBrowser(t);
  const { page } = b;
  await signIn(b, srv.url);
  t.like(await counts(page), { total: 3 });
  t.false(await page.isVisible('#channel-filter'));
  await page.goto(`${srv.url}/#/image/${images.dev.uuid}`);
  await page.waitForSelector('#action-delete');
  t.is(await page.$('#channel-actions'), null);
  t.is(await page.$('#image-channels'), null);
  await page.goto(`${srv.url}/#/upload`);
  await page.waitForSelector('#upload-form:not([hidden])');
  t.false(await page.isVisible('#up-channel'));
  t.deepEqual(b.errors, []);
});

/*
 * The web catalog on a server with channels: it lists every channel's
 * images (not only the default channel's), shows each image's channels in
 * the table and on the image page, and the import command names the
 * image's channel.
 */
import { randomBytes } from 'node:crypto';
import { tmpDir, v2Manifest, writeImage } from '../helpers/images.js';
import { startServer } from '../helpers/server.js';
import { browserTest, catalogReady, counts, openBrowser } from './browser.js';

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

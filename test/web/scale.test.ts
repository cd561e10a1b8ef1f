/*
 * The catalog with 10,000 images: one fetch, and only the rows in view in
 * the DOM, so loading, searching, sorting and grouping stay quick. The
 * times are measured in the page and written to the test output folder.
 */
import fs from 'node:fs';
import { tmpDir } from '../helpers/images.js';
import { startServer } from '../helpers/server.js';
import { assertOnlyOrigin, browserTest, catalogReady, counts, openBrowser, outFile, writeCatalog } from './browser.js';

/* Names that exist inside the page, where the page.evaluate() callbacks run. */
declare const document: any;
declare const window: any;
declare const performance: any;
declare const requestAnimationFrame: any;

const N = 10_000;

browserTest(`${N.toLocaleString('en-US')} images: loading, searching, sorting and grouping stay quick`, async (t) => {
  const root = tmpDir(t);
  const t0 = Date.now();
  const images = writeCatalog(root, N);
  const t1 = Date.now();
  const srv = await startServer(t, { serveDir: root, config: { loglevel: 'warn' } });
  t.log(`setup: ${t1 - t0} ms writing, ${Date.now() - t1} ms loading`);
  const b = await openBrowser(t);
  const { page } = b;
  const started = Date.now();
  await page.goto(`${srv.url}/`);
  await catalogReady(page);
  await page.waitForSelector('#catalog-table tbody tr.row');
  const load = Date.now() - started;
  const inPage = await page.evaluate(() => (window as any).imageServerCatalog);
  const visible = images.filter((m) => m.public).length;
  t.deepEqual(await counts(page), { count: visible, total: visible });
  t.true(inPage.drawn < 120, `${inPage.drawn} rows in the DOM`);

  /** Milliseconds from an input event to the next frame after the table is redrawn. */
  const timed = (action: string, arg: string) => page.evaluate(async ([what, value]) => {
    const t0 = performance.now();
    if (what === 'search') {
      const input = document.querySelector('#search');
      input.value = value;
      input.dispatchEvent(new Event('input', { bubbles: true }));
    } else if (what === 'sort') {
      document.querySelector(`th.${value} button`).click();
    } else {
      document.querySelector('#group').click();
    }
    await new Promise((r) => requestAnimationFrame(() => r(null)));
    return performance.now() - t0;
  }, [action, arg] as const);
  const search = await timed('search', 'ubuntu');
  t.is((await counts(page)).count, images.filter((m) => m.public && /ubuntu/.test(`${m.name} ${m.description}`.toLowerCase())).length);
  const clear = await timed('search', '');
  const sortName = await timed('sort', 'name');
  const sortAgain = await timed('sort', 'name');
  const sortSize = await timed('sort', 'size');
  const group = await timed('group', '');
  const scroll = await page.evaluate(async () => {
    const t0 = performance.now();
    window.scrollTo(0, document.body.scrollHeight / 2);
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(null))));
    return performance.now() - t0;
  });
  const ms = (n: number) => `${Math.round(n)} ms`;
  const line = `${N} images: ${ms(load)} from navigation to the first rows drawn (fetch ${ms(inPage.timing.fetchMs)}, `
    + `prepare ${ms(inPage.timing.prepareMs)}, draw ${ms(inPage.timing.renderMs)}); search ${ms(search)}, clear ${ms(clear)}, `
    + `sort by name ${ms(sortName)} (again, reversed: ${ms(sortAgain)}), by size ${ms(sortSize)}, group by name ${ms(group)}, `
    + `scroll to the middle ${ms(scroll)}`;
  t.log(line);
  fs.writeFileSync(outFile('render-time-10000.txt'), `${line}\n`);
  t.true(load < 15_000, line);
  for (const step of [search, clear, sortName, sortAgain, sortSize, group, scroll]) t.true(step < 1500, line);
  t.deepEqual(b.errors, []);
  assertOnlyOrigin(t, b.requests, srv.url);
});

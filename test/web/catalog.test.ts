/*
 * The web catalog in a real browser (Debian's chromium, headless, through
 * playwright-core) against a real server holding 2,000 generated images:
 * it renders fast, search, filters, sorting and grouping narrow and order
 * it, the image page shows the right sha1, commands, origin chain and
 * fields, it works from the keyboard and on a phone, and the page never
 * requests anything from another host.
 */
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { REPO_ROOT, tmpDir } from '../helpers/images.js';
import { OPERATOR, OPERATOR_AUTH, startServer, type TestServer } from '../helpers/server.js';
import { UI_ASSETS } from '../../src/http/routes/ui.js';
import { request } from '../http/kit.js';
import {
  assertOnlyOrigin, browserTest, catalogReady, counts, drawnRows, openBrowser, outFile, writeCatalog, type Browsing, type CatalogImage,
} from './browser.js';

/* Names that exist inside the page, where the page.evaluate() callbacks run. */
declare const document: any;
declare const window: any;
declare const navigator: any;
declare const sessionStorage: any;
declare const requestAnimationFrame: any;
type HTMLElement = any;

const N = 2000;

/** The files of web/, as paths relative to it, sorted. */
function webFiles(): string[] {
  const dir = path.join(REPO_ROOT, 'web');
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort();
}

/* One server for the whole file: writing and loading 2,000 images once is enough. */
const cleanups: (() => unknown)[] = [];
const hooks = { teardown: (fn: () => unknown) => cleanups.push(fn) } as unknown as ExecutionContext;
let fixture: Promise<{ srv: TestServer; images: CatalogImage[] }> | undefined;
function served() {
  fixture ??= (async () => {
    const root = tmpDir(hooks);
    const images = writeCatalog(root, N);
    const srv = await startServer(hooks, { serveDir: root, config: { loglevel: 'warn' } });
    return { srv, images };
  })();
  return fixture;
}
test.after.always(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

const visible = (images: CatalogImage[]) => images.filter((m) => m.public);
/** The catalog's default order: newest first; unactivated images have no date yet and come last. */
const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
const published = (m: CatalogImage) => (m.state === 'unactivated' ? '' : m.published_at);
const newestFirst = (a: CatalogImage, b: CatalogImage) => {
  const pa = published(a);
  const pb = published(b);
  if (pa !== pb) return pa < pb ? 1 : -1;
  return -(collator.compare(a.name, b.name) || collator.compare(a.version, b.version) || (a.uuid < b.uuid ? -1 : 1));
};

async function openCatalog(t: ExecutionContext, b: Browsing, url: string): Promise<number> {
  const started = Date.now();
  await b.page.goto(`${url}/`);
  await catalogReady(b.page);
  await b.page.waitForSelector('#catalog-table tbody tr.row');
  const elapsed = Date.now() - started;
  t.deepEqual(b.errors, []);
  return elapsed;
}

browserTest(`the catalog of ${N} images renders, fast, drawing only the rows in view`, async (t) => {
  const { srv, images } = await served();
  const b = await openBrowser(t);
  const elapsed = await openCatalog(t, b, srv.url);
  const timing = await b.page.evaluate(() => (window as any).imageServerCatalog);
  const line = `${N} images: ${elapsed} ms from navigation to the first rows drawn `
    + `(fetch ${Math.round(timing.timing.fetchMs)} ms, prepare ${Math.round(timing.timing.prepareMs)} ms, `
    + `filter+sort ${Math.round(timing.timing.filterMs)} ms, draw ${Math.round(timing.timing.renderMs)} ms; `
    + `${timing.drawn} of ${timing.rows} rows in the DOM)`;
  t.log(line);
  fs.writeFileSync('/tmp/web-render-time.txt', `${line}\n`);
  fs.writeFileSync(outFile('render-time.txt'), `${line}\n`);
  t.true(elapsed < 8000, line);

  // Anonymous: every public image, in every state; only a window of rows is drawn.
  const expected = visible(images);
  t.deepEqual(await counts(b.page), { count: expected.length, total: expected.length });
  t.is(timing.rows, expected.length);
  t.true(timing.drawn < 120, `${timing.drawn} rows drawn`);
  const rows = await drawnRows(b.page);
  const newest = [...expected].sort(newestFirst);
  t.deepEqual(rows.slice(0, 5).map((r) => r.uuid), newest.slice(0, 5).map((m) => m.uuid), 'newest first');
  const first = newest[0]!;
  t.like(rows[0], { name: first.name, version: first.version, os: first.os, type: first.type, state: first.state });
  t.regex(await b.page.textContent('#catalog-status') ?? '', new RegExp(`${expected.length.toLocaleString('en-US')} images`));

  await b.page.screenshot({ path: outFile('catalog.png') });
  // The README's picture: the same page, as a small PNG. It lives in git, so
  // it is rewritten only on request (UPDATE_DOCS_SCREENSHOT=1 npm test).
  const top = await b.page.screenshot({ path: outFile('catalog-top.png'), clip: { x: 0, y: 0, width: 1280, height: 640 } });
  t.true(top.length < 300 * 1024, 'the README picture stays small');
  if (process.env.UPDATE_DOCS_SCREENSHOT === '1') {
    fs.mkdirSync(path.join(REPO_ROOT, 'docs'), { recursive: true });
    fs.writeFileSync(path.join(REPO_ROOT, 'docs', 'catalog.png'), top);
  }

  // Scrolling to the end draws the oldest image, still with a small window of rows.
  await b.page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await b.page.waitForFunction((uuid) => document.querySelector(`tr.row[data-uuid="${uuid}"]`) !== null, newest.at(-1)!.uuid);
  t.true((await drawnRows(b.page)).length < 120);
  assertOnlyOrigin(t, b.requests, srv.url);
});

browserTest('search and the os, type and state filters narrow the catalog; grouping shows each name\'s versions', async (t) => {
  const { srv, images } = await served();
  const expected = visible(images);
  const b = await openBrowser(t);
  await openCatalog(t, b, srv.url);
  const { page } = b;
  const settle = () => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));

  await page.fill('#search', 'ubuntu');
  await settle();
  const ubuntu = expected.filter((m) => `${m.name} ${m.description}`.toLowerCase().includes('ubuntu'));
  t.is((await counts(page)).count, ubuntu.length);
  t.true((await drawnRows(page)).every((r) => /ubuntu/i.test(r.name)));

  await page.fill('#search', 'ubuntu 24.04');
  await settle();
  t.is((await counts(page)).count, expected.filter((m) => m.name === 'ubuntu-24.04').length);

  await page.fill('#search', '');
  await page.selectOption('#filter-os', 'bsd');
  await settle();
  const bsd = expected.filter((m) => m.os === 'bsd');
  t.is((await counts(page)).count, bsd.length);
  t.true((await drawnRows(page)).every((r) => r.os === 'bsd'));

  await page.selectOption('#filter-os', '');
  await page.selectOption('#filter-type', 'zvol');
  await page.selectOption('#filter-state', 'disabled');
  await settle();
  const zvolDisabled = expected.filter((m) => m.type === 'zvol' && m.state === 'disabled');
  t.true(zvolDisabled.length > 0);
  t.is((await counts(page)).count, zvolDisabled.length);
  const drawn = (await drawnRows(page)).map((r) => r.uuid);
  t.true(drawn.length > 0 && drawn.every((uuid) => zvolDisabled.some((m) => m.uuid === uuid)));
  t.is(drawn[0], [...zvolDisabled].sort(newestFirst)[0]!.uuid);

  await page.selectOption('#filter-type', '');
  await page.selectOption('#filter-state', '');
  await page.fill('#search', 'no such image anywhere');
  await settle();
  t.is((await counts(page)).count, 0);
  t.true(await page.isVisible('text=No image matches.'));
  await page.fill('#search', '');

  // Grouped by name: one row per name, the newest version on it; a toggle shows the version history.
  await page.check('#group');
  await settle();
  const names = new Set(expected.map((m) => m.name));
  t.is(await page.$$eval('#catalog-table tr.row.group', (rows) => rows.length), names.size);
  t.regex(await page.textContent('#catalog-status') ?? '', new RegExp(`in ${names.size} names`));
  const freebsd = expected.filter((m) => m.name === 'freebsd-14').sort(newestFirst);
  const groupRow = page.locator('tr.row.group[data-group="freebsd-14"]');
  t.is(await groupRow.getAttribute('data-uuid'), freebsd[0]!.uuid, 'the group row shows the newest version');
  await groupRow.locator('button.toggle').click();
  await settle();
  t.is(await groupRow.locator('button.toggle').getAttribute('aria-expanded'), 'true');
  const members = await page.$$eval('tr.row.member', (rows) => rows.map((r) => (r as HTMLElement).dataset.uuid));
  t.true(members.length > 10);
  t.deepEqual(members, freebsd.slice(0, members.length).map((m) => m.uuid), 'the versions of freebsd-14, newest first');
  t.regex(await groupRow.locator('button.toggle').getAttribute('aria-label') ?? '', new RegExp(`the ${freebsd.length} versions of freebsd-14`));
  // The keyboard closes it again (ArrowLeft on the focused toggle).
  await page.keyboard.press('ArrowLeft');
  await settle();
  t.is(await page.$$eval('tr.row.member', (rows) => rows.length), 0);
  await page.uncheck('#group');

  // Sorting: by name, then by name descending, then by size.
  await page.click('th.name button');
  await settle();
  t.is(await page.getAttribute('th.name', 'aria-sort'), 'ascending');
  const byName = (await drawnRows(page)).map((r) => r.name);
  t.is(byName[0], [...names].sort()[0]);
  t.deepEqual(byName, [...byName].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })));
  await page.click('th.name button');
  await settle();
  t.is(await page.getAttribute('th.name', 'aria-sort'), 'descending');
  t.is((await drawnRows(page))[0]!.name, String([...names].sort().at(-1)));
  await page.click('th.version button');
  await settle();
  t.is(await page.getAttribute('th.version', 'aria-sort'), 'ascending');
  t.is((await drawnRows(page))[0]!.version, expected.map((m) => m.version).sort(collator.compare)[0]);
  t.deepEqual(b.errors, []);
  assertOnlyOrigin(t, b.requests, srv.url);
});

browserTest('the image page shows every field, the sha1, the download link, the origin chain and the imgadm commands', async (t) => {
  const { srv, images } = await served();
  const b = await openBrowser(t);
  await b.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.url });
  await openCatalog(t, b, srv.url);
  const { page } = b;
  const chained = images.filter((m) => m.origin);
  const top = chained.find((m) => !chained.some((c) => c.origin === m.uuid))!;
  const middle = images.find((m) => m.uuid === top.origin)!;
  const bottom = images.find((m) => m.uuid === middle.origin)!;

  // From the catalog: search the uuid and follow the row's link.
  await page.fill('#search', top.uuid);
  await page.click(`tr.row[data-uuid="${top.uuid}"] a`);
  await page.waitForSelector('#image-sha1');
  t.is(new URL(page.url()).hash, `#/image/${top.uuid}`);
  t.is((await page.textContent('#image-sha1'))?.trim(), top.sha1);
  t.is(await page.inputValue('#cmd-import'), `imgadm import ${top.uuid}`);
  t.is(await page.inputValue('#cmd-sources'), `imgadm sources -a ${srv.url}`);
  t.regex(await page.textContent('#image-title') ?? '', new RegExp(`${top.name}\\s+${top.version.replaceAll('.', '\\.')}`));
  t.is(await page.getAttribute('#download-link', 'href'), `images/${top.uuid}/file`);
  const download = await request(`${srv.url}/images/${top.uuid}/file`);
  t.is(download.status, 200);

  // Every field the API returns is on the page.
  const manifest = JSON.parse((await request(`${srv.url}/images/${top.uuid}`)).body.toString('utf8'));
  const shownFields = await page.$$eval('#manifest-fields tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.field));
  t.deepEqual(shownFields, Object.keys(manifest));
  t.deepEqual(JSON.parse(await page.textContent('#manifest-json') ?? ''), manifest);

  // The origin chain: this image, its origin, the origin's origin.
  await page.waitForFunction(() => document.querySelectorAll('#origin-chain li').length === 3);
  const chain = await page.$$eval('#origin-chain li', (items) => items.map((li) => li.textContent ?? ''));
  t.regex(chain[0]!, /this image/);
  t.regex(chain[1]!, new RegExp(middle.version.replaceAll('.', '\\.')));
  t.regex(chain[2]!, new RegExp(bottom.version.replaceAll('.', '\\.')));
  // The version history of the name, newest first, this image marked.
  const versions = await page.$$eval('#version-history li', (items) => items.map((li) => li.textContent ?? ''));
  t.is(versions.length, images.filter((m) => m.public && m.name === top.name).length);
  t.regex(versions.find((v) => v.includes('this image')) ?? '', new RegExp(top.version.replaceAll('.', '\\.')));

  // Copy to clipboard.
  await page.click('button[data-copy="cmd-import"]');
  await page.waitForSelector('text=Copied');
  t.is(await page.evaluate(() => navigator.clipboard.readText()), `imgadm import ${top.uuid}`);
  await page.screenshot({ path: outFile('image.png'), fullPage: true });

  // The origin's link leads to the origin's page; Escape goes back to the catalog.
  await page.click(`#origin-chain a[href="#/image/${middle.uuid}"]`);
  await page.waitForFunction((sha) => document.querySelector('#image-sha1')?.textContent?.trim() === sha
    && document.querySelector('#cmd-import') !== null, middle.sha1);
  t.is(await page.inputValue('#cmd-import'), `imgadm import ${middle.uuid}`);
  t.regex(await page.textContent('#dependents') ?? '', new RegExp(top.version.replaceAll('.', '\\.')));
  await page.keyboard.press('Escape');
  await page.waitForSelector('#catalog-view:not([hidden])');

  // An unknown or private image says so.
  const hidden = images.find((m) => !m.public)!;
  await page.goto(`${srv.url}/#/image/${hidden.uuid}`);
  await page.waitForSelector('text=Image not found');
  t.regex(await page.textContent('#image-view') ?? '', /signed-in users only/);
  t.deepEqual(b.errors, []);
  assertOnlyOrigin(t, b.requests, srv.url);
});

browserTest('the keyboard does it all: / to search, arrows between rows, Enter to open, Escape to come back', async (t) => {
  const { srv, images } = await served();
  const b = await openBrowser(t);
  await openCatalog(t, b, srv.url);
  const { page } = b;
  const newest = visible(images).sort(newestFirst);

  await page.keyboard.press('/');
  t.is(await page.evaluate(() => document.activeElement?.id), 'search');
  await page.keyboard.type('base-64-lts');
  await page.keyboard.press('Escape');
  t.is(await page.inputValue('#search'), '');
  t.is((await counts(page)).count, newest.length);

  // Tab order: search, the filters, then the column headers and the first row's link.
  const order: string[] = [];
  for (let i = 0; i < 13; i += 1) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      return el.id || el.dataset.sort || el.getAttribute('href') || el.tagName;
    }));
  }
  t.deepEqual(order.slice(0, 4), ['filter-os', 'filter-type', 'filter-state', 'group']);
  t.deepEqual(order.slice(4, 12), ['name', 'version', 'os', 'type', 'size', 'published', 'state', 'desc']);
  t.is(order[12], `#/image/${newest[0]!.uuid}`);

  // Down arrow 40 times: rows beyond the first window are drawn and focused.
  for (let i = 0; i < 40; i += 1) await page.keyboard.press('ArrowDown');
  t.is(await page.evaluate(() => document.activeElement?.getAttribute('href')), `#/image/${newest[40]!.uuid}`);
  await page.keyboard.press('ArrowUp');
  t.is(await page.evaluate(() => document.activeElement?.getAttribute('href')), `#/image/${newest[39]!.uuid}`);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#image-sha1');
  t.is(await page.evaluate(() => document.activeElement?.id), 'image-title');
  t.is(await page.inputValue('#cmd-import'), `imgadm import ${newest[39]!.uuid}`);
  await page.keyboard.press('Escape');
  await page.waitForSelector('#catalog-view:not([hidden])');
  t.is(await page.evaluate(() => document.activeElement?.getAttribute('href')), `#/image/${newest[39]!.uuid}`,
    'back in the catalog, focus is on the row we left');

  // The sign-in dialog: labelled fields, Escape closes it and gives focus back.
  await page.focus('#signin-button');
  await page.keyboard.press('Enter');
  t.is(await page.evaluate(() => document.activeElement?.id), 'signin-user');
  t.is(await page.evaluate(() => (document.querySelector('label[for="signin-user"]')?.textContent ?? '').trim()), 'User name');
  await page.keyboard.press('Escape');
  t.false(await page.isVisible('#signin-dialog'));
  t.is(await page.evaluate(() => document.activeElement?.id), 'signin-button');
  t.deepEqual(b.errors, []);
  assertOnlyOrigin(t, b.requests, srv.url);
});

browserTest('signing in shows private images too; a wrong password is said next to the field, with no browser prompt', async (t) => {
  const { srv, images } = await served();
  const b = await openBrowser(t);
  await openCatalog(t, b, srv.url);
  const { page } = b;
  const responses: { url: string; status: number; challenge: string | undefined }[] = [];
  page.on('response', (r) => responses.push({ url: r.url(), status: r.status(), challenge: r.headers()['www-authenticate'] }));

  await page.click('#signin-button');
  await page.fill('#signin-user', OPERATOR.user);
  await page.fill('#signin-password', 'not the password');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#signin-password-error');
  t.regex(await page.textContent('#signin-password-error') ?? '', /not accepted/);
  t.is(await page.getAttribute('#signin-password', 'aria-invalid'), 'true');
  const refused = responses.find((r) => r.status === 401);
  t.truthy(refused);
  t.is(refused?.challenge, undefined, 'no WWW-Authenticate: the browser shows no login prompt of its own');

  await page.fill('#signin-password', OPERATOR.password);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#who:not([hidden])');
  t.is((await page.textContent('#who'))?.trim(), `Signed in as ${OPERATOR.user}`);
  await page.waitForFunction((n) => document.querySelector('#catalog-status')?.getAttribute('data-total') === String(n), images.length);
  t.deepEqual(await counts(page), { count: images.length, total: images.length });
  const priv = images.find((m) => !m.public)!;
  await page.fill('#search', priv.uuid);
  t.true(await page.isVisible(`tr.row[data-uuid="${priv.uuid}"] .private`));

  // Credentials live in this tab's sessionStorage only: no cookie, and a new tab starts signed out.
  t.deepEqual(await b.context.cookies(), []);
  t.truthy(await page.evaluate(() => sessionStorage.getItem('smartos-image-server.auth')));
  const other = await b.context.newPage();
  await other.goto(`${srv.url}/`);
  await catalogReady(other);
  t.true(await other.isVisible('#signin-button'));
  await other.close();

  // After a reload, still signed in (same tab); signing out drops the private images.
  await page.reload();
  await catalogReady(page);
  t.is((await counts(page)).total, images.length);
  await page.click('#signout-button');
  await page.waitForFunction((n) => document.querySelector('#catalog-status')?.getAttribute('data-total') === String(n), visible(images).length);
  t.is(await page.evaluate(() => sessionStorage.getItem('smartos-image-server.auth')), null);
  t.deepEqual(b.errors, []);
  assertOnlyOrigin(t, b.requests, srv.url);
});

browserTest('on a phone the catalog and the image page fit the screen', async (t) => {
  const { srv, images } = await served();
  const b = await openBrowser(t, { viewport: { width: 390, height: 844 } });
  await openCatalog(t, b, srv.url);
  const { page } = b;
  const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  t.true(await fits(), 'no sideways scrolling');
  t.true(await page.isVisible('#catalog-table tbody tr.row td.name'));
  t.false(await page.isVisible('#catalog-table tbody tr.row td.desc'));
  await page.screenshot({ path: outFile('catalog-phone.png') });
  const one = visible(images)[0]!;
  await page.goto(`${srv.url}/#/image/${one.uuid}`);
  await page.waitForSelector('#image-sha1');
  t.true(await fits(), 'no sideways scrolling on the image page');
  await page.screenshot({ path: outFile('image-phone.png'), fullPage: true });
  t.deepEqual(b.errors, []);
  assertOnlyOrigin(t, b.requests, srv.url);
});

test('the page and its modules: content types, caching under one release hash, a CSP that allows this server only; JSON clients still get JSON', async (t) => {
  const { srv } = await served();
  const page = await request(`${srv.url}/`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  t.is(page.status, 200);
  t.regex(String(page.headers['content-type']), /^text\/html; charset=utf-8/);
  t.is(page.headers['cache-control'], 'no-cache');
  const csp = String(page.headers['content-security-policy']);
  t.regex(csp, /default-src 'none'/);
  t.regex(csp, /connect-src 'self'/);
  t.regex(csp, /script-src 'self'(;|$)/, 'modules from this server only, no inline script');
  t.notRegex(csp, /https?:|\*/, 'no other host is allowed');
  t.is(page.headers['x-frame-options'], 'DENY');
  const html = page.body.toString('utf8');
  t.notRegex(html, /\{\{/, 'every placeholder is filled');
  t.regex(html, new RegExp(`content="${srv.url}"`));
  t.notRegex(html, /(src|href)="(https?:)?\/\//, 'no absolute URL to load anything from');
  const again = await request(`${srv.url}/`, { headers: { accept: 'text/html', 'if-none-match': String(page.headers.etag) } });
  t.is(again.status, 304);

  // The page links its script, style and icon under one release hash.
  const linked = [...html.matchAll(/(?:src|href)="(ui\/[^"]+)"/g)].map((m) => m[1]!);
  const releases = new Set(linked.map((a) => a.split('/')[1]));
  t.is(releases.size, 1, 'one release hash for every file');
  const release = [...releases][0]!;
  t.regex(release, /^[0-9a-f]{16}$/);
  t.deepEqual([...new Set(linked.map((a) => a.split('/').slice(2).join('/')))].sort(), ['app.css', 'icon.svg', 'main.js']);
  t.regex(html, new RegExp(`<script type="module" src="ui/${release}/main.js"></script>`));
  t.notRegex(html, /<script(?![^>]*type="module")/, 'no classic script');

  // Every file in web/ but the page itself is served under that release, and nothing else is.
  const onDisk = webFiles().filter((f) => f !== 'index.html');
  t.deepEqual(onDisk, [...UI_ASSETS].sort(), 'UI_ASSETS names every file of web/');
  const types: Record<string, RegExp> = { js: /^text\/javascript; charset=utf-8$/, css: /^text\/css; charset=utf-8$/, svg: /^image\/svg\+xml/ };
  for (const name of onDisk) {
    const asset = `ui/${release}/${name}`;
    const res = await request(`${srv.url}/${asset}`);
    t.is(res.status, 200, asset);
    t.regex(String(res.headers['content-type']), types[name.split('.').pop()!]!, asset);
    t.is(res.headers['cache-control'], 'public, max-age=31536000, immutable', asset);
    t.is(res.headers['x-content-type-options'], 'nosniff');
    const file = fs.readFileSync(path.join(REPO_ROOT, 'web', name));
    t.deepEqual(res.body, file, `${asset}: the file as it is on disk`);
    const stale = await request(`${srv.url}/ui/0123456789abcdef/${name}`);
    t.is(stale.status, 200, `${name} under another release`);
    t.deepEqual(stale.body, file);
    t.is(stale.headers['cache-control'], 'no-cache', 'under another release: revalidate');
    const revalidated = await request(`${srv.url}/ui/0123456789abcdef/${name}`, { headers: { 'if-none-match': String(stale.headers.etag) } });
    t.is(revalidated.status, 304);
    const head = await request(`${srv.url}/${asset}`, { method: 'HEAD' });
    t.is(head.status, 200);
    t.is(head.headers['content-length'], String(file.length));
  }
  // Each module imports only files served beside it, by a relative URL under the same release.
  for (const name of onDisk.filter((f) => f.endsWith('.js'))) {
    const js = fs.readFileSync(path.join(REPO_ROOT, 'web', name), 'utf8');
    for (const [, spec] of js.matchAll(/^import [^'"]*'([^']+)';$/gm)) {
      t.regex(spec!, /^\.\.?\//, `${name} imports ${spec} relatively`);
      const target = path.posix.join(path.posix.dirname(name), spec!);
      t.true(onDisk.includes(target), `${name} imports ${target}, which is served`);
    }
  }
  for (const missing of ['/ui/index.html', `/ui/${release}/index.html`, `/ui/${release}/..%2fpackage.json`, `/ui/${release}/nope.js`,
    `/ui/${release}/views/main.js`, `/ui/${release}/views`, '/ui/app.js', '/ui/']) {
    t.is((await request(`${srv.url}${missing}`)).status, 404, missing);
  }
  // The page's scripts use no eval, no inline handlers and no foreign URL.
  for (const name of onDisk.filter((f) => f.endsWith('.js'))) {
    const js = fs.readFileSync(path.join(REPO_ROOT, 'web', name), 'utf8');
    t.notRegex(js, /\beval\(|new Function|innerHTML|https?:\/\//, name);
  }
  const css = fs.readFileSync(path.join(REPO_ROOT, 'web', 'app.css'), 'utf8');
  t.notRegex(css, /@import|url\(|@font-face/);

  const json = await request(`${srv.url}/`, { headers: { accept: 'application/json' } });
  t.regex(String(json.headers['content-type']), /^application\/json/);
  t.is(JSON.parse(json.body.toString('utf8')).name, 'smartos-image-server');
  const plain = await request(`${srv.url}/`);
  t.regex(String(plain.headers['content-type']), /^application\/json/, 'no Accept: JSON, as before');
  const signedIn = await request(`${srv.url}/`, { headers: { accept: 'text/html', authorization: OPERATOR_AUTH } });
  t.is(signedIn.status, 200);
});

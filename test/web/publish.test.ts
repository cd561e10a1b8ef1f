/*
 * Publishing from the web catalog, in a real browser: sign in, upload a
 * 50 MB image through the form with a progress bar, find it in the catalog
 * and through sdc-clients' IMGAPI client, disable and delete it behind a
 * confirmation; a refused upload shows the API's field error next to the
 * field; and another site's page can never write, not even with
 * credentials the browser remembers.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import test from 'ava';
import type { Page } from 'playwright-core';
import { sha1, tmpDir } from '../helpers/images.js';
import { IMGAPI, noopLog, p, type ImgapiClient, type Manifest } from '../helpers/legacy-clients.js';
import { OPERATOR, OPERATOR_AUTH, startServer, type TestServer } from '../helpers/server.js';
import { call, parse } from '../publish/kit.js';
import {
  assertOnlyOrigin, browserTest, counts, openBrowser, outFile, signIn, writeCatalog, type Browsing, type CatalogImage,
} from './browser.js';

/* Names that exist inside the page, where the page.evaluate() callbacks run. */
declare const document: any;
declare const window: any;
declare const MutationObserver: any;

const MB50 = 50 * 1024 * 1024;

async function publishingServer(t: ExecutionContext, config: Record<string, unknown> = {}): Promise<{ srv: TestServer; images: CatalogImage[] }> {
  const root = tmpDir(t);
  const images = writeCatalog(root, 60);
  const srv = await startServer(t, { serveDir: root, config: { loglevel: 'info', ...config } });
  return { srv, images };
}

function imgapi(t: ExecutionContext, url: string): ImgapiClient {
  const client = new IMGAPI({ url, log: noopLog, retry: false, agent: false });
  t.teardown(() => client.close());
  return client;
}

/** A file of `size` random bytes that sniffs as an uncompressed stream. */
function imageFile(t: ExecutionContext, size: number, name = 'webtest.zfs'): { file: string; sha1: string } {
  const bytes = randomBytes(size);
  bytes.fill(0, 0, 16); // no gzip, bzip2 or xz magic by chance
  const file = path.join(tmpDir(t), name);
  fs.writeFileSync(file, bytes);
  return { file, sha1: sha1(bytes) };
}

/** Fills the upload form's own fields. */
async function fillForm(b: Browsing, fields: { name: string; version: string; description?: string; file: string }): Promise<void> {
  const { page } = b;
  await page.click('#upload-link');
  await page.waitForSelector('#upload-form:not([hidden])');
  t0Focus = await page.evaluate(() => document.activeElement?.id);
  await page.fill('#up-name', fields.name);
  await page.fill('#up-version', fields.version);
  await page.selectOption('#up-os', 'smartos');
  await page.selectOption('#up-type', 'zone-dataset');
  await page.fill('#up-description', fields.description ?? 'uploaded from the web catalog');
  await page.setInputFiles('#up-file', fields.file);
}
let t0Focus: string | undefined;

browserTest('a 50 MB upload through the form shows its progress; the image is then in the catalog and in IMGAPI; disable and delete ask first', async (t) => {
  const { srv } = await publishingServer(t);
  const b = await openBrowser(t);
  const { page } = b;
  const { file, sha1: fileSha1 } = imageFile(t, MB50);
  await signIn(b, srv.url);
  const before = (await counts(page)).total;
  await fillForm(b, { name: 'webtest', version: '1.2.3', file });
  t.is(t0Focus, 'upload-title', 'the form\'s heading takes the focus');

  // Record every text the progress line shows while the upload runs.
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as any).progressSeen = seen;
    const text = document.querySelector('#upload-progress-text');
    new MutationObserver(() => seen.push(text.textContent)).observe(text, { childList: true, characterData: true, subtree: true });
  });
  await page.screenshot({ path: outFile('upload.png'), fullPage: true });
  const started = Date.now();
  await page.click('#up-submit');
  await page.waitForSelector('#upload-done', { timeout: 60_000 });
  const took = Date.now() - started;
  const seen: string[] = await page.evaluate(() => (window as any).progressSeen);
  const percents = seen.map((s) => Number(/\((\d+)%\)/.exec(s)?.[1] ?? NaN)).filter((n) => !Number.isNaN(n));
  t.log(`50 MB upload through the form: ${took} ms; progress shown: ${percents.join(', ')} %`);
  t.true(percents.some((n) => n > 0 && n < 100), `an intermediate progress was shown: ${seen.join(' | ')}`);
  t.is(percents.at(-1), 100);
  t.regex(seen.at(-1) ?? '', /50 MiB of 50 MiB/);
  t.deepEqual([...percents].sort((x, y) => x - y), percents, 'progress only goes up');
  const done = (await page.textContent('#upload-done')) ?? '';
  t.regex(done, /Published webtest 1\.2\.3 \(active\)/);
  t.is(await page.evaluate(() => document.activeElement?.id), 'upload-done-link');

  // Through the IMGAPI client imgadm is built on.
  const client = imgapi(t, srv.url);
  const [listed] = await p<Manifest[]>((cb) => client.listImages({ name: 'webtest' }, cb));
  t.is(listed.length, 1);
  const uuid = listed[0]!.uuid;
  const [image] = await p<Manifest>((cb) => client.getImage(uuid, cb));
  t.like(image, { name: 'webtest', version: '1.2.3', state: 'active', os: 'smartos', type: 'zone-dataset', description: 'uploaded from the web catalog' });
  t.like((image.files as unknown[])[0], { sha1: fileSha1, size: MB50, compression: 'none' });

  // In the catalog: one more image, found by name.
  await page.click('#upload-done-link');
  await page.waitForSelector('#image-sha1');
  t.is((await page.textContent('#image-sha1'))?.trim(), fileSha1);
  await page.click('#back-to-catalog');
  await page.waitForFunction((n) => document.querySelector('#catalog-status')?.getAttribute('data-total') === String(n), before + 1);
  await page.fill('#search', 'webtest');
  await page.waitForSelector(`tr.row[data-uuid="${uuid}"]`);
  t.is((await counts(page)).count, 1);

  // Disable: a confirmation first; Escape cancels it, confirming does it.
  await page.click(`tr.row[data-uuid="${uuid}"] a`);
  await page.waitForSelector('#action-disable');
  await page.click('#action-disable');
  await page.waitForSelector('#confirm-dialog');
  t.regex(await page.textContent('#confirm-title') ?? '', /Disable webtest 1\.2\.3\?/);
  await page.keyboard.press('Escape');
  t.false(await page.isVisible('#confirm-dialog'));
  t.is(await page.evaluate(() => document.activeElement?.id), 'action-disable');
  t.is((await p<Manifest>((cb) => client.getImage(uuid, cb)))[0].state, 'active', 'Escape did nothing');
  await page.click('#action-disable');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => document.querySelector('#image-state')?.textContent === 'disabled');
  t.like((await p<Manifest>((cb) => client.getImage(uuid, cb)))[0], { state: 'disabled', disabled: true });
  t.true(await page.isVisible('#action-enable'));

  // Delete: the dialog starts on Cancel; Enter there keeps the image.
  await page.click('#action-delete');
  await page.waitForSelector('#confirm-dialog');
  t.is(await page.evaluate(() => document.activeElement?.textContent), 'Cancel');
  await page.keyboard.press('Enter');
  t.false(await page.isVisible('#confirm-dialog'));
  t.is((await call(srv.url, 'GET', `/images/${uuid}`, { auth: OPERATOR_AUTH })).status, 200);
  await page.click('#action-delete');
  await page.click('#confirm-ok');
  await page.waitForSelector('#catalog-view:not([hidden])');
  t.is((await call(srv.url, 'GET', `/images/${uuid}`, { auth: OPERATOR_AUTH })).status, 404);
  await page.waitForFunction((n) => document.querySelector('#catalog-status')?.getAttribute('data-total') === String(n), before);
  t.deepEqual(b.errors, []);
  assertOnlyOrigin(t, b.requests, srv.url);
});

browserTest('a refused upload shows the API\'s error in words next to the field that caused it', async (t) => {
  const { srv, images } = await publishingServer(t);
  const b = await openBrowser(t);
  const { page } = b;
  const small = imageFile(t, 64 * 1024, 'small.zfs');
  await signIn(b, srv.url);
  const stored = srv.store.list().length;

  // A bad version string: ValidationFailed, field "version".
  await fillForm(b, { name: 'webtest', version: '1.0 beta!', file: small.file });
  await page.click('#up-submit');
  await page.waitForSelector('#up-version-error');
  const words = (await page.textContent('#up-version-error')) ?? '';
  t.regex(words, /version has invalid characters/);
  t.is(await page.getAttribute('#up-version', 'aria-invalid'), 'true');
  t.regex(await page.getAttribute('#up-version', 'aria-describedby') ?? '', /up-version-error/);
  t.is(await page.evaluate(() => document.activeElement?.id), 'up-version', 'the field with the error has the focus');
  t.true(await page.evaluate(() => {
    const error = document.querySelector('#up-version-error');
    return error.parentElement === document.querySelector('#up-version').closest('.f');
  }), 'the message sits with its field');
  t.regex(await page.textContent('#upload-form-summary') ?? '', /ValidationFailed|invalid image data: version/);
  t.is(await page.$$eval('.field-error', (els) => els.length), 1, 'no other field is blamed');
  await page.screenshot({ path: outFile('upload-error.png'), fullPage: true });

  // The same with a 50 MB file: the server refuses at the manifest, before the file is read.
  const big = imageFile(t, MB50);
  await page.setInputFiles('#up-file', big.file);
  await page.fill('#up-version', '2.0 again!');
  await page.click('#up-submit');
  await page.waitForFunction(() => /invalid characters/.test(document.querySelector('#up-version-error')?.textContent ?? ''));
  t.pass('the 50 MB refusal arrives too');

  // Correcting the field clears the error on the next try; a uuid in use is blamed on the UUID field.
  await page.fill('#up-version', '1.0.0');
  await page.setInputFiles('#up-file', small.file);
  await page.fill('#up-uuid', images[0]!.uuid);
  await page.click('#up-submit');
  await page.waitForSelector('#up-uuid-error');
  t.false(await page.isVisible('#up-version-error'));
  t.regex(await page.textContent('#up-uuid-error') ?? '', new RegExp(images[0]!.uuid));
  t.is(await page.getAttribute('#up-version', 'aria-invalid'), null);

  // A bad "More fields" JSON is caught before anything is sent.
  await page.fill('#up-uuid', '');
  await page.fill('#up-extra', '{"requirements": ');
  await page.click('#up-submit');
  await page.waitForSelector('#up-extra-error');
  t.regex(await page.textContent('#up-extra-error') ?? '', /not a JSON object/);
  // And a field the form has no input for is shown next to "More fields".
  await page.fill('#up-extra', '{"requirements": {"brand": 5}}');
  await page.click('#up-submit');
  await page.waitForSelector('#up-extra-error');
  t.regex(await page.textContent('#up-extra-error') ?? '', /brand/);

  t.is(srv.store.list().length, stored, 'nothing was stored');
  t.deepEqual(b.errors, []);
  assertOnlyOrigin(t, b.requests, srv.url);
});

browserTest('another site\'s page cannot write, even with Basic credentials the browser remembers', async (t) => {
  // read_auth: the browser meets a Basic challenge and remembers what it answered.
  const { srv, images } = await publishingServer(t, { read_auth: true });
  const b = await openBrowser(t, { httpCredentials: { username: OPERATOR.user, password: OPERATOR.password } });
  const { page } = b;
  const victim = images.find((m) => m.state === 'active')!;
  const state = async () => parse((await call(srv.url, 'GET', `/images/${victim.uuid}`, { auth: OPERATOR_AUTH }))).state;
  await page.goto(`${srv.url}/openapi.json`);
  await page.goto(`${srv.url}/images?state=all`);
  t.is(await page.evaluate(() => JSON.parse(document.body.innerText).length), images.length, 'the browser is signed in by HTTP Basic');

  const ATTACKER = 'http://attacker.test';
  await page.route(`${ATTACKER}/**`, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>hi</title><p>hello</p>' }));
  await page.goto(`${ATTACKER}/`);
  const target = `${srv.url}/images/${victim.uuid}?action=disable`;
  // A form POST: the classic cross-site request forgery.
  await postForm(page, target);
  await page.waitForURL((u) => u.pathname === `/images/${victim.uuid}`);
  t.regex(await page.textContent('body') ?? '', /CrossSiteWrite/);
  t.is(await state(), 'active');
  // fetch() without a preflight, with the browser's credentials; and DELETE, which needs a preflight CORS refuses.
  await page.goto(`${ATTACKER}/`);
  const tried = await page.evaluate(async ([url, del]) => {
    const simple = await fetch(url, { method: 'POST', mode: 'no-cors', credentials: 'include' }).then(() => 'sent', (e) => String(e));
    const remove = await fetch(del, { method: 'DELETE', credentials: 'include' }).then((r) => `status ${r.status}`, () => 'blocked');
    return { simple, remove };
  }, [target, `${srv.url}/images/${victim.uuid}`] as const);
  t.is(tried.remove, 'blocked');
  t.is(await state(), 'active', `no-cors POST (${tried.simple}) did nothing`);
  t.is((await call(srv.url, 'GET', `/images/${victim.uuid}`, { auth: OPERATOR_AUTH })).status, 200, 'DELETE never ran');
  // (chromium may stop the fetch itself, as a public page's request to a loopback address)
  const refused = srv.logs.filter((r) => r.audit && r.method === 'POST' && r.path === `/images/${victim.uuid}`);
  t.true(refused.length >= 1 && refused.every((r) => r.status === 403), 'what reached the server was refused');
  t.log(`cross-site form POST: 403 CrossSiteWrite; no-cors fetch: ${tried.simple}; DELETE: ${tried.remove}`);

  // The control: the same form from the server's own origin does write, so the browser did send its credentials.
  await page.goto(`${srv.url}/openapi.json`);
  await postForm(page, target);
  await page.waitForURL((u) => u.pathname === `/images/${victim.uuid}`);
  t.regex(await page.textContent('body') ?? '', /"state":"disabled"/);
  t.is(await state(), 'disabled');
});


/** Submits an empty form POST to `action` from whatever page is open: what a CSRF attack does. */
async function postForm(page: Page, action: string): Promise<void> {
  await page.evaluate((url) => {
    const form = document.createElement('form');
    form.method = 'POST';
    form.action = url;
    document.body.append(form);
    form.submit();
  }, action);
}

test('cross-site writes are refused by the headers browsers send; the catalog\'s requests get no Basic challenge', async (t) => {
  const { srv, images } = await publishingServer(t);
  const uuid = images.find((m) => m.state === 'active')!.uuid;
  const enable = `/images/${uuid}?action=enable`;
  const foreign: Record<string, string>[] = [{ 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' },
    { origin: 'http://attacker.test' }, { origin: 'null' }];
  for (const headers of foreign) {
    const res = await call(srv.url, 'POST', enable, { auth: OPERATOR_AUTH, headers });
    t.is(res.status, 403, JSON.stringify(headers));
    t.is(parse(res).code, 'CrossSiteWrite');
  }
  const del = await call(srv.url, 'DELETE', `/images/${uuid}`, { auth: OPERATOR_AUTH, headers: { 'sec-fetch-site': 'cross-site' } });
  t.is(del.status, 403);
  const host = new URL(srv.url).host;
  const own: Record<string, string>[] = [{}, { 'sec-fetch-site': 'same-origin' }, { origin: srv.url }, { origin: `http://${host}` }];
  for (const headers of own) {
    t.is((await call(srv.url, 'POST', enable, { auth: OPERATOR_AUTH, headers })).status, 200, JSON.stringify(headers));
  }
  // Reads stay open to every site (CORS), writes are not offered cross-origin.
  const read = await call(srv.url, 'GET', '/images', { auth: null, headers: { 'sec-fetch-site': 'cross-site', origin: 'http://attacker.test' } });
  t.is(read.status, 200);
  t.is(read.headers['access-control-allow-origin'], '*');
  t.notRegex(String(read.headers['access-control-allow-methods']), /POST|PUT|DELETE/);
  t.notRegex(String(read.headers['access-control-allow-headers']), /authorization/i);

  const wrong = `Basic ${Buffer.from('operator:wrong').toString('base64')}`;
  const plain = await call(srv.url, 'GET', '/ping', { auth: wrong });
  t.is(plain.status, 401);
  t.regex(String(plain.headers['www-authenticate']), /^Basic /, 'other clients still get the challenge');
  const fromPage = await call(srv.url, 'GET', '/ping', { auth: wrong, headers: { 'x-requested-with': 'XMLHttpRequest' } });
  t.is(fromPage.status, 401);
  t.is(fromPage.headers['www-authenticate'], undefined);
  const anonymousWrite = await call(srv.url, 'POST', `/images/${randomUUID()}?action=disable`, { auth: null, headers: { 'x-requested-with': 'XMLHttpRequest' } });
  t.is(anonymousWrite.status, 401);
  t.is(anonymousWrite.headers['www-authenticate'], undefined);
});

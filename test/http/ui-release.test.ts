/*
 * The catalog's files after an upgrade: one release hash names them all,
 * so a change to any one module moves every URL the page links and every
 * module imports, and a browser can never put a page together from two
 * releases' modules in its cache. A request under an old release still
 * gets the current file, but not for keeps.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import Router from '@koa/router';
import test, { type ExecutionContext } from 'ava';
import Koa from 'koa';
import { mountUi } from '../../src/http/routes/ui.js';
import { REPO_ROOT, tmpDir } from '../helpers/images.js';
import { request } from './kit.js';

/** A server of the catalog's files from `dir` (a copy of web/, as an install would have it). */
async function serveUi(t: ExecutionContext, dir: string) {
  const router = new Router();
  const page = mountUi(router, { version: 'test', dir: pathToFileURL(`${dir}/`) });
  const app = new Koa();
  app.use(router.routes());
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const html = page.html('http://images.example');
  const release = /src="ui\/([0-9a-f]{16})\/main\.js"/.exec(html)?.[1];
  if (!release) throw new Error(`no module script in ${html}`);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, html, release };
}

function copyOfWeb(t: ExecutionContext): string {
  const dir = tmpDir(t);
  fs.cpSync(path.join(REPO_ROOT, 'web'), dir, { recursive: true });
  return dir;
}

test('a change to one module moves every file to a new release; the old release is served, revalidated', async (t) => {
  const dir = copyOfWeb(t);
  const before = await serveUi(t, dir);
  t.is((await serveUi(t, dir)).release, before.release, 'the same files, the same release');
  const cached = await request(`${before.url}/ui/${before.release}/dom.js`);
  t.is(cached.headers['cache-control'], 'public, max-age=31536000, immutable');

  fs.appendFileSync(path.join(dir, 'views', 'image.js'), '// the next release\n');
  const after = await serveUi(t, dir);
  t.not(after.release, before.release, 'a view changed: a new release');
  t.false(after.html.includes(before.release), 'the page links nothing of the old release');
  const dom = await request(`${after.url}/ui/${after.release}/dom.js`);
  t.is(dom.headers['cache-control'], 'public, max-age=31536000, immutable');
  t.deepEqual(dom.body, cached.body, 'dom.js did not change, yet its URL did: it cannot be mixed with the old views');
  t.is(dom.headers.etag, cached.headers.etag, 'the same bytes revalidate by ETag');

  const view = await request(`${after.url}/ui/${before.release}/views/image.js`);
  t.is(view.status, 200, "an old page's request still gets the file");
  t.true(view.body.toString('utf8').endsWith('// the next release\n'), 'the current one');
  t.is(view.headers['cache-control'], 'no-cache', 'and only until the next request');
});

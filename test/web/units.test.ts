/*
 * The web catalog's pure modules, unit-tested in Node: size and number
 * formatting, the table's orders, search and route parsing, and the
 * wording and placing of the API's errors. They are imported from web/
 * as the browser gets them (no build step), by a file URL from the
 * repository root, since this test runs from dist/test/web/.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import test from 'ava';
import { UI_ASSETS } from '../../src/http/routes/ui.js';
import { REPO_ROOT } from '../helpers/images.js';

const web = (name: string): Promise<any> => import(pathToFileURL(path.join(REPO_ROOT, 'web', name)).href);

const [format, query, records, errors, api] = await Promise.all(
  ['format.js', 'query.js', 'records.js', 'errors.js', 'api.js'].map(web),
);

const UUIDS = ['0a4d2f8e-5d6b-4c1e-9f3a-1b2c3d4e5f60', '1b4d2f8e-5d6b-4c1e-9f3a-1b2c3d4e5f61', '2c4d2f8e-5d6b-4c1e-9f3a-1b2c3d4e5f62'];

function manifest(fields: Record<string, unknown>): Record<string, unknown> {
  return { uuid: UUIDS[0], name: 'base-64', version: '1.0.0', os: 'smartos', type: 'zone-dataset', state: 'active',
    published_at: '2024-01-01T00:00:00.000Z', files: [{ size: 1000, sha1: 'x', compression: 'gzip' }], ...fields };
}

test('every module but main.js loads without a page: none touches document or window when imported', async (t) => {
  t.is(typeof (globalThis as any).document, 'undefined');
  t.is(typeof (globalThis as any).window, 'undefined');
  for (const name of UI_ASSETS.filter((f) => f.endsWith('.js') && f !== 'main.js')) {
    await t.notThrowsAsync(web(name), name);
  }
  await t.throwsAsync(web('main.js'), { message: /document|window|sessionStorage/ }, 'main.js does start the page');
});

test('humanSize: binary units, one decimal below 10, a dash for no size', (t) => {
  const cases: [unknown, string][] = [
    [0, '0 B'], [1, '1 B'], [1023, '1023 B'], [1024, '1.0 KiB'], [1536, '1.5 KiB'], [10 * 1024 - 1, '10.0 KiB'],
    [10 * 1024, '10 KiB'], [1000 * 1024, '1000 KiB'], [1024 ** 2, '1.0 MiB'], [312475648, '298 MiB'],
    [5.5 * 1024 ** 3, '5.5 GiB'], [2 * 1024 ** 4, '2.0 TiB'], [3 * 1024 ** 5, '3.0 PiB'], [2048 * 1024 ** 5, '2048 PiB'],
    [-1, '—'], [Number.NaN, '—'], [Number.POSITIVE_INFINITY, '—'], ['1024', '—'], [undefined, '—'], [null, '—'],
  ];
  for (const [n, want] of cases) t.is(format.humanSize(n), want, String(n));
});

test('numbers, plurals and dates', (t) => {
  t.is(format.fmt(1234567), '1,234,567');
  t.is(format.plural(1, 'image'), '1 image');
  t.is(format.plural(0, 'image'), '0 images');
  t.is(format.plural(2000, 'image'), '2,000 images');
  t.is(format.plural(2, 'index', 'indices'), '2 indices');
  t.is(format.shortDate('2024-05-06T07:08:09.000Z'), '2024-05-06');
  t.is(format.shortDate(''), '—');
  t.is(format.shortDate(undefined), '—');
  t.true(format.UUID_RE.test(UUIDS[0]));
  t.false(format.UUID_RE.test(UUIDS[0]!.toUpperCase()));
});

test('toRecord flattens a manifest, whatever it lacks or holds of the wrong type', (t) => {
  const r = records.toRecord(manifest({ description: 'Base Zone', public: false }));
  t.like(r, { uuid: UUIDS[0], name: 'base-64', version: '1.0.0', size: 1000, published: '2024-01-01T00:00:00.000Z', isPublic: false });
  t.true(r.hay.includes('base zone'), 'the haystack is lower-cased');
  const odd = records.toRecord({ uuid: UUIDS[1], name: 42, version: null, files: 'nope' });
  t.like(odd, { name: '42', version: '', size: -1, published: '', state: '', isPublic: true });
  t.is(records.toRecord(manifest({ files: [] })).size, -1);
});

test('the table orders: numeric names and versions, sizes, dates, total with ties broken by name, version, uuid', (t) => {
  const list = [
    manifest({ uuid: UUIDS[0], name: 'base-10', version: '1.10.0', files: [{ size: 300 }], published_at: '2024-03-01T00:00:00Z' }),
    manifest({ uuid: UUIDS[1], name: 'base-9', version: '1.9.0', files: [{ size: 2000 }], published_at: '2024-01-01T00:00:00Z' }),
    manifest({ uuid: UUIDS[2], name: 'Base-9', version: '1.9.0', files: [{ size: 300 }], published_at: '2024-02-01T00:00:00Z' }),
  ].map(records.toRecord);
  const order = (key: string, dir: number) => list.slice().sort(records.comparator(key, dir)).map((r: any) => r.uuid);
  t.deepEqual(order('name', 1), [UUIDS[1], UUIDS[2], UUIDS[0]], 'base-9 before base-10; case ignored, then uuid');
  t.deepEqual(order('name', -1), [UUIDS[0], UUIDS[2], UUIDS[1]], 'descending is the exact reverse');
  t.deepEqual(order('version', 1), [UUIDS[1], UUIDS[2], UUIDS[0]], '1.9.0 before 1.10.0');
  t.deepEqual(order('size', 1), [UUIDS[2], UUIDS[0], UUIDS[1]], 'equal sizes fall to the name: Base-9 before base-10');
  t.deepEqual(order('published', -1), [UUIDS[0], UUIDS[2], UUIDS[1]]);
  for (const key of ['name', 'version', 'os', 'type', 'size', 'published', 'state', 'desc']) {
    t.deepEqual(list.slice().reverse().sort(records.comparator(key, 1)).map((r: any) => r.uuid), order(key, 1), `${key}: total`);
  }
});

test('byNewest: newest published first, unpublished last, then the higher version', (t) => {
  const rs = [
    manifest({ uuid: UUIDS[0], version: '2.0.0', published_at: undefined, state: 'unactivated' }),
    manifest({ uuid: UUIDS[1], version: '1.9.0', published_at: '2024-06-01T00:00:00Z' }),
    manifest({ uuid: UUIDS[2], version: '1.10.0', published_at: '2024-06-01T00:00:00Z' }),
  ].map(records.toRecord);
  t.deepEqual(rs.sort(records.byNewest).map((r: any) => r.uuid), [UUIDS[2], UUIDS[1], UUIDS[0]]);
});

test('indexCatalog drops what is not a manifest and indexes by uuid, name (newest first) and origin', (t) => {
  const idx = records.indexCatalog([
    manifest({ uuid: UUIDS[0], version: '1.0.0', published_at: '2024-01-01T00:00:00Z' }),
    null, 'junk', 7,
    manifest({ uuid: UUIDS[1], version: '1.1.0', published_at: '2024-02-01T00:00:00Z', origin: UUIDS[0] }),
    manifest({ uuid: UUIDS[2], name: 'other', origin: UUIDS[0] }),
  ]);
  t.is(idx.all.length, 3);
  t.is(idx.byUuid.get(UUIDS[1]).version, '1.1.0');
  t.deepEqual(idx.byName.get('base-64').map((r: any) => r.uuid), [UUIDS[1], UUIDS[0]]);
  t.deepEqual(idx.dependents.get(UUIDS[0]).map((r: any) => r.uuid), [UUIDS[1], UUIDS[2]]);
  t.is(records.indexCatalog({ not: 'a list' }).all.length, 0);
});

test('catalogRows: matches in order, or one head per name with its versions when expanded', (t) => {
  const idx = records.indexCatalog([
    manifest({ uuid: UUIDS[0], version: '1.0.0', published_at: '2024-01-01T00:00:00Z' }),
    manifest({ uuid: UUIDS[1], version: '1.1.0', published_at: '2024-02-01T00:00:00Z' }),
    manifest({ uuid: UUIDS[2], name: 'other', os: 'linux', published_at: '2024-03-01T00:00:00Z' }),
  ]);
  const sorted = idx.all.slice().sort(records.comparator('published', -1));
  const all = () => true;
  const flat = records.catalogRows(sorted, idx.byName, { match: all });
  t.deepEqual(flat.rows.map((e: any) => e.key), [UUIDS[2], UUIDS[1], UUIDS[0]]);
  t.is(flat.matched, 3);
  const grouped = records.catalogRows(sorted, idx.byName, { match: all, group: true });
  t.deepEqual(grouped.rows.map((e: any) => e.key), ['group:other', 'group:base-64']);
  t.is(grouped.rows[1].r.uuid, UUIDS[1], 'a group shows its newest version');
  t.is(grouped.groups, 2);
  const open = records.catalogRows(sorted, idx.byName, { match: all, group: true, expanded: new Set(['base-64']) });
  t.deepEqual(open.rows.map((e: any) => `${e.kind} ${e.key}`), ['group group:other', 'group group:base-64', `member ${UUIDS[1]}`, `member ${UUIDS[0]}`]);
  const smartos = records.catalogRows(sorted, idx.byName, { match: query.imageMatcher({ os: 'smartos' }), group: true });
  t.deepEqual(smartos.rows.map((e: any) => e.key), ['group:base-64']);
  t.is(smartos.matched, 2);
});

test('search words and filters: every word must appear, in any field, whatever the case', (t) => {
  t.deepEqual(query.searchWords('  Base  LTS\t2024 '), ['base', 'lts', '2024']);
  t.deepEqual(query.searchWords(''), []);
  t.deepEqual(query.searchWords(undefined), []);
  const r = records.toRecord(manifest({ name: 'base-64-lts', version: '24.4.1', description: 'Long-term support', os: 'smartos' }));
  const matches = (q: Record<string, string>) => query.imageMatcher(q)(r);
  t.true(matches({}));
  t.true(matches({ q: 'LTS 24.4' }));
  t.true(matches({ q: 'long-term' }), 'the description is searched');
  t.true(matches({ q: UUIDS[0]!.slice(0, 8) }), 'the uuid is searched');
  t.false(matches({ q: 'lts debian' }), 'every word must appear');
  t.true(matches({ os: 'smartos', type: 'zone-dataset', state: 'active' }));
  t.false(matches({ os: 'linux' }));
  t.false(matches({ state: 'disabled' }));
  t.false(matches({ q: 'base\u0000' }), 'the haystack separator matches no word');
});

test('the channel filter: an image in the channel, or without channels when it is the default one', (t) => {
  const dev = records.toRecord(manifest({ channels: ['dev'] }));
  const both = records.toRecord(manifest({ channels: ['dev', 'release'] }));
  const none = records.toRecord(manifest({}));
  const shown = (q: Record<string, string>) => [dev, both, none].filter(query.imageMatcher(q)).map((r) => r.channels.join('+') || 'none');
  t.deepEqual(shown({}), ['dev', 'dev+release', 'none']);
  t.deepEqual(shown({ channel: '' }), ['dev', 'dev+release', 'none'], 'all channels');
  t.deepEqual(shown({ channel: 'dev' }), ['dev', 'dev+release']);
  t.deepEqual(shown({ channel: 'release' }), ['dev+release'], 'no default channel: an image without channels is in none');
  t.deepEqual(shown({ channel: 'release', defaultChannel: 'release' }), ['dev+release', 'none']);
  t.deepEqual(shown({ channel: 'dev', defaultChannel: 'release' }), ['dev', 'dev+release']);
  t.deepEqual(shown({ channel: 'nightly', defaultChannel: 'release' }), []);
  t.deepEqual(shown({ channel: 'dev', q: 'base', os: 'smartos' }), ['dev', 'dev+release'], 'with the other filters');
  t.deepEqual(shown({ channel: 'dev', os: 'linux' }), []);
});

test('channels: GET /channels read safely, the default one, an image\'s channels and those it can join', (t) => {
  const list = records.channelList([
    { name: 'release', description: 'tested', default: true }, { name: 'dev', description: 'fresh' },
    { name: 'odd', default: 'yes' }, { name: '' }, { description: 'no name' }, null, 'x', { name: 5 },
  ]);
  t.deepEqual(list, [
    { name: 'release', description: 'tested', default: true }, { name: 'dev', description: 'fresh', default: false },
    { name: 'odd', description: '', default: false },
  ]);
  for (const answer of [null, undefined, {}, { code: 'ResourceNotFound', message: 'no route' }, 'text', []]) {
    t.deepEqual(records.channelList(answer), [], `${JSON.stringify(answer)}: a server without channels`);
  }
  t.is(records.defaultChannel(list), 'release');
  t.is(records.defaultChannel(list.slice(1)), '');
  t.is(records.defaultChannel([]), '');

  t.deepEqual(records.imageChannels(['dev', 'release'], 'release'), ['dev', 'release']);
  t.deepEqual(records.imageChannels(undefined, 'release'), ['release'], 'no field: the default channel');
  t.deepEqual(records.imageChannels([], 'release'), ['release']);
  t.deepEqual(records.imageChannels(undefined, ''), [], 'no field and no default: none');
  t.deepEqual(records.imageChannels(['dev', 7, null], ''), ['dev'], 'only names');
  t.deepEqual(records.imageChannels('dev', ''), []);

  t.deepEqual(records.joinableChannels(list, ['dev'], 'release'), ['release', 'odd']);
  t.deepEqual(records.joinableChannels(list, undefined, 'release'), ['dev', 'odd'], 'an image without the field is in the default already');
  t.deepEqual(records.joinableChannels(list, ['release', 'dev', 'odd'], 'release'), []);
  t.deepEqual(records.joinableChannels([], ['dev'], ''), []);
});

test('parseRoute: the view and image a URL fragment names; an in-page anchor is no route', (t) => {
  const upper = UUIDS[0]!.toUpperCase();
  t.deepEqual(query.parseRoute(''), { view: 'catalog', uuid: '' });
  t.deepEqual(query.parseRoute('#/'), { view: 'catalog', uuid: '' });
  t.deepEqual(query.parseRoute(`#/image/${UUIDS[0]}`), { view: 'image', uuid: UUIDS[0] });
  t.deepEqual(query.parseRoute(`#/image/${upper}/`), { view: 'image', uuid: UUIDS[0] }, 'lower-cased, trailing slash allowed');
  t.deepEqual(query.parseRoute('#/upload'), { view: 'upload', uuid: '' });
  t.deepEqual(query.parseRoute('#/image/not-a-uuid'), { view: 'catalog', uuid: '' });
  t.deepEqual(query.parseRoute(`#/image/${UUIDS[0]}/file`), { view: 'catalog', uuid: '' });
  t.deepEqual(query.parseRoute('#/anything'), { view: 'catalog', uuid: '' });
  t.is(query.parseRoute('#main'), null);
  t.is(query.parseRoute('#search'), null);
});

test('ApiError and parseBody: the API answer, or words for an answer that is not one', (t) => {
  t.deepEqual(errors.parseBody(200, '[1,2]'), [1, 2]);
  t.is(errors.parseBody(204, ''), null);
  t.is(errors.parseBody(200, 'not json'), null);
  const refused = t.throws(() => errors.parseBody(422, JSON.stringify({
    code: 'ValidationFailed', message: 'Invalid manifest', errors: [{ field: 'name', code: 'MissingParameter' }, null, 'x'],
  })));
  t.true(refused instanceof errors.ApiError);
  t.like(refused, { status: 422, code: 'ValidationFailed', message: 'Invalid manifest' });
  t.deepEqual((refused as any).errors, [{ field: 'name', code: 'MissingParameter' }], 'only objects are field errors');
  const html = t.throws(() => errors.parseBody(502, '<html>Bad Gateway</html>'));
  t.like(html, { status: 502, code: '', message: 'The server answered 502.' });
  t.deepEqual((html as any).errors, []);
  t.like(errors.networkError(), { status: 0, code: 'NetworkError', message: 'The server could not be reached.' });
});

test('field errors in words, and the input of the publish form each belongs to', (t) => {
  t.is(errors.fieldErrorWords({ field: 'name', code: 'MissingParameter' }), '"name" is required.');
  t.is(errors.fieldErrorWords({ field: 'version', code: 'Invalid' }), '"version" is not valid.');
  t.is(errors.fieldErrorWords({ field: 'tags', code: 'Weird' }), '"tags" was refused (Weird).');
  t.is(errors.fieldErrorWords({ field: 'name', code: 'Invalid', message: 'name is too long' }), 'name is too long');
  t.is(errors.failureText('Disable', { message: 'No.', code: 'NotAuthorized' }), 'Disable failed: No. (NotAuthorized)');
  t.is(errors.failureText('Delete', { message: 'Gone.', code: '' }), 'Delete failed: Gone.');

  const own = ['uuid', 'name', 'version', 'os', 'type', 'description', 'homepage', 'origin', 'public'];
  const typed = (field: string) => errors.uploadInputFor(field, { own, fromFile: false });
  const fromFile = (field: string) => errors.uploadInputFor(field, { own, fromFile: true });
  t.is(typed('name'), 'name');
  t.is(typed('requirements.min_platform'), 'extra', 'a field without an input of its own: the More fields box');
  t.is(typed('files[0].sha1'), 'file');
  t.is(typed('file'), 'file');
  t.is(typed('compression'), 'compression');
  t.is(typed('channel'), 'channel', 'a refused channel: the channel picker');
  t.is(typed('#ImageUuidAlreadyExists'), 'uuid');
  t.is(typed('#OriginDoesNotExist'), 'origin');
  t.is(typed('#Upload'), 'file');
  t.is(typed('#UnauthorizedError'), null);
  t.is(typed('#SomethingElse'), 'extra');
  t.is(typed(''), null);
  t.is(typed('manifest'), 'extra');
  t.is(fromFile('manifest'), 'manifestFile', 'a manifest file chosen: errors about the whole manifest go to it');
  t.is(typed('owner'), 'extra');
  t.is(fromFile('v'), 'manifestFile');
  t.is(fromFile('name'), 'name', 'a field with its own input keeps it');
});

test('credentials: Basic of the UTF-8 bytes, and the headers every request carries', (t) => {
  t.is(api.basicHeader('jörg', 'pässwörd:1'), `Basic ${Buffer.from('jörg:pässwörd:1', 'utf8').toString('base64')}`);
  t.deepEqual(api.requestHeaders(), { Accept: 'application/json', 'X-Requested-With': 'XMLHttpRequest' });
  // No sessionStorage in Node: signing in keeps the credentials in memory only.
  api.signedIn('Bearer t0ken', 'token', true);
  t.is(api.requestHeaders({ Accept: 'text/plain' }).Authorization, 'Bearer t0ken');
  t.is(api.requestHeaders({ Accept: 'text/plain' }).Accept, 'text/plain');
  api.signedOut();
  t.false('Authorization' in api.requestHeaders());
});

/*
 * ListImages (docs/protocol.md §3.4): the default active-only view, every
 * filter, sort, inclusive-marker paging exactly as sdc-clients drives it,
 * unknown parameters ignored and bad values of known ones refused with 422.
 */
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { OPERATOR_AUTH, startServer } from '../helpers/server.js';
import { tmpDir, v2Manifest, writeImage, type ImageOnDisk } from '../helpers/images.js';
import { addImage, assertApiError, assertJson, assertSchema, json, request, uuidsOf } from './kit.js';

const OWNER_1 = '11111111-1111-4111-8111-111111111111';
const OWNER_2 = '22222222-2222-4222-8222-222222222222';

interface Catalog {
  url: string;
  all: ImageOnDisk[];
  base: ImageOnDisk;
  lts: ImageOnDisk;
  zvol: ImageOnDisk;
  docker: ImageOnDisk;
  disabled: ImageOnDisk;
  unactivated: ImageOnDisk;
  creating: ImageOnDisk;
  failed: ImageOnDisk;
}

async function catalog(t: ExecutionContext): Promise<Catalog> {
  const root = tmpDir(t);
  const unpublished = { published_at: undefined };
  const c = {
    base: addImage(root, {
      name: 'base-64', version: '1.0.0', owner: OWNER_1,
      tags: { role: 'os', group: 'web', n: 5, flag: true }, billing_tags: ['gold', 'eu'],
    }),
    disabled: addImage(root, { name: 'old-base', version: '0.9.0', state: 'disabled', disabled: true, owner: OWNER_1 }),
    lts: addImage(root, {
      name: 'base-64-lts', version: '2.0.0', type: 'lx-dataset', os: 'linux', owner: OWNER_2, public: false,
      tags: { role: 'os' }, billing_tags: ['gold'], requirements: { brand: 'lx' },
    }),
    zvol: addImage(root, {
      name: 'ubuntu-certified', version: '1.0.0', type: 'zvol', os: 'linux', owner: OWNER_1,
      tags: { role: 'db', nested: { a: 1 } }, nic_driver: 'virtio', disk_driver: 'virtio', cpu_type: 'host', image_size: 10240,
    }),
    docker: addImage(root, {
      name: 'busybox', version: 'latest', type: 'docker', os: 'linux', owner: OWNER_2,
      tags: { 'docker:id': 'sha256:0123', 'docker:repo': 'library/busybox' },
    }),
    unactivated: addImage(root, { name: 'wip', version: '3.0.0', state: 'unactivated', ...unpublished }),
    creating: addImage(root, { name: 'in-progress', version: '3.1.0', state: 'creating', files: [], ...unpublished }),
    failed: addImage(root, {
      name: 'broken-build', version: '3.2.0', state: 'failed', error: { message: 'boom' }, files: [], ...unpublished,
    }),
  };
  const srv = await startServer(t, { serveDir: root });
  return { url: srv.url, all: Object.values(c), ...c };
}

/** (published_at, uuid) ascending, images without published_at first. */
function sorted(images: ImageOnDisk[]): string[] {
  const ms = (i: ImageOnDisk) => (i.manifest.published_at ? Date.parse(String(i.manifest.published_at)) : 0);
  return [...images].sort((a, b) => ms(a) - ms(b) || (a.uuid < b.uuid ? -1 : 1)).map((i) => i.uuid);
}

/** Lists as an authenticated user, who also sees the private image. */
async function list(t: ExecutionContext, c: { url: string }, query = ''): Promise<{ uuid: string }[]> {
  const res = await request(`${c.url}/images${query}`, { headers: { authorization: OPERATOR_AUTH } });
  assertJson(t, res, 200);
  const body = json(res);
  assertSchema(t, 'GET /images 200', body);
  return body;
}

test('anonymous callers see public images only; a private one is not found', async (t) => {
  const c = await catalog(t);
  const anonymous = json(await request(`${c.url}/images?state=all`));
  t.deepEqual(uuidsOf(anonymous), sorted(c.all.filter((i) => i !== c.lts)));
  t.is((await request(`${c.url}/images/${c.lts.uuid}`)).status, 404);
  t.is((await request(`${c.url}/images/${c.lts.uuid}/file`)).status, 404);
  t.is((await request(`${c.url}/images/${c.lts.uuid}`, { headers: { authorization: OPERATOR_AUTH } })).status, 200);
});

test('without state only active images are listed, sorted by published_at', async (t) => {
  const c = await catalog(t);
  const expected = [c.base.uuid, c.lts.uuid, c.zvol.uuid, c.docker.uuid];
  t.deepEqual(uuidsOf(await list(t, c)), expected);
  t.deepEqual(uuidsOf(await list(t, c, '?state=active')), expected);
});

test('listed manifests are the v2 manifests as stored', async (t) => {
  const c = await catalog(t);
  const body = await list(t, c);
  t.deepEqual(body[0], c.base.manifest);
  t.deepEqual(body[1], c.lts.manifest);
});

test('state selects disabled, unactivated, creating, failed or all', async (t) => {
  const c = await catalog(t);
  t.deepEqual(uuidsOf(await list(t, c, '?state=disabled')), [c.disabled.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?state=unactivated')), [c.unactivated.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?state=creating')), [c.creating.uuid]);
  const failed = await list(t, c, '?state=failed');
  t.deepEqual(uuidsOf(failed), [c.failed.uuid]);
  t.deepEqual((failed[0] as Record<string, unknown>).error, { message: 'boom' });
  t.deepEqual(uuidsOf(await list(t, c, '?state=all')), sorted(c.all));
});

test('name and version match exactly, or as a case-sensitive substring with ~', async (t) => {
  const c = await catalog(t);
  t.deepEqual(uuidsOf(await list(t, c, '?name=base-64')), [c.base.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?name=~base')), [c.base.uuid, c.lts.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?name=~base&state=all')), sorted([c.base, c.lts, c.disabled]));
  t.deepEqual(uuidsOf(await list(t, c, '?name=~64-l')), [c.lts.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?name=~BASE')), []);
  t.deepEqual(uuidsOf(await list(t, c, '?name=base')), []);
  t.deepEqual(uuidsOf(await list(t, c, '?version=1.0.0')), [c.base.uuid, c.zvol.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?version=~.0.0')), [c.base.uuid, c.lts.uuid, c.zvol.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?version=1.0')), []);
});

test('type matches exactly and !type excludes', async (t) => {
  const c = await catalog(t);
  t.deepEqual(uuidsOf(await list(t, c, '?type=zvol')), [c.zvol.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?type=zone-dataset')), [c.base.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?type=!zone-dataset')), [c.lts.uuid, c.zvol.uuid, c.docker.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, `?type=${encodeURIComponent('!docker')}`)), [c.base.uuid, c.lts.uuid, c.zvol.uuid]);
});

test('os, owner and public filter exactly', async (t) => {
  const c = await catalog(t);
  t.deepEqual(uuidsOf(await list(t, c, '?os=linux')), [c.lts.uuid, c.zvol.uuid, c.docker.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?os=smartos')), [c.base.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, `?owner=${OWNER_1}`)), [c.base.uuid, c.zvol.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, `?owner=${OWNER_1}&state=all`)), sorted([c.base, c.zvol, c.disabled]));
  t.deepEqual(uuidsOf(await list(t, c, '?public=false')), [c.lts.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?public=true')), [c.base.uuid, c.zvol.uuid, c.docker.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?os=linux&public=true&type=!docker')), [c.zvol.uuid]);
});

test('tag.KEY matches the stringified scalar value; repeated tags are ANDed', async (t) => {
  const c = await catalog(t);
  t.deepEqual(uuidsOf(await list(t, c, '?tag.role=os')), [c.base.uuid, c.lts.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?tag.role=os&tag.group=web')), [c.base.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?tag.role=os&tag.role=db')), []);
  t.deepEqual(uuidsOf(await list(t, c, '?tag.n=5')), [c.base.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?tag.flag=true')), [c.base.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, `?${encodeURIComponent('tag.docker:id')}=sha256:0123`)), [c.docker.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?tag.nested=[object Object]')), []);
  t.deepEqual(uuidsOf(await list(t, c, '?tag.missing=x')), []);
});

test('billing_tag is repeatable and ANDed', async (t) => {
  const c = await catalog(t);
  t.deepEqual(uuidsOf(await list(t, c, '?billing_tag=gold')), [c.base.uuid, c.lts.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?billing_tag=gold&billing_tag=eu')), [c.base.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?billing_tag=silver')), []);
});

test('sort=published_at[.asc|.desc]', async (t) => {
  const c = await catalog(t);
  const asc = [c.base.uuid, c.lts.uuid, c.zvol.uuid, c.docker.uuid];
  t.deepEqual(uuidsOf(await list(t, c, '?sort=published_at')), asc);
  t.deepEqual(uuidsOf(await list(t, c, '?sort=published_at.asc')), asc);
  t.deepEqual(uuidsOf(await list(t, c, '?sort=published_at.desc')), [...asc].reverse());
  t.deepEqual(uuidsOf(await list(t, c, '?sort=published_at.desc&state=all')), sorted(c.all).reverse());
});

test('limit caps the page; marker (a uuid or a date) is inclusive', async (t) => {
  const c = await catalog(t);
  t.deepEqual(uuidsOf(await list(t, c, '?limit=2')), [c.base.uuid, c.lts.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?limit=1000')), [c.base.uuid, c.lts.uuid, c.zvol.uuid, c.docker.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, '?limit=5000')), [c.base.uuid, c.lts.uuid, c.zvol.uuid, c.docker.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, `?marker=${c.lts.uuid}`)), [c.lts.uuid, c.zvol.uuid, c.docker.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, `?marker=${c.lts.uuid}&limit=2`)), [c.lts.uuid, c.zvol.uuid]);
  // The marker may name an image the filter excludes; it still places the page.
  t.deepEqual(uuidsOf(await list(t, c, `?marker=${c.disabled.uuid}`)), [c.lts.uuid, c.zvol.uuid, c.docker.uuid]);
  const date = encodeURIComponent(String(c.zvol.manifest.published_at));
  t.deepEqual(uuidsOf(await list(t, c, `?marker=${date}`)), [c.zvol.uuid, c.docker.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, `?marker=${date}&sort=published_at.desc`)), [c.zvol.uuid, c.lts.uuid, c.base.uuid]);
  t.deepEqual(uuidsOf(await list(t, c, `?marker=${c.lts.uuid}&sort=published_at.desc`)), [c.lts.uuid, c.base.uuid]);
});

test('unknown parameters such as channel and account are ignored', async (t) => {
  const c = await catalog(t);
  const plain = await list(t, c);
  for (const query of ['?channel=dev', `?account=${OWNER_2}`, '?channel=*&account=whatever', '?foo=bar&tag.=x', '?inclAdminFields=false']) {
    t.deepEqual(await list(t, c, query), plain, query);
  }
});

test('a bad value of a known parameter is 422 InvalidParameter naming the field', async (t) => {
  const c = await catalog(t);
  const cases: [string, string][] = [
    ['limit=abc', 'limit'],
    ['limit=0', 'limit'],
    ['limit=-1', 'limit'],
    ['limit=1.5', 'limit'],
    ['state=bogus', 'state'],
    ['state=ACTIVE', 'state'],
    ['sort=name', 'sort'],
    ['sort=published_at.up', 'sort'],
    ['public=maybe', 'public'],
    ['owner=notauuid', 'owner'],
    ['marker=bogus', 'marker'],
    ['state=active&state=all', 'state'],
    ['name=', 'name'],
  ];
  for (const [query, field] of cases) {
    const res = await request(`${c.url}/images?${query}`);
    const body = assertApiError(t, res, 422, 'InvalidParameter');
    t.true(Array.isArray(body.errors), query);
    t.deepEqual((body.errors as { field: string }[]).map((e) => e.field), [field], query);
    assertSchema(t, 'GET /images 422', body);
  }
});

/** sdc-clients' listImages loop (lib/imgapi.js listAllImages), request for request. */
async function pageLikeSdcClients(url: string, firstLimit?: number): Promise<{ uuids: string[]; requests: number }> {
  let limit = firstLimit;
  let marker: string | undefined;
  const uuids: string[] = [];
  let requests = 0;
  for (;;) {
    const q = new URLSearchParams({ channel: 'dev' });
    if (marker) q.set('marker', marker);
    if (limit) q.set('limit', String(limit));
    const res = await request(`${url}/images?${q}`);
    requests++;
    if (res.status !== 200) throw new Error(`page ${requests}: ${res.status} ${res.body}`);
    const page = uuidsOf(json(res));
    limit ||= 1000;
    const stop = page.length < limit;
    if (marker && page[0] === marker) page.shift();
    if (page.length === 0) break;
    const newMarker = page[page.length - 1]!;
    if (marker === newMarker) break;
    marker = newMarker;
    uuids.push(...page);
    if (stop) break;
  }
  return { uuids, requests };
}

test('2,500 images page completely with inclusive markers, even when published_at ties', async (t) => {
  const root = tmpDir(t);
  const stamps = ['2021-01-01T00:00:00.000Z', '2021-06-01T00:00:00.000Z', '2022-01-01T00:00:00.000Z',
    '2022-01-01T00:00:00.001Z', '2023-03-03T03:03:03.000Z'];
  const bytes = randomBytes(16);
  const active: ImageOnDisk[] = [];
  for (let i = 0; i < 2550; i++) {
    const fields = i % 51 === 50
      ? { state: 'disabled', disabled: true, published_at: stamps[i % 5] }
      : { published_at: stamps[i % 5] };
    const img = writeImage(root, v2Manifest(bytes, fields), { bytes });
    if (!fields.disabled) active.push(img);
  }
  t.is(active.length, 2500);
  const expected = sorted(active);
  const srv = await startServer(t, { serveDir: root });

  // What imgadm does: no limit first, then marker + limit=1000.
  const auto = await pageLikeSdcClients(srv.url);
  t.deepEqual(auto.uuids, expected);
  t.is(auto.requests, 2);

  // Paging from the first request on: 1000, then 999 + the repeat, then 501 + the repeat.
  const paged = await pageLikeSdcClients(srv.url, 1000);
  t.deepEqual(paged.uuids, expected);
  t.is(new Set(paged.uuids).size, 2500);
  t.is(paged.requests, 3);

  // Every page boundary falls inside a run of equal published_at.
  const page2 = uuidsOf(json(await request(`${srv.url}/images?limit=1000&marker=${expected[999]}`)));
  t.deepEqual(page2, expected.slice(999, 1999));
});

test('without limit every matching image comes back in one answer', async (t) => {
  const root = tmpDir(t);
  const bytes = randomBytes(8);
  for (let i = 0; i < 1200; i++) writeImage(root, v2Manifest(bytes), { bytes });
  const srv = await startServer(t, { serveDir: root });
  t.is((await list(t, srv)).length, 1200);
  t.is((await list(t, srv, '?limit=1000')).length, 1000);
});

/*
 * imgmanifest@3, applied the way imgadm applies it (docs/protocol.md §1.5, §2.3),
 * to what the server serves for every servable fixture in
 * test/fixtures: DSAPI manifests must upgrade to an importable v2
 * (state active, or disabled for a disabled one; numeric size; a
 * compression imgadm can decompress) and pass the minimal validation;
 * IMGAPI manifests must already be v2 and pass minimal validation, and
 * active public ones the public-mode validation too.
 */
import test, { type ExecutionContext } from 'ava';
import { catalogs, fixtureEntries, layOutFixture, type FixtureEntry } from '../helpers/fixture-catalog.js';
import { tmpDir } from '../helpers/images.js';
import { OPERATOR_AUTH, startServer } from '../helpers/server.js';
import { imgmanifest, type Manifest } from '../helpers/legacy-clients.js';

const COMPRESSIONS = ['gzip', 'bzip2', 'xz', 'none'];
/** Fixtures whose servable state is not "active". */
const NOT_ACTIVE: Record<string, string> = {
  'synthesized/v2-disabled-not-importable.json': 'disabled',
};

/** Every fixture the server can serve: no ".invalid." ones, none without files. */
function servableFixtures(): FixtureEntry[] {
  return fixtureEntries()
    .filter((e) => !e.rel.includes('.invalid.'))
    .filter((e) => Array.isArray(e.manifest.files) && e.manifest.files.length > 0);
}

async function getJson<T>(url: string): Promise<T> {
  // Authenticated: the catalog holds a private fixture, hidden from anonymous callers.
  const res = await fetch(url, { headers: { accept: 'application/json', authorization: OPERATOR_AUTH } });
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** What imgadm's import does with a DSAPI manifest before it trusts it (§1.5 steps 1, 4, 6). */
function checkDsapiManifest(t: ExecutionContext, m: Manifest, wantState: string, label: string): Manifest | undefined {
  let up: Manifest;
  try {
    up = imgmanifest.upgradeManifest(m);
  } catch (err) {
    t.fail(`${label}: upgradeManifest threw ${(err as Error).message}`);
    return undefined;
  }
  t.is(up.v, 2, label);
  t.is(up.state, wantState, `${label}: state after upgrade`);
  const f = (up.files as Record<string, unknown>[] | undefined)?.[0];
  t.truthy(f, `${label}: files[0]`);
  t.is(typeof f?.size, 'number', `${label}: files[0].size is a JSON number`);
  t.true(COMPRESSIONS.includes(String(f?.compression)), `${label}: compression ${String(f?.compression)}`);
  t.deepEqual(imgmanifest.validateMinimalManifest(up), null, `${label}: validateMinimalManifest`);
  return up;
}

const entries = servableFixtures();

test('the fixture set is what this test expects to cover', (t) => {
  const rels = entries.map((e) => e.rel);
  t.true(rels.length >= 20, `${rels.length} servable fixtures`);
  t.false(rels.some((r) => r.includes('.invalid.')));
  t.true(rels.includes('v1-dsapi/smartos-1.3.12.dsmanifest.json'));
  t.true(rels.includes('synthesized/v2-disabled-not-importable.json'));
  t.true(entries.some((e) => typeof e.manifest.origin === 'string'), 'some have an origin');
});

for (const [i, catalog] of catalogs(entries).entries()) {
  test(`catalog ${i + 1}: every DSAPI manifest (list and by uuid) upgrades to an importable v2 and validates`, async (t) => {
    const root = tmpDir(t);
    for (const e of catalog) layOutFixture(root, e);
    const { url } = await startServer(t, { serveDir: root });

    const list = await getJson<Manifest[]>(`${url}/datasets`);
    const active = catalog.filter((e) => !NOT_ACTIVE[e.rel]);
    t.deepEqual(list.map((m) => m.uuid).sort(), active.map((e) => e.manifest.uuid as string).sort(), 'every active fixture is listed');
    for (const m of list) checkDsapiManifest(t, m, 'active', `GET /datasets item ${m.uuid}`);

    for (const e of catalog) {
      const uuid = String(e.manifest.uuid);
      const m = await getJson<Manifest>(`${url}/datasets/${uuid}`);
      const up = checkDsapiManifest(t, m, NOT_ACTIVE[e.rel] ?? 'active', `GET /datasets/:uuid ${e.rel}`);
      t.is(typeof (m.files as Record<string, unknown>[])[0]!.url, 'string', `${e.rel}: files[0].url`);
      t.is(up?.origin, e.manifest.origin, `${e.rel}: origin through the upgrade`);
      // What imgadm installs from a dsapi source is the same file, with the
      // same decompressor, as from the imgapi view of the same image (an
      // .xz file left to the upgrader's extension rule would become "none").
      const v2 = await getJson<Manifest>(`${url}/images/${uuid}`);
      t.deepEqual(up?.files, v2.files, `${e.rel}: upgraded DSAPI files[] equal the IMGAPI files[]`);
    }
  });

  test(`catalog ${i + 1}: every IMGAPI manifest is v2 as served, validates, and active public ones pass public mode`, async (t) => {
    const root = tmpDir(t);
    for (const e of catalog) layOutFixture(root, e);
    const { url } = await startServer(t, { serveDir: root });

    const listed = await getJson<Manifest[]>(`${url}/images`);
    const all = await getJson<Manifest[]>(`${url}/images?state=all`);
    t.deepEqual(all.map((m) => m.uuid).sort(), catalog.map((e) => e.manifest.uuid as string).sort(), 'every fixture is served');
    let publicChecked = 0;
    const single = await Promise.all(catalog.map((e) => getJson<Manifest>(`${url}/images/${String(e.manifest.uuid)}`)));
    for (const [source, manifests] of [['GET /images', listed], ['GET /images?state=all', all], ['GET /images/:uuid', single]] as const) {
      for (const m of manifests) {
        const label = `${source} ${m.uuid} (${String(m.name)})`;
        t.is(m.v, 2, label);
        t.is(imgmanifest.upgradeManifest(m), m, `${label}: upgradeManifest leaves a v2 manifest alone`);
        t.deepEqual(imgmanifest.validateMinimalManifest(m), null, `${label}: validateMinimalManifest`);
        if (m.state === 'active' && m.public === true) {
          // The served form has no "activated" (as sdc-imgapi's API form); the
          // validator wants the internal record, which has it.
          t.deepEqual(imgmanifest.validatePublicManifest({ ...m, activated: true }), null, `${label}: validatePublicManifest`);
          publicChecked++;
        }
        if (m.state === 'active') {
          const f = (m.files as Record<string, unknown>[])[0]!;
          t.is(typeof f.size, 'number', label);
          t.true(COMPRESSIONS.includes(String(f.compression)), label);
        }
      }
    }
    t.true(publicChecked > 0, 'some active public images went through public-mode validation');
  });
}

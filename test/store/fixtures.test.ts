/*
 * Every manifest in test/fixtures laid out in a serve_dir: the ones
 * imgadm can use are served and read back, the ones it would choke on are
 * skipped with a warning, and the rest of the catalog keeps serving.
 */
import test from 'ava';
import { catalogs, fixtureEntries, layOutFixture } from '../helpers/fixture-catalog.js';
import { tmpDir } from '../helpers/images.js';
import { OPERATOR_AUTH, startServer } from '../helpers/server.js';


/** Fixtures that must be skipped at load, and why imgadm would fail on them. */
const SKIPPED: Record<string, string> = {
  'synthesized/v1-creator-and-owner.invalid.dsmanifest.json': 'upgrade asserts on owner + creator_uuid',
  'synthesized/v1-empty-creator-uuid.invalid.dsmanifest.json': 'empty creator_uuid',
  'synthesized/v2-missing-v.invalid.json': 'no v and no creator_uuid',
  'synthesized/v2-size-as-string.invalid.json': 'string size',
  'synthesized/v2-docker-without-docker-id.invalid.json': 'docker without docker:id',
  'v2-imgapi/docker-layer-zimbra.json': 'active (no state) but no files',
  'v2-imgapi/fauxnodejs-1.4.0.import-input.imgmanifest.json': 'active (no state) but no files',
};
const STATES: Record<string, string> = {
  'v2-imgapi/docker-layer-mongo.imgmanifest.json': 'unactivated',
  'synthesized/v2-disabled-not-importable.json': 'disabled',
};

for (const [i, catalog] of catalogs(fixtureEntries()).entries()) {
  test(`fixture catalog ${i + 1}: servable fixtures serve, the others are skipped with a warning`, async (t) => {
    const root = tmpDir(t);
    for (const e of catalog) layOutFixture(root, e);
    const server = await startServer(t, { serveDir: root });
    const headers = { authorization: OPERATOR_AUTH };
    const all = (await (await fetch(`${server.url}/images?state=all`, { headers })).json()) as Record<string, unknown>[];
    const served = catalog.filter((e) => !SKIPPED[e.rel]);
    t.deepEqual(all.map((m) => m.uuid).sort(), served.map((e) => e.manifest.uuid).sort());
    for (const e of catalog) {
      const res = await fetch(`${server.url}/images/${e.manifest.uuid}`, { headers });
      if (SKIPPED[e.rel]) {
        t.is(res.status, 404, `${e.rel} (${SKIPPED[e.rel]}) must not be served`);
        t.true(server.logs.some((l) => l.level === 40 && l.uuid === e.manifest.uuid), `${e.rel} logged a warning`);
        continue;
      }
      t.is(res.status, 200, e.rel);
      const m = (await res.json()) as Record<string, unknown>;
      t.is(m.state, STATES[e.rel] ?? 'active', e.rel);
      for (const key of ['uuid', 'name', 'version', 'type', 'os']) t.is(m[key], e.manifest[key], `${e.rel} ${key}`);
      t.is(m.v, 2);
      if (m.state !== 'unactivated') {
        const f = (m.files as Record<string, unknown>[])[0]!;
        const want = (e.manifest.files as Record<string, unknown>[])[0]!;
        t.is(f.sha1, want.sha1, e.rel);
        t.is(f.size, want.size, e.rel);
        t.regex(String(m.published_at), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/, e.rel);
      }
    }
  });
}

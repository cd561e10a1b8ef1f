/*
 * A listing is made of the entries the store keeps per image (entries.ts):
 * an entry, with channels added to it, must be byte for byte the view the
 * manifest gives (views.ts), or a listing's bytes, Content-MD5 and ETag
 * would depend on how it was made.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { normalizeManifest } from '../../src/manifest/normalize.js';
import type { Manifest } from '../../src/manifest/types.js';
import { toImgapi } from '../../src/manifest/views.js';
import { jsonArrayBytes } from '../../src/http/json.js';
import { withChannels } from '../../src/store/entries.js';
import { RawJson } from '../../src/store/json-pieces.js';
import { FIXTURES } from '../helpers/images.js';

function fixtureManifests(): Manifest[] {
  const dir = path.join(FIXTURES, 'v2-imgapi');
  // Those the index would take (an activated image without files it would not).
  return fs.readdirSync(dir).filter((f) => f.endsWith('.json')).flatMap((f) => {
    const result = normalizeManifest(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')), '2020-01-01T00:00:00Z');
    return result.ok ? [result.value.manifest] : [];
  });
}

test('an entry with channels added is what toImgapi gives with those channels, error and all', (t) => {
  const manifests = fixtureManifests();
  t.true(manifests.length >= 4);
  const failed = { ...manifests[0]!, state: 'failed', error: { code: 'PrepareImageDidNotRun', message: 'naïve ☃' } } as Manifest;
  for (const m of [...manifests, failed]) {
    for (const channels of [[], ['dev'], ['dev', 'rc', 'release']]) {
      t.is(withChannels(JSON.stringify(toImgapi(m)), channels), JSON.stringify(toImgapi(m, channels)), `${m.name} ${channels.join(',')}`);
    }
  }
  t.is(withChannels('{}', ['a']), '{"channels":["a"]}');
});

test('entries serialised already and plain values mix in one array in order, as JSON.stringify would write them all', (t) => {
  const values = Array.from({ length: 1203 }, (_, i) => ({ i, text: 'é☃'.repeat(i % 5) }));
  for (const rawEvery of [1, 2, 7, 500, 1000]) {
    const items = values.map((v, i) => (i % rawEvery === 0 ? new RawJson(JSON.stringify(v)) : v));
    t.is(jsonArrayBytes(items).toString('utf8'), JSON.stringify(values), `every ${rawEvery}th serialised already`);
  }
  t.is(jsonArrayBytes([new RawJson('{"a":1}')]).toString('utf8'), '[{"a":1}]');
});

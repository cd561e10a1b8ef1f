import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { normalizeManifest } from '../../src/manifest/normalize.js';
import type { Manifest } from '../../src/manifest/types.js';
import { toImgapi } from '../../src/manifest/views.js';
import { ImageRecord } from '../../src/store/record.js';

const FIXTURES = path.resolve('test/fixtures');

/** The real manifests of the fixtures, v1 and v2, that the loader takes, as it normalizes them. */
function realManifests(): [string, Manifest][] {
  return ['v1-dsapi', 'v2-imgapi'].flatMap((dir) => fs.readdirSync(path.join(FIXTURES, dir)).flatMap((name): [string, Manifest][] => {
    const result = normalizeManifest(JSON.parse(fs.readFileSync(path.join(FIXTURES, dir, name), 'utf8')), '2020-01-01T00:00:00.000Z');
    return result.ok ? [[name, result.value.manifest]] : [];
  }));
}

const detail = { legacy: null, files: [] };

test('a record keeps the manifest and the listing entry exactly as JSON.stringify gives them, for every real manifest', (t) => {
  const manifests = realManifests();
  t.true(manifests.length >= 9);
  for (const [name, manifest] of manifests) {
    const record = ImageRecord.fromManifest(manifest, detail, 's');
    t.is(record.manifestText, JSON.stringify(manifest), name);
    t.is(record.entry, JSON.stringify(toImgapi(manifest)), name);
    t.deepEqual(record.manifest, JSON.parse(JSON.stringify(manifest)), name);
  }
});

test('a manifest not in the listing form keeps its own text: empty, null and reordered fields', (t) => {
  const [, base] = realManifests().find(([name]) => name.startsWith('zone-dataset'))!;
  const { v, uuid, ...rest } = base;
  const cases: Record<string, Manifest> = {
    'an empty description': { ...base, description: '' },
    'a null origin': { ...base, origin: null as unknown as string },
    'uuid after the rest': { v, ...rest, uuid } as Manifest,
    'an error while active': { ...base, error: { message: 'x' } },
  };
  for (const [what, manifest] of Object.entries(cases)) {
    const record = ImageRecord.fromManifest(manifest, detail, 's');
    t.is(record.manifestText, JSON.stringify(manifest), what);
    t.is(record.entry, JSON.stringify(toImgapi(manifest)), what);
    t.not(record.manifestText, record.entry, what);
  }
});

test('each caller gets a manifest of its own, and the facts come from the manifest', (t) => {
  const [, manifest] = realManifests().find(([name]) => name.startsWith('docker-layer-mongo'))!;
  const record = ImageRecord.fromManifest(manifest, detail, 's');
  const mine = record.manifest;
  mine.name = 'changed';
  t.is(record.manifest.name, manifest.name);
  t.not(record.manifest, record.manifest);
  t.deepEqual({ ...record.facts }, {
    name: manifest.name, version: manifest.version, type: manifest.type, os: manifest.os,
    owner: manifest.owner, origin: manifest.origin, channels: manifest.channels,
  });
  t.is(typeof record.facts.origin, 'string', 'a docker layer names its origin');
  t.is(record.isPublic, manifest.public);
  t.is(record.state, manifest.state);
  t.is(record.publishedMs, Date.parse(manifest.published_at!));
});

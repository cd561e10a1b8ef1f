/*
 * upgradeManifest against imgmanifest 3.2.1's: every fixture of the upgrade
 * oracle (test/fixtures/upgrade-oracle/oracle.json), purity, and a
 * cross-check with the real module on generated v1/v2 manifests.
 */
import { createRequire } from 'node:module';
import test from 'ava';
import { fixture } from '../helpers/images.js';
import { upgradeManifest } from '../../src/manifest/upgrade.js';
import { pick, prng, type Json, type Rng } from './mutations.js';

const imgmanifest = createRequire(import.meta.url)('imgmanifest') as {
  upgradeManifest: (m: Json) => Json;
};

interface OracleEntry { fixture: string; upgrade: 'ok' | 'error'; upgrade_error?: string; upgraded?: Json }
const oracle = fixture('upgrade-oracle/oracle.json') as unknown as OracleEntry[];

for (const entry of oracle) {
  test(`oracle: ${entry.fixture}`, (t) => {
    const manifest = fixture(entry.fixture);
    if (entry.upgrade === 'error') {
      t.throws(() => upgradeManifest(manifest), { message: entry.upgrade_error });
    } else {
      t.deepEqual(upgradeManifest(manifest), entry.upgraded);
    }
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}

test('pure: the argument is left alone and the result shares nothing with it', (t) => {
  for (const rel of ['v1-dsapi/fauxnodejs-1.4.0.dsmanifest.json', 'v2-imgapi/zvol-ubuntu-certified-18.04.json']) {
    const manifest = deepFreeze(fixture(rel));
    const upgraded = upgradeManifest(manifest);
    t.not(upgraded, manifest);
    t.not(upgraded.files, manifest.files);
    (upgraded.files as Json[])[0]!.sha1 = 'changed';
    t.not((manifest.files as Json[])[0]!.sha1, 'changed');
  }
});

const UUID = 'cc707720-359e-4d84-89a7-e50959ecba43';
const CREATOR = '352971aa-31ba-496c-9ade-a379feaecd52';

/** Values to try per v1 field; `undefined` removes the field. */
const V1_POOLS: Record<string, unknown[]> = {
  v: [undefined, undefined, 1, '1', 2, '2', 0, null, true, -1, 'abc', [1, 2], 3],
  uuid: [UUID, UUID.toUpperCase(), 'x', undefined, [UUID]],
  creator_uuid: [CREATOR, CREATOR, '', undefined, 5],
  owner: [undefined, undefined, CREATOR, null],
  restricted_to_uuid: [undefined, CREATOR, ''],
  public: [undefined, true, false],
  disabled: [undefined, true, false, 'false', 0, 1, null],
  published_at: [undefined, '2011-04-11T08:45Z', '2011-04-11T08:45:00Z', 'x2011-04-11T08:45Zy', '', null,
    ['2011-04-11T08:45Z'], 5],
  created_at: [undefined, '2011-04-11T08:45Z', '2011-04-11T08:45:12.000Z'],
  image_size: [undefined, '16384', 16384, '', 0, 'abc'],
  files: [undefined, [], [{ sha1: 'x', size: 1, path: 'a.zfs.bz2' }], [{ path: 'a.gz', url: 'b.bz2' }],
    [{ url: 'http://h/datasets/x/a.zfs.xz' }], [{ path: 'a', compression: 'xz' }], [{ path: '', url: 'u.gz' }],
    [{ sha1: 'x' }], [null], 'x', { path: 'a.gz' }, [{ path: 5 }], [{ path: 'a.gz' }, { url: 'b.tgz' }]],
  platform_type: [undefined, 'smartos'],
  vendor_uuid: [undefined, CREATOR],
  _url: [undefined, 'http://x'],
  urn: [undefined, 'sdc:sdc:x:1'],
};

function v1Manifest(rng: Rng, base: Json): Json {
  const manifest = structuredClone(base);
  for (const [field, values] of Object.entries(V1_POOLS)) {
    if (rng() > 0.3) continue;
    const value = pick(rng, values);
    if (value === undefined) delete manifest[field];
    else manifest[field] = structuredClone(value);
  }
  return manifest;
}

/** Every way imgmanifest's upgrade fails, by the start of its message. */
const FAILURES = ['manifest does not have a "v" field', 'uuid (oldManifest.uuid) is required',
  'old DSAPI manifest does not have a "creator_uuid"', 'manifest.owner && manifest.creator_uuid',
  'manifest.restricted_to_uuid && manifest.public', 'The expression evaluated to a falsy value',
  'manifest.files.forEach is not a function', "Cannot read properties of null (reading 'compression')",
  'The "path" argument must be of type string'];

type Outcome = { ok: string } | { error: string };
function outcome(upgrade: (m: Json) => Json, manifest: Json): Outcome {
  try {
    return { ok: JSON.stringify(upgrade(structuredClone(manifest))) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

test('cross-check with imgmanifest.upgradeManifest on 2000 generated manifests', (t) => {
  const rng = prng(7);
  const bases = ['v1-dsapi/fauxnodejs-1.4.0.dsmanifest.json', 'v1-dsapi/fauxubuntu-2.2.1-zvol.dsmanifest.json',
    'v1-dsapi/smartos-1.3.12.dsmanifest.json', 'synthesized/v1-restricted-private.dsmanifest.json',
    'v2-imgapi/lx-dataset-ubuntu-16.04.json'].map((rel) => fixture(rel));
  const counts = { ok: 0 };
  const failures = new Set<string>();
  const mismatches: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const manifest = v1Manifest(rng, pick(rng, bases));
    const ours = outcome(upgradeManifest, manifest);
    const theirs = outcome(imgmanifest.upgradeManifest, manifest);
    if ('ok' in theirs) counts.ok++;
    else failures.add(theirs.error);
    if (JSON.stringify(ours) !== JSON.stringify(theirs)) {
      mismatches.push(`#${i} ${JSON.stringify(manifest)}\n  ours:   ${JSON.stringify(ours)}\n`
        + `  theirs: ${JSON.stringify(theirs)}`);
    }
  }
  t.deepEqual(mismatches.slice(0, 5), [], `${mismatches.length} mismatches`);
  t.true(counts.ok > 500, `only ${counts.ok} upgraded`);
  const unreached = FAILURES.filter((prefix) => ![...failures].some((m) => m.startsWith(prefix)));
  t.deepEqual(unreached, [], 'failures the generator never provoked');
});

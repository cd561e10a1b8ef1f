/*
 * This server's copy of the etcd index (src/cluster/index-view.ts), with no
 * etcd: what an entry keeps, and that an image this server holds as the
 * index has it costs one copy of its manifest in memory, not two.
 */
import { randomUUID } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import test from 'ava';
import type { IKeyValue } from 'etcd3';
import { Keys } from '../../src/cluster/etcd.js';
import { entryValue, IndexView } from '../../src/cluster/index-view.js';
import { manifestHash } from '../../src/manifest/hash.js';
import { normalizeManifest } from '../../src/manifest/normalize.js';
import type { Manifest } from '../../src/manifest/types.js';

const keys = new Keys('/imgsrv/');
const self = { id: 'a', url: 'http://a.example' };

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** A manifest as the store would hold it (normalized), with a description of `pad` characters. */
function manifest(pad: number): Manifest {
  const raw = {
    v: 2, uuid: randomUUID(), owner: '930896af-bf8c-48d4-885c-6573a94b1853', name: 'base-64', version: '1.0.0',
    state: 'active', disabled: false, public: true, published_at: '2026-01-02T03:04:05.000Z', type: 'zone-dataset',
    os: 'smartos', files: [{ sha1: 'a'.repeat(40), size: 1234, compression: 'gzip' }], description: 'd'.repeat(pad),
  };
  const result = normalizeManifest(raw, '2026-01-02T03:04:05.000Z');
  if (!result.ok) throw new Error(result.problems.join('; '));
  return result.value.manifest;
}

function kv(m: Manifest, rev: number): IKeyValue {
  return {
    key: Buffer.from(keys.image(m.uuid)),
    value: Buffer.from(entryValue(m, null, 'b')),
    mod_revision: String(rev),
    create_revision: String(rev),
    version: '1',
    lease: '0',
  };
}

test('an entry keeps the state and the hash, and gives each caller a manifest of its own', (t) => {
  const view = new IndexView(keys, self, () => t.fail('a good entry'));
  const m = { ...manifest(10), state: 'disabled' as const, disabled: true };
  view.put(kv(m, 7));
  const entry = view.entries.get(m.uuid)!;
  t.like(entry, { state: 'disabled', by: 'b', modRev: '7', hash: manifestHash(m), legacy: null });
  t.deepEqual(entry.manifest, m);
  entry.manifest.name = 'changed';
  t.is(entry.manifest.name, 'base-64');
  t.is(entry.manifestText, JSON.stringify(m));
});

test('entries of images held here share the store\'s manifest text; others keep their own', (t) => {
  const count = 200;
  const pad = 200_000;
  const held = new Map<string, string>();
  const manifests = Array.from({ length: count }, () => manifest(pad));
  for (const m of manifests) held.set(m.uuid, JSON.stringify(m));
  // One held image whose index version differs: it cannot share.
  const differs = manifests[0]!;
  held.set(differs.uuid, JSON.stringify({ ...differs, description: 'local' }));

  const grown = (put: (view: IndexView) => void) => {
    const view = new IndexView(keys, self, () => t.fail('a good entry'), (uuid) => held.get(uuid));
    gc();
    const before = process.memoryUsage().heapUsed;
    put(view);
    gc();
    return { view, bytes: process.memoryUsage().heapUsed - before };
  };
  const all = count * pad;
  const shared = grown((view) => manifests.forEach((m, i) => view.put(kv(m, i + 1))));
  t.true(shared.bytes < all / 10, `${shared.bytes} bytes for ${all} bytes of manifests held here`);
  t.is(shared.view.entries.get(differs.uuid)?.manifest.description, differs.description, 'the index\'s version, not the store\'s');

  held.clear();
  const own = grown((view) => manifests.forEach((m, i) => view.put(kv(m, i + 1))));
  t.true(own.bytes > all / 2, `${own.bytes} bytes for ${all} bytes of manifests held nowhere`);

  // A pull lands: the store now holds what the index has, and the entry lets go of its copy.
  for (const m of manifests) held.set(m.uuid, JSON.stringify(m));
  gc();
  const before = process.memoryUsage().heapUsed;
  for (const m of manifests) own.view.share(m.uuid);
  gc();
  t.true(before - process.memoryUsage().heapUsed > all / 2, 'sharing after a pull frees the entry\'s copies');
  held.clear();
});

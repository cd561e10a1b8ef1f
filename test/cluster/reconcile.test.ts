/*
 * The cluster's policy (src/cluster/reconcile.ts), case by case, with no
 * etcd, disk or network: one image at a time, as this server has it, as
 * the index has it, and as both last agreed on it, and what should happen.
 */
import test from 'ava';
import { manifestHash } from '../../src/manifest/hash.js';
import type { Manifest } from '../../src/manifest/types.js';
import type { IndexEntry, Tombstone } from '../../src/cluster/index-view.js';
import { reconcile, type Action, type LocalSide } from '../../src/cluster/reconcile.js';
import type { SyncedImage } from '../../src/cluster/synced.js';

const UUID = '0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f';
const OTHER = '9f8e7d6c-5b4a-4938-a726-1504f3e2d1c0';

function manifest(uuid: string, fields: Partial<Manifest> = {}): Manifest {
  return {
    v: 2,
    uuid,
    owner: '930896af-bf8c-48d4-885c-6573a94b1853',
    name: 'base-64',
    version: '1.0.0',
    state: 'active',
    disabled: false,
    public: true,
    published_at: '2026-01-02T03:04:05.000Z',
    type: 'zone-dataset',
    os: 'smartos',
    files: [{ sha1: 'a'.repeat(40), size: 1234, compression: 'gzip' }],
    ...fields,
  };
}

/** The versions of one image that a case picks from. */
const VERSIONS = {
  active: manifest(UUID),
  disabled: manifest(UUID, { state: 'disabled', disabled: true }),
  edited: manifest(UUID, { description: 'edited' }),
  otherFile: manifest(UUID, { files: [{ sha1: 'b'.repeat(40), size: 99, compression: 'gzip' }] }),
};
type Version = keyof typeof VERSIONS;
const hashOf = (v: Version) => manifestHash(VERSIONS[v]);

interface Case {
  /** The activated copy served here. */
  local?: Version;
  deletedHere?: boolean;
  obstacle?: 'broken' | 'unactivated';
  /** The index's entry, at revision 10. */
  index?: Version;
  tomb?: boolean;
  holdsHere?: boolean;
  /** The last agreement: the entry's revision then, and the local version then. */
  agreed?: { rev: string; local: Version };
  /** etcd unreachable: the copy of the index is not current. */
  offline?: boolean;
  /** Action kinds, in order (conflicts as conflict:<why>). */
  actions: string[];
  behind?: boolean;
}

function run(c: Case, uuids: string[] = [UUID]) {
  const entries = new Map<string, IndexEntry>();
  if (c.index) {
    entries.set(UUID, { manifest: VERSIONS[c.index], manifestText: JSON.stringify(VERSIONS[c.index]), state: VERSIONS[c.index].state, legacy: null, by: 'b', modRev: '10', hash: hashOf(c.index) });
  }
  const deleted = new Map<string, Tombstone>();
  if (c.tomb) deleted.set(UUID, { uuid: UUID, by: 'admin', server: 'b' });
  const local: LocalSide = {
    image: (uuid) => (uuid === UUID && c.local ? { manifest: VERSIONS[c.local], hash: hashOf(c.local) } : undefined),
    deletedHere: (uuid) => uuid === UUID && c.deletedHere === true,
    obstacle: (uuid) => (uuid === UUID ? c.obstacle : undefined),
  };
  const agreed = new Map<string, SyncedImage>();
  if (c.agreed) agreed.set(UUID, { rev: c.agreed.rev, hash: hashOf(c.agreed.local) });
  return reconcile(uuids, local, {
    listed: !c.offline,
    entries,
    deleted,
    holdsHere: (uuid) => uuid === UUID && c.holdsHere === true,
  }, agreed);
}

const kind = (a: Action) => (a.kind === 'conflict' ? `conflict:${a.why}` : a.kind);

const cases: Record<string, Case> = {
  'an image here that the index lacks is registered': { local: 'active', actions: ['register'] },
  '… but not while etcd is unreachable': { local: 'active', offline: true, actions: [], behind: true },
  'the same manifest on both sides is an agreement': { local: 'active', index: 'active', holdsHere: true, actions: ['agree'] },
  'a holder not yet listed as one adds its key': { local: 'active', index: 'active', actions: ['agree', 'hold'] },
  '… once etcd answers': { local: 'active', index: 'active', offline: true, actions: ['agree'], behind: true },
  'a change in etcd since the last agreement is applied here': {
    local: 'active', index: 'disabled', holdsHere: true, agreed: { rev: '9', local: 'active' }, actions: ['apply'],
  },
  'two sides that never agreed: the index wins': { local: 'active', index: 'disabled', holdsHere: true, actions: ['apply'] },
  'a change here since the last agreement is published': {
    local: 'disabled', index: 'active', holdsHere: true, agreed: { rev: '10', local: 'active' }, actions: ['publish'],
  },
  '… not while etcd is unreachable': {
    local: 'disabled', index: 'active', holdsHere: true, agreed: { rev: '10', local: 'active' }, offline: true, actions: [], behind: true,
  },
  'both changed: etcd moved, so the index wins': {
    local: 'disabled', index: 'edited', holdsHere: true, agreed: { rev: '9', local: 'active' }, actions: ['apply'],
  },
  'a copy that only spells the agreed manifest differently is left alone': {
    local: 'edited', index: 'active', holdsHere: true, agreed: { rev: '10', local: 'edited' }, actions: [],
  },
  'a tombstone in the index removes the copy here': { local: 'active', index: 'active', tomb: true, holdsHere: true, actions: ['remove'] },
  '… even with etcd unreachable': { local: 'active', tomb: true, offline: true, actions: ['remove'] },
  'another file under the same uuid is reported, never held': { local: 'otherFile', index: 'active', actions: ['conflict:other-file'] },
  'an image deleted here is deleted from the index': {
    index: 'active', holdsHere: true, deletedHere: true, agreed: { rev: '10', local: 'active' }, actions: ['delete', 'forget'],
  },
  'an image removed here by hand is withdrawn as held, and pulled again': {
    index: 'active', holdsHere: true, agreed: { rev: '10', local: 'active' }, actions: ['withdraw', 'forget', 'pull'],
  },
  'an image gone here while etcd is unreachable waits': {
    index: 'active', holdsHere: true, agreed: { rev: '10', local: 'active' }, offline: true, actions: ['pull'], behind: true,
  },
  'an agreement about an image deleted in the index is forgotten': { tomb: true, agreed: { rev: '10', local: 'active' }, actions: ['forget'] },
  'an active image in the index that is missing here is pulled': { index: 'active', actions: ['pull'] },
  '… also while etcd is unreachable': { index: 'active', offline: true, actions: ['pull'] },
  'a disabled image is not pulled': { index: 'disabled', actions: [] },
  'a deleted image is not pulled': { index: 'active', tomb: true, actions: [] },
  'an image deleted here is not pulled again': { index: 'active', deletedHere: true, actions: ['conflict:deleted-here'] },
  'a broken folder in the way is reported, not pulled over': { index: 'active', obstacle: 'broken', actions: ['conflict:broken-folder'] },
  'an unactivated image of that uuid here is left alone': { index: 'active', obstacle: 'unactivated', actions: [] },
  'an image neither side has needs nothing': { actions: [] },
};

for (const [title, c] of Object.entries(cases)) {
  test(title, (t) => {
    const plan = run(c);
    t.deepEqual(plan.actions.map(kind), c.actions);
    t.deepEqual([...plan.behind], c.behind ? [UUID] : []);
    for (const a of plan.actions) t.is(a.uuid, UUID);
  });
}

test('the actions carry what the loop needs to carry them out', (t) => {
  const [apply] = run(cases['a change in etcd since the last agreement is applied here']!).actions;
  t.like(apply, { kind: 'apply', localHash: hashOf('active'), entry: { modRev: '10', hash: hashOf('disabled') } });
  const [agree] = run(cases['the same manifest on both sides is an agreement']!).actions;
  t.deepEqual(agree, { kind: 'agree', uuid: UUID, rev: '10', hash: hashOf('active') });
  const [pull] = run(cases['an active image in the index that is missing here is pulled']!).actions;
  t.like(pull, { kind: 'pull', entry: { manifest: VERSIONS.active } });
  const [remove] = run(cases['a tombstone in the index removes the copy here']!).actions;
  t.like(remove, { kind: 'remove', tomb: { uuid: UUID, by: 'admin', server: 'b' } });
});

test('only the images asked about are looked at', (t) => {
  const c: Case = { local: 'active', actions: [] };
  t.deepEqual(run(c, [OTHER]).actions, []);
  t.deepEqual(run(c, [OTHER, UUID]).actions.map(kind), ['register']);
  t.deepEqual(run(c, []).actions, []);
});

/*
 * The cluster's policy, with no etcd, disk or clock: given what this server
 * serves, its copy of the index and what both sides looked like when they
 * last agreed (synced.ts), what should happen to each image.
 *
 *   - an activated image here that the index lacks is registered, with
 *     this server as its first holder (however it arrived);
 *   - an image the index holds active that is missing here is pulled;
 *     one disabled, deleted or deleted here is not;
 *   - a state or manifest change on either side goes to the other: a new
 *     revision in etcd since the last agreement wins, otherwise a new
 *     local hash is published;
 *   - a tombstone in the index removes the local copy; an image deleted
 *     here (a local tombstone) is deleted from the index;
 *   - an image this server agreed on, or is listed as holding, that it no
 *     longer serves is withdrawn as held.
 *
 * Without a current index (etcd unreachable) nothing is written to etcd:
 * such images count as behind, and local removals and pulls go on.
 */
import type { Manifest } from '../manifest/types.js';
import type { IndexEntry, Tombstone } from './index-view.js';
import type { SyncedImage } from './synced.js';

export interface LocalImage {
  manifest: Manifest;
  /** manifestHash() of the manifest. */
  hash: string;
}

/** What this server has, read from memory only. */
export interface LocalSide {
  /** An activated image this server serves. */
  image(uuid: string): LocalImage | undefined;
  /** Whether `uuid` was deleted here (it left a local tombstone). */
  deletedHere(uuid: string): boolean;
  /** Something else of that uuid is in the way: a broken folder, or an image not activated. */
  obstacle(uuid: string): 'broken' | 'unactivated' | undefined;
}

export interface IndexSide {
  /** Whether the copy is current (etcd answers): only then may etcd be written. */
  listed: boolean;
  entries: ReadonlyMap<string, IndexEntry>;
  deleted: ReadonlyMap<string, Tombstone>;
  holdsHere(uuid: string): boolean;
}

export interface LastAgreed {
  get(uuid: string): SyncedImage | undefined;
}

export type Action =
  /** Add the local image to the index, this server its first holder. */
  | { kind: 'register'; uuid: string }
  /** List this server as a holder. */
  | { kind: 'hold'; uuid: string }
  /** Both sides agree: remember the entry's revision and the local hash. */
  | { kind: 'agree'; uuid: string; rev: string; hash: string }
  /** The index's version replaces the local manifest (unless that changed meanwhile). */
  | { kind: 'apply'; uuid: string; entry: IndexEntry; localHash: string }
  /** The local manifest replaces the index's (unless etcd moved meanwhile). */
  | { kind: 'publish'; uuid: string; entry: IndexEntry }
  /** Deleted in the index: remove the local copy. */
  | { kind: 'remove'; uuid: string; tomb: Tombstone }
  /** Deleted here: delete it from the index. */
  | { kind: 'delete'; uuid: string; entry: IndexEntry }
  /** No longer served here: stop being listed as a holder. */
  | { kind: 'withdraw'; uuid: string }
  /** Forget the last agreement. */
  | { kind: 'forget'; uuid: string }
  /** Fetch the file from a holder. */
  | { kind: 'pull'; uuid: string; entry: IndexEntry }
  /** A standing problem to report once; nothing is done. */
  | { kind: 'conflict'; uuid: string; why: 'other-file' | 'broken-folder' | 'deleted-here' };

export interface Plan {
  actions: Action[];
  /** Images that need etcd to be written before both sides agree. */
  behind: Set<string>;
}

/** What to do about each of `uuids`; an image the plan does not pull is not wanted. */
export function reconcile(uuids: Iterable<string>, local: LocalSide, index: IndexSide, agreed: LastAgreed): Plan {
  const plan: Plan = { actions: [], behind: new Set() };
  for (const uuid of uuids) decide(uuid, local, index, agreed, plan);
  return plan;
}

function decide(uuid: string, local: LocalSide, index: IndexSide, agreed: LastAgreed, plan: Plan): void {
  const mine = local.image(uuid);
  if (mine) {
    held(uuid, mine, index, agreed, plan);
    return;
  }
  const entry = index.entries.get(uuid);
  const tomb = index.deleted.get(uuid);
  if (agreed.get(uuid) || index.holdsHere(uuid)) {
    if (!index.listed) {
      plan.behind.add(uuid);
    } else {
      const deleting = entry !== undefined && !tomb && local.deletedHere(uuid);
      if (deleting) plan.actions.push({ kind: 'delete', uuid, entry });
      else if (index.holdsHere(uuid)) plan.actions.push({ kind: 'withdraw', uuid });
      if (agreed.get(uuid)) plan.actions.push({ kind: 'forget', uuid });
      if (deleting) return;
    }
  }
  if (!entry || tomb || entry.state !== 'active') return;
  const obstacle = local.obstacle(uuid);
  if (obstacle === 'broken') plan.actions.push({ kind: 'conflict', uuid, why: 'broken-folder' });
  else if (obstacle) return;
  else if (local.deletedHere(uuid)) plan.actions.push({ kind: 'conflict', uuid, why: 'deleted-here' });
  else plan.actions.push({ kind: 'pull', uuid, entry });
}

/** An image this server serves. */
function held(uuid: string, mine: LocalImage, index: IndexSide, agreed: LastAgreed, plan: Plan): void {
  const tomb = index.deleted.get(uuid);
  if (tomb) {
    plan.actions.push({ kind: 'remove', uuid, tomb });
    return;
  }
  const entry = index.entries.get(uuid);
  if (!entry) {
    if (index.listed) plan.actions.push({ kind: 'register', uuid });
    else plan.behind.add(uuid);
    return;
  }
  // Equal hashes mean equal manifests, files and all: only a difference needs the manifest itself.
  if (mine.hash !== entry.hash && !sameFiles(entry.manifest, mine.manifest)) {
    plan.actions.push({ kind: 'conflict', uuid, why: 'other-file' });
    return;
  }
  const base = agreed.get(uuid);
  if (mine.hash === entry.hash) {
    plan.actions.push({ kind: 'agree', uuid, rev: entry.modRev, hash: mine.hash });
  } else if (!base || base.rev !== entry.modRev) {
    // etcd moved since both sides last agreed (or they never did): its version wins.
    plan.actions.push({ kind: 'apply', uuid, entry, localHash: mine.hash });
  } else if (base.hash === mine.hash) {
    // Agreed already: the local copy only spells the same manifest differently.
  } else if (index.listed) {
    plan.actions.push({ kind: 'publish', uuid, entry });
  } else {
    plan.behind.add(uuid);
  }
  if (!index.holdsHere(uuid)) {
    if (index.listed) plan.actions.push({ kind: 'hold', uuid });
    else plan.behind.add(uuid);
  }
}

function sameFiles(a: Manifest, b: Manifest): boolean {
  return a.files.length === b.files.length && a.files.every((f, i) => f.sha1 === b.files[i]!.sha1 && f.size === b.files[i]!.size);
}

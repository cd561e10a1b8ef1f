/*
 * Carrying out what reconcile decided for one image, here and in etcd:
 * an agreement recorded, the index's version applied to the local copy, a
 * local change or deletion published, a deletion in the index applied
 * here, a holder key withdrawn, a standing conflict reported once. The
 * loop registers and holds in batches, and the puller pulls.
 */
import { errors } from '../errors.js';
import type { Logger } from '../log.js';
import { replacement } from '../manifest/states.js';
import type { ImageRecord, ImageStore } from '../store/store.js';
import type { ImageWriter } from '../store/writer.js';
import type { IndexEntry, Tombstone } from './index-view.js';
import type { Action, LocalSide } from './reconcile.js';
import type { SyncedState } from './synced.js';
import type { IndexWrites } from './writes.js';

export interface ActionDeps {
  /** This server's id in the index. */
  id: string;
  store: ImageStore;
  writer: ImageWriter;
  writes: IndexWrites;
  synced: SyncedState;
  local: LocalSide;
  log: Logger;
  hashOf(record: ImageRecord): string;
  warnOnce(key: string, fields: Record<string, unknown>, msg: string): void;
  /** A local change landed while the index's version was being applied: look at the image again. */
  retry(uuid: string): void;
  /** The image was removed here, leaving a local tombstone. */
  removed(uuid: string): void;
}

export class ActionRunner {
  constructor(private readonly d: ActionDeps) {}

  /** Carries out one action; false when the image must stay behind (an origin kept for images built on it). */
  async act(action: Action): Promise<boolean> {
    const uuid = action.uuid;
    const record = this.d.store.get(uuid);
    switch (action.kind) {
      case 'agree':
        this.d.synced.set(uuid, action.rev, action.hash);
        return true;
      case 'apply':
        if (record) await this.applyRemote(record, action.entry, action.localHash);
        return true;
      case 'publish': {
        if (!record) return true;
        const hash = this.d.hashOf(record);
        const rev = await this.d.writes.publish(record.manifest, record.legacy, action.entry, hash);
        // etcd's newer version arrives through the watch and wins.
        if (rev === undefined) return true;
        this.d.synced.set(uuid, rev, hash);
        this.d.log.info({ uuid, state: record.state }, 'published a local change to the cluster index');
        return true;
      }
      case 'remove':
        return this.removeLocal(uuid, action.tomb);
      case 'delete':
        // Back since the pass began (its store event follows): nothing to delete.
        if (!this.d.local.image(uuid)) await this.publishDeletion(uuid, action.entry);
        return true;
      case 'withdraw':
        if (this.d.local.image(uuid)) return true;
        await this.d.writes.withdraw(uuid);
        this.d.log.info({ uuid }, 'no longer holds an indexed image; withdrew as its holder');
        return true;
      case 'forget':
        if (!this.d.local.image(uuid)) this.d.synced.delete(uuid);
        return true;
      case 'conflict':
        this.d.warnOnce(`${action.why}:${uuid}`, { uuid }, CONFLICTS[action.why]);
        return true;
      // The pass registers and holds in batches; the puller pulls.
      case 'pull':
      case 'register':
      case 'hold':
        return true;
    }
  }

  /** Applies the index's version of a manifest to the local copy. */
  private async applyRemote(record: ImageRecord, entry: IndexEntry, localHash: string): Promise<void> {
    const uuid = record.uuid;
    const theirs = entry.manifest;
    const event = record.manifest.disabled !== theirs.disabled
      ? (theirs.disabled ? 'disabled' : 'enabled')
      : 'updated';
    try {
      // A local change that landed since we looked is not overwritten blind.
      const after = await this.d.writer.change(uuid, replacement(theirs, `${event} (cluster)`),
        { via: 'cluster', by: `cluster:${entry.by}`, peer: entry.by }, { expectHash: localHash });
      this.d.synced.set(uuid, entry.modRev, this.d.hashOf(after));
      this.d.log.info({ uuid, event, by: entry.by, state: entry.state }, 'applied a change from the cluster index');
    } catch (err) {
      if (errors.ImageChanged.is(err)) {
        this.d.retry(uuid);
        return;
      }
      throw err;
    }
  }

  private async publishDeletion(uuid: string, entry: IndexEntry): Promise<void> {
    const local = this.d.store.tombstone(uuid);
    const { name, version } = entry.manifest;
    const tomb: Tombstone = {
      uuid,
      name,
      version,
      deleted_at: local?.deleted_at ?? new Date().toISOString(),
      by: local?.by ?? 'unknown',
      server: this.d.id,
    };
    if (await this.d.writes.delete(tomb)) {
      this.d.log.info({ uuid, name: tomb.name, version: tomb.version, by: tomb.by }, 'published a deletion to the cluster index');
    }
  }

  /**
   * Deleted in the index: remove the local copy (leaving a local tombstone).
   * An origin that images kept here are built on stays until they go, as
   * DeleteImage would refuse it here; false while it stays.
   */
  private async removeLocal(uuid: string, tomb: Tombstone): Promise<boolean> {
    try {
      await this.d.writer.remove(uuid, { via: 'cluster', by: `${tomb.by ?? 'unknown'} (cluster: ${tomb.server ?? 'unknown'})` });
    } catch (err) {
      if (errors.ImageHasDependentImages.is(err)) {
        this.d.warnOnce(`dependents:${uuid}`, { uuid, err: err.message },
          'deleted in the cluster index, but images here are built on it: keeping it until they are gone');
        return false;
      }
      if (this.d.store.get(uuid) !== undefined) throw err;
    }
    this.d.removed(uuid);
    this.d.synced.delete(uuid);
    this.d.log.info({ uuid, name: tomb.name, version: tomb.version, by: tomb.by, server: tomb.server }, 'removed an image deleted in the cluster');
    return true;
  }
}

const CONFLICTS = {
  'other-file': 'the index has another file for this uuid than this server; leaving this copy alone',
  'broken-folder': 'not pulling an indexed image: a broken folder of that uuid is in the way',
  'deleted-here': 'not pulling an indexed image that was deleted on this server',
} as const;

/*
 * Every write this server makes to the index. Each is one etcd
 * transaction that compares first, so two servers changing the index at
 * once never lose each other's updates: a write that loses the race does
 * nothing, and the winner's version arrives through the watch. A write
 * that succeeds is applied to the local copy at once. Registering and
 * holding, which a joining server does for every image, go in batches:
 * each etcd write costs a disk sync there, one at a time.
 */
import type { Etcd3 } from 'etcd3';
import type { Manifest } from '../manifest/types.js';
import type { Keys } from './etcd.js';
import { entryValue, type IndexEntry, type IndexView, type Tombstone } from './index-view.js';

/** Images per batched transaction: etcd allows 128 operations (and as many compares) in one. */
const BATCH = 50;

export interface Self {
  id: string;
  url: string;
}

/** Runs one etcd call, marking etcd down when it fails. */
export type EtcdCall = <T>(call: () => Promise<T>) => Promise<T>;

export class IndexWrites {
  constructor(
    private readonly client: Etcd3,
    private readonly keys: Keys,
    private readonly view: IndexView,
    private readonly self: Self,
    private readonly etcd: EtcdCall,
  ) {}

  /** The first holder of an image the index does not know yet, unless it was deleted meanwhile; the new revision, or undefined. */
  async register(manifest: Manifest, legacy: unknown, hash: string): Promise<string | undefined> {
    const uuid = manifest.uuid;
    const res = await this.etcd(() => this.client
      .if(this.keys.image(uuid), 'Create', '==', 0)
      .and(this.keys.deleted(uuid), 'Create', '==', 0)
      .then(this.client.put(this.keys.image(uuid)).value(entryValue(manifest, legacy, this.self.id)),
        this.client.put(this.keys.holder(uuid, this.self.id)).value(this.self.url))
      .commit());
    if (!res.succeeded) return undefined;
    return this.registered(manifest, legacy, hash, res.header.revision);
  }

  private registered(manifest: Manifest, legacy: unknown, hash: string, rev: string, into?: Map<string, string>): string {
    const uuid = manifest.uuid;
    this.view.wrote(manifest, legacy, this.self.id, rev, hash);
    this.view.setHolder(uuid, this.self.id, { url: this.self.url, rev });
    into?.set(uuid, rev);
    return rev;
  }

  /**
   * Registers many images at once, in transactions of BATCH; a batch that
   * loses a race (one image registered or deleted meanwhile) is retried
   * image by image. The revisions of those registered here, by uuid.
   */
  async registerMany(images: { manifest: Manifest; legacy: unknown; hash: string }[]): Promise<Map<string, string>> {
    const done = new Map<string, string>();
    for (let i = 0; i < images.length; i += BATCH) {
      const batch = images.slice(i, i + BATCH);
      if (batch.length > 1) {
        let txn = this.client.if(this.keys.image(batch[0]!.manifest.uuid), 'Create', '==', 0);
        for (const [n, { manifest }] of batch.entries()) {
          if (n > 0) txn = txn.and(this.keys.image(manifest.uuid), 'Create', '==', 0);
          txn = txn.and(this.keys.deleted(manifest.uuid), 'Create', '==', 0);
        }
        const res = await this.etcd(() => txn
          .then(...batch.flatMap(({ manifest, legacy }) => [
            this.client.put(this.keys.image(manifest.uuid)).value(entryValue(manifest, legacy, this.self.id)),
            this.client.put(this.keys.holder(manifest.uuid, this.self.id)).value(this.self.url),
          ]))
          .commit());
        if (res.succeeded) {
          for (const { manifest, legacy, hash } of batch) this.registered(manifest, legacy, hash, res.header.revision, done);
          continue;
        }
      }
      for (const { manifest, legacy, hash } of batch) {
        const rev = await this.register(manifest, legacy, hash);
        if (rev !== undefined) done.set(manifest.uuid, rev);
      }
    }
    return done;
  }

  /** Lists this server as a holder of many images at once, as registerMany does; those it now holds. */
  async holdMany(uuids: string[]): Promise<Set<string>> {
    const done = new Set<string>();
    for (let i = 0; i < uuids.length; i += BATCH) {
      const batch = uuids.slice(i, i + BATCH);
      if (batch.length > 1) {
        let txn = this.client.if(this.keys.deleted(batch[0]!), 'Create', '==', 0);
        for (const [n, uuid] of batch.entries()) {
          if (n > 0) txn = txn.and(this.keys.deleted(uuid), 'Create', '==', 0);
          txn = txn.and(this.keys.image(uuid), 'Create', '>', 0);
        }
        const res = await this.etcd(() => txn
          .then(...batch.map((uuid) => this.client.put(this.keys.holder(uuid, this.self.id)).value(this.self.url)))
          .commit());
        if (res.succeeded) {
          for (const uuid of batch) {
            this.view.setHolder(uuid, this.self.id, { url: this.self.url, rev: res.header.revision });
            done.add(uuid);
          }
          continue;
        }
      }
      for (const uuid of batch) if (await this.hold(uuid)) done.add(uuid);
    }
    return done;
  }

  /** Lists this server as a holder of an indexed image that is not deleted. */
  async hold(uuid: string): Promise<boolean> {
    const res = await this.etcd(() => this.client
      .if(this.keys.deleted(uuid), 'Create', '==', 0)
      .and(this.keys.image(uuid), 'Create', '>', 0)
      .then(this.client.put(this.keys.holder(uuid, this.self.id)).value(this.self.url))
      .commit());
    if (res.succeeded) this.view.setHolder(uuid, this.self.id, { url: this.self.url, rev: res.header.revision });
    return res.succeeded;
  }

  /** Replaces the entry with a local change, unless etcd moved since `entry`; the new revision, or undefined. */
  async publish(manifest: Manifest, legacy: unknown, entry: IndexEntry, hash: string): Promise<string | undefined> {
    const uuid = manifest.uuid;
    const res = await this.etcd(() => this.client
      .if(this.keys.image(uuid), 'Mod', '==', entry.modRev)
      .then(this.client.put(this.keys.image(uuid)).value(entryValue(manifest, legacy, this.self.id)))
      .commit());
    if (!res.succeeded) return undefined;
    const rev = res.header.revision;
    this.view.wrote(manifest, legacy, this.self.id, rev, hash);
    return rev;
  }

  /** Leaves a tombstone and removes the entry and its holders, unless someone deleted it first. */
  async delete(tomb: Tombstone): Promise<boolean> {
    const uuid = tomb.uuid;
    const res = await this.etcd(() => this.client
      .if(this.keys.deleted(uuid), 'Create', '==', 0)
      .then(
        this.client.put(this.keys.deleted(uuid)).value(JSON.stringify(tomb)),
        this.client.delete().key(this.keys.image(uuid)),
        this.client.delete().prefix(this.keys.holders(uuid)),
      )
      .commit());
    if (res.succeeded) {
      this.view.deleted.set(uuid, tomb);
      this.view.entries.delete(uuid);
      this.view.holders.delete(uuid);
    }
    return res.succeeded;
  }

  /** Stops listing this server as a holder. */
  async withdraw(uuid: string): Promise<void> {
    await this.etcd(() => this.client.delete().key(this.keys.holder(uuid, this.self.id)).exec());
    this.view.removeHolder(uuid, this.self.id);
  }
}

/*
 * What this server last agreed with the index about each image: the etcd
 * revision of the image's entry and a hash of the local manifest at that
 * moment. Comparing both sides against it tells which side changed since:
 * a new revision in etcd is a change to apply here; a new local hash with
 * the same revision is a change made here (HTTP, the images CLI, verify
 * --repair) to publish. Kept in a state file of the store, so changes
 * made while the server was stopped are still told apart after a restart.
 */
import type { Logger } from '../log.js';
import type { ImageStore } from '../store/store.js';

const SAVE_DELAY_MS = 1000;

export interface SyncedImage {
  /** mod_revision of <prefix>images/<uuid> when both sides last agreed. */
  rev: string;
  /** manifestHash() of the local manifest then. */
  hash: string;
}

interface SyncedFile {
  v: 1;
  /** etcd's cluster_id and the prefix: a different etcd or prefix makes the revisions meaningless. */
  etcd_cluster: string;
  prefix: string;
  images: Record<string, SyncedImage>;
}

export class SyncedState {
  private images = new Map<string, SyncedImage>();
  private etcdCluster = '';
  private dirty = false;
  private saving: Promise<void> | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly store: ImageStore, private readonly prefix: string, private readonly log: Logger) {
  }

  load(): void {
    let raw: SyncedFile;
    try {
      const text = this.store.readState('cluster');
      if (text === undefined) return;
      raw = JSON.parse(text) as SyncedFile;
    } catch (err) {
      this.log.warn({ err }, 'cluster sync state unreadable; starting afresh');
      return;
    }
    if (raw?.v !== 1 || raw.prefix !== this.prefix || typeof raw.images !== 'object' || raw.images === null) return;
    this.etcdCluster = String(raw.etcd_cluster ?? '');
    for (const [uuid, s] of Object.entries(raw.images)) {
      if (typeof s?.rev === 'string' && typeof s.hash === 'string') this.images.set(uuid, { rev: s.rev, hash: s.hash });
    }
  }

  /** Forgets everything if the state was recorded against another etcd cluster. */
  etcdIs(clusterId: string): void {
    if (this.etcdCluster === clusterId) return;
    if (this.etcdCluster !== '' && this.images.size > 0) {
      this.log.warn({ was: this.etcdCluster, now: clusterId }, 'etcd is another cluster than before; comparing every image afresh');
      this.images.clear();
    }
    this.etcdCluster = clusterId;
    this.dirty = true;
  }

  get(uuid: string): SyncedImage | undefined {
    return this.images.get(uuid);
  }

  uuids(): string[] {
    return [...this.images.keys()];
  }

  set(uuid: string, rev: string, hash: string): void {
    const known = this.images.get(uuid);
    if (known?.rev === rev && known.hash === hash) return;
    this.images.set(uuid, { rev, hash });
    this.dirty = true;
  }

  delete(uuid: string): void {
    if (this.images.delete(uuid)) this.dirty = true;
  }

  /**
   * Writes the file within a second: a joining server agrees on images one
   * by one, and the whole file is not rewritten for each. What a crash
   * loses of that second costs a comparison, not a change: a side that
   * matches the index agrees with it again.
   */
  saveSoon(): void {
    if (!this.dirty || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.save();
    }, SAVE_DELAY_MS).unref();
  }

  /** Writes the file now if anything changed since the last write. */
  save(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.saving ??= this.write().finally(() => {
      this.saving = null;
    });
    return this.saving;
  }

  private async write(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      const body: SyncedFile = { v: 1, etcd_cluster: this.etcdCluster, prefix: this.prefix, images: Object.fromEntries(this.images) };
      try {
        await this.store.writeState('cluster', `${JSON.stringify(body)}\n`);
      } catch (err) {
        this.dirty = true;
        this.log.warn({ err }, 'cannot save the cluster sync state');
        return;
      }
    }
  }
}

/*
 * What this server last agreed with the index about each image: the etcd
 * revision of the image's entry and a hash of the local manifest at that
 * moment. Comparing both sides against it tells which side changed since:
 * a new revision in etcd is a change to apply here; a new local hash with
 * the same revision is a change made here (HTTP, the images CLI, verify
 * --repair) to publish. Kept in <serve_dir>/.cluster/synced.json, so changes
 * made while the server was stopped are still told apart after a restart.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log.js';
import { writeFileAtomic } from '../store/atomic.js';
import type { Layout } from '../store/layout.js';

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
  private readonly file: string;
  private images = new Map<string, SyncedImage>();
  private etcdCluster = '';
  private dirty = false;
  private saving: Promise<void> | null = null;

  constructor(private readonly layout: Layout, private readonly prefix: string, private readonly log: Logger) {
    this.file = path.join(layout.root, '.cluster', 'synced.json');
  }

  load(): void {
    let raw: SyncedFile;
    try {
      raw = JSON.parse(fs.readFileSync(this.file, 'utf8')) as SyncedFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err, file: this.file }, 'cluster sync state unreadable; starting afresh');
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

  /** Writes the file if anything changed since the last write. */
  save(): Promise<void> {
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
        await fs.promises.mkdir(path.dirname(this.file), { recursive: true });
        await writeFileAtomic(this.file, `${JSON.stringify(body)}\n`, this.layout.stagingRoot());
      } catch (err) {
        this.dirty = true;
        this.log.warn({ err }, 'cannot save the cluster sync state');
        return;
      }
    }
  }
}

/** Manifests are never changed in place (a change makes a new record), so a hash can be kept with its object. */
const hashes = new WeakMap<object, string>();

/** A hash of a manifest that does not depend on the order of its keys. */
export function manifestHash(manifest: object): string {
  let hash = hashes.get(manifest);
  if (hash === undefined) {
    hash = createHash('sha1').update(stableJson(manifest)).digest('hex');
    hashes.set(manifest, hash);
  }
  return hash;
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

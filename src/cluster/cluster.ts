/*
 * Replication through etcd. The index lives in etcd (layout in etcd.ts):
 * one entry per image with its manifest, one key per (image, server) that
 * holds its file, a tombstone per deleted image, and a leased key per live
 * server. etcd is the only engine: every write that could race another
 * server's is an etcd transaction that compares revisions first.
 *
 * Each server keeps a copy of the index in memory (listed once, then kept
 * current by a watch; listed again after any disconnection, which also
 * covers history compacted while it was away) and reconciles it with its
 * own store whenever either side moves:
 *
 *   - an activated image here that the index lacks is registered, with
 *     this server as its first holder (however it arrived: HTTP,
 *     import-image, a mirror run, a serve_dir that predates the cluster);
 *   - an image in the index that is missing here is pulled from a holder
 *     (puller.ts), and this server then adds itself as a holder;
 *   - a state or manifest change on either side goes to the other, decided
 *     by what both sides looked like when they last agreed (synced.ts);
 *   - a tombstone in the index removes the local copy; an image deleted
 *     here (it leaves a local tombstone) is deleted from the index.
 *
 * When etcd cannot be reached the server goes on serving what it holds,
 * keeps pulling what it already knew about, and catches up (both ways)
 * once etcd answers again. Each server lists and serves only what it holds.
 */
import fs from 'node:fs';
import type { Etcd3, IKeyValue, Lease, Watcher } from 'etcd3';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { normalizeManifest } from '../manifest/normalize.js';
import { isObject, type Manifest } from '../manifest/types.js';
import { withHistory } from '../store/sidecar.js';
import type { ImageRecord, ImageStore } from '../store/store.js';
import type { ImageWriter } from '../store/writer.js';
import { Keys, createClient, listAll, nextRevision, watchFrom, withTimeout } from './etcd.js';
import { Puller, type Holder, type IndexEntry } from './puller.js';
import { defaultServerId, type ClusterConfig } from './schema.js';
import { SyncedState, manifestHash } from './synced.js';

export interface ClusterStatus {
  /** This server's id in the index. */
  id: string;
  etcd: 'up' | 'down';
  /** Other servers alive in the cluster now. */
  peers: number;
  /** Images in the index. */
  indexed: number;
  /** Images in the index this server does not hold yet (pulls waiting or running). */
  pending: number;
  pulling: number;
  /** Seconds since this server was last level with the index (0: it is). */
  lag_seconds: number;
  /** The etcd revision this server has seen. */
  revision: string | null;
}

export interface ClusterDeps {
  config: Readonly<Config>;
  store: ImageStore;
  writer: ImageWriter;
  log: Logger;
  version: string;
}

interface Tombstone {
  uuid: string;
  name?: string;
  version?: string;
  deleted_at?: string;
  by?: string;
  server?: string;
}

/** How long the presence key outlives a server that stopped answering. */
const PRESENCE_TTL_S = 10;
const RESYNC_MIN_MS = 250;
const RESYNC_MAX_MS = 2000;
/** Events that arrive together are handled together. */
const BATCH_MS = 20;

class Stale extends Error {}

/** An etcd call failed: the pass stops, and the server lists the index again once etcd answers. */
class EtcdDown extends Error {}

const activated = (r: ImageRecord) => r.manifest.state === 'active' || r.manifest.state === 'disabled';

export class Cluster {
  readonly id: string;
  readonly url: string;
  private readonly cfg: ClusterConfig;
  private readonly keys: Keys;
  private readonly log: Logger;
  private readonly store: ImageStore;
  private readonly writer: ImageWriter;
  private readonly client: Etcd3;
  private readonly synced: SyncedState;
  private readonly puller: Puller;
  private readonly version: string;

  /* The index as last read from etcd. */
  private readonly index = new Map<string, IndexEntry>();
  private readonly holders = new Map<string, Map<string, string>>();
  private readonly deleted = new Map<string, Tombstone>();
  private readonly servers = new Map<string, string>();
  private revision: string | null = null;

  private watcher: Watcher | undefined;
  private lease: Lease | undefined;
  private listed = false;
  private etcdUp = false;
  private stopped = false;
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private kicked = false;
  private lastLevelAt = Date.now();
  /** Whether the loss of etcd was logged (once per outage). */
  private downReported = false;
  private level = false;
  /** Problems already logged, so a standing conflict is reported once. */
  private readonly warned = new Set<string>();
  private readonly onStoreChange = () => this.kick();

  constructor(deps: ClusterDeps) {
    const cfg = deps.config.cluster;
    if (!cfg) throw new Error('no cluster configuration');
    this.cfg = cfg;
    this.id = cfg.id ?? defaultServerId(cfg.advertise_url);
    this.url = cfg.advertise_url.replace(/\/+$/, '');
    const prefix = cfg.etcd.prefix.endsWith('/') ? cfg.etcd.prefix : `${cfg.etcd.prefix}/`;
    this.keys = new Keys(prefix);
    this.log = deps.log.child({ component: 'cluster', server: this.id });
    this.store = deps.store;
    this.writer = deps.writer;
    this.client = createClient(cfg, deps.config.config_path);
    this.synced = new SyncedState(deps.store.layout, prefix, this.log);
    const auth = cfg.peer_auth;
    this.puller = new Puller({
      store: deps.store,
      writer: deps.writer,
      log: this.log,
      concurrency: cfg.concurrency,
      authorization: auth ? `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` : undefined,
      userAgent: `smartos-image-server/${deps.version} (cluster ${this.id})`,
      holdersOf: (uuid) => this.holdersOf(uuid),
      indexed: (uuid) => this.index.has(uuid),
      pulled: () => this.kick(),
    });
    this.version = deps.version;
  }

  /** Starts in the background: the server serves whether or not etcd answers. */
  start(): void {
    this.synced.load();
    this.store.on('change', this.onStoreChange);
    this.log.info({ url: this.url, endpoints: this.cfg.etcd.endpoints, prefix: this.keys.prefix }, 'joining the cluster');
    this.running = this.run();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.store.off('change', this.onStoreChange);
    this.puller.stop();
    this.wake?.();
    await withTimeout(this.running ?? Promise.resolve(), 2000);
    await withTimeout(this.watcher?.cancel() ?? Promise.resolve(), 1000);
    // Leave at once rather than when the lease runs out.
    await withTimeout(this.lease?.revoke() ?? Promise.resolve(), 1000);
    await this.synced.save();
    this.client.close();
  }

  status(): ClusterStatus {
    let peers = 0;
    for (const id of this.servers.keys()) if (id !== this.id) peers++;
    return {
      id: this.id,
      etcd: this.etcdUp ? 'up' : 'down',
      peers,
      indexed: this.index.size,
      pending: this.puller.pending(),
      pulling: this.puller.pulling(),
      lag_seconds: this.level ? 0 : Math.round((Date.now() - this.lastLevelAt) / 100) / 10,
      revision: this.revision,
    };
  }

  /** Pull counts since start, for metrics. */
  pullCounts(): { succeeded: number; failed: number } {
    return this.puller.counts;
  }

  /** Something changed (store, index, a pull ended): reconcile soon. */
  private kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    let delay = RESYNC_MIN_MS;
    while (!this.stopped) {
      if (!this.listed) {
        try {
          await this.relist();
          delay = RESYNC_MIN_MS;
        } catch (err) {
          this.down(err);
          // Offline, the server still pulls what it knew of and applies known deletions.
          await this.reconcileSafely();
          await this.pause(delay);
          delay = Math.min(RESYNC_MAX_MS, delay * 2);
          continue;
        }
      }
      await this.ensurePresence();
      await this.reconcileSafely();
      await this.sleep(this.cfg.sync_interval_ms);
    }
  }

  private async reconcileSafely(): Promise<void> {
    try {
      await this.reconcile();
    } catch (err) {
      if (!(err instanceof EtcdDown)) this.log.error({ err }, 'cluster reconciliation failed');
      this.level = false;
    }
    await this.synced.save();
  }

  /** Runs one etcd call; a failure marks etcd down. */
  private async etcd<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      this.down(err);
      throw new EtcdDown(errorMessage(err));
    }
  }

  /** One image's step; its own failure (a disk error, say) does not hold up the others. */
  private async step(uuid: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      if (err instanceof EtcdDown) throw err;
      this.log.warn({ uuid, err: errorMessage(err) }, 'cluster step failed; will retry');
    }
  }

  /** Waits `ms` whatever happens, unless the server stops. */
  private async pause(ms: number): Promise<void> {
    if (this.stopped) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        if (!this.stopped) return;
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }

  /** Waits `ms`, or less if kicked; batches what arrives together. */
  private async sleep(ms: number): Promise<void> {
    if (!this.kicked && !this.stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    if (!this.stopped) await new Promise((r) => setTimeout(r, BATCH_MS));
    this.kicked = false;
  }

  private down(err: unknown): void {
    if (!this.downReported) this.log.warn({ err: errorMessage(err) }, 'etcd unreachable; serving what this server holds');
    this.downReported = true;
    this.etcdUp = false;
    this.listed = false;
  }

  /** Reads the whole index at one revision, then watches from the next. */
  private async relist(): Promise<void> {
    const first = this.revision === null;
    const old = this.watcher;
    this.watcher = undefined;
    if (old) await withTimeout(old.cancel(), 1000);
    const listing = await listAll(this.client, this.keys.prefix);
    this.index.clear();
    this.holders.clear();
    this.deleted.clear();
    this.servers.clear();
    for (const kv of listing.kvs) this.applyPut(kv);
    this.revision = listing.revision;
    this.synced.etcdIs(listing.clusterId);
    this.watcher = await watchFrom(this.client, this.keys.prefix, nextRevision(listing.revision), {
      put: (kv) => {
        this.applyPut(kv);
        this.kick();
      },
      delete: (kv) => {
        this.applyDelete(kv);
        this.kick();
      },
      lost: (err) => {
        this.down(err);
        this.kick();
      },
    });
    this.etcdUp = true;
    this.listed = true;
    this.log[this.downReported || first ? 'info' : 'debug']({ revision: listing.revision, images: this.index.size, servers: this.servers.size },
      'index listed from etcd; watching');
    this.downReported = false;
  }

  private applyPut(kv: IKeyValue): void {
    const key = this.keys.parse(kv.key.toString());
    this.seen(kv.mod_revision);
    if (!key) return;
    const text = kv.value.toString();
    switch (key.kind) {
      case 'image': {
        const entry = parseEntry(text, key.uuid, kv.mod_revision);
        if (entry) this.index.set(key.uuid, entry);
        else this.warnOnce(`bad:${key.uuid}:${kv.mod_revision}`, { uuid: key.uuid }, 'ignoring an index entry that is not a manifest');
        break;
      }
      case 'holder': {
        let m = this.holders.get(key.uuid);
        if (!m) this.holders.set(key.uuid, (m = new Map()));
        m.set(key.server, text.replace(/\/+$/, ''));
        break;
      }
      case 'deleted': {
        let tomb: Tombstone = { uuid: key.uuid };
        try {
          const parsed: unknown = JSON.parse(text);
          if (isObject(parsed)) tomb = { ...(parsed as unknown as Tombstone), uuid: key.uuid };
        } catch {
          // a bare key is tombstone enough
        }
        this.deleted.set(key.uuid, tomb);
        break;
      }
      case 'server':
        try {
          const parsed: unknown = JSON.parse(text);
          if (isObject(parsed) && typeof parsed.url === 'string') this.servers.set(key.server, parsed.url);
        } catch {
          // not a server's announcement
        }
        break;
    }
  }

  private applyDelete(kv: IKeyValue): void {
    const key = this.keys.parse(kv.key.toString());
    this.seen(kv.mod_revision);
    if (!key) return;
    switch (key.kind) {
      case 'image':
        this.index.delete(key.uuid);
        break;
      case 'holder':
        this.holders.get(key.uuid)?.delete(key.server);
        if (this.holders.get(key.uuid)?.size === 0) this.holders.delete(key.uuid);
        break;
      case 'deleted':
        this.deleted.delete(key.uuid);
        break;
      case 'server':
        this.servers.delete(key.server);
        break;
    }
  }

  private seen(revision: string): void {
    if (this.revision === null || BigInt(revision) > BigInt(this.revision)) this.revision = revision;
  }

  private holdersOf(uuid: string): Holder[] {
    const out: Holder[] = [];
    for (const [id, url] of this.holders.get(uuid) ?? []) {
      if (id === this.id || url === this.url || !/^https?:\/\//.test(url)) continue;
      out.push({ id, url, live: this.servers.has(id) });
    }
    return out;
  }

  private holdsHere(uuid: string): boolean {
    return this.holders.get(uuid)?.has(this.id) ?? false;
  }

  /** Announces this server as alive, on a lease that ends when it stops answering. */
  private async ensurePresence(): Promise<void> {
    if (this.lease || !this.listed || this.stopped) return;
    const lease = this.client.lease(PRESENCE_TTL_S, { autoKeepAlive: true });
    this.lease = lease;
    lease.on('lost', () => {
      if (this.lease === lease) this.lease = undefined;
      this.kick();
    });
    try {
      await lease.put(this.keys.server(this.id)).value(JSON.stringify({
        url: this.url, version: this.version, started_at: new Date().toISOString(),
      }));
    } catch (err) {
      if (this.lease === lease) this.lease = undefined;
      void lease.revoke().catch(() => undefined);
      this.down(err);
    }
  }

  /* ---------------------------------------------------------------- reconcile */

  private async reconcile(): Promise<void> {
    const local = new Map<string, ImageRecord>();
    for (const r of this.store.list()) if (activated(r)) local.set(r.uuid, r);
    let behind = 0;

    for (const [uuid, record] of local) {
      if (this.stopped) return;
      await this.step(uuid, async () => {
        const tomb = this.deleted.get(uuid);
        if (tomb) {
          if (!(await this.removeLocal(uuid, tomb))) behind++;
          return;
        }
        const entry = this.index.get(uuid);
        if (!entry) {
          if (this.listed) await this.register(record);
          else behind++;
          return;
        }
        if (!sameFiles(entry.manifest, record.manifest)) {
          this.warnOnce(`files:${uuid}`, { uuid }, 'the index has another file for this uuid than this server; leaving this copy alone');
          return;
        }
        const hash = manifestHash(record.manifest);
        const base = this.synced.get(uuid);
        if (hash === entry.hash) {
          this.synced.set(uuid, entry.modRev, hash);
        } else if (!base || base.rev !== entry.modRev) {
          // etcd moved since both sides last agreed (or they never did): its version wins.
          await this.applyRemote(record, entry, hash);
        } else if (base.hash === hash) {
          // Agreed already: the local copy only spells the same manifest differently.
        } else if (this.listed) {
          await this.publishChange(record, entry, hash);
        } else {
          behind++;
        }
        if (!this.holdsHere(uuid)) {
          if (this.listed) await this.addHolder(uuid);
          else behind++;
        }
      });
    }

    // Images this server had agreed on, or is listed as holding, that it no longer serves.
    const gone = new Set([...this.synced.uuids(), ...[...this.holders.keys()].filter((u) => this.holdsHere(u))]);
    for (const uuid of gone) {
      // The pass awaited etcd and the disk since `local` was taken: look again.
      if (local.has(uuid) || this.isLocal(uuid) || this.stopped) continue;
      if (!this.listed) {
        behind++;
        continue;
      }
      await this.step(uuid, async () => {
        const entry = this.index.get(uuid);
        if (entry && !this.deleted.has(uuid) && this.hasLocalTombstone(uuid)) {
          await this.publishDeletion(uuid, entry);
        } else if (this.holdsHere(uuid)) {
          // Removed by hand, or no longer loads: stop offering it.
          await this.etcd(() => this.client.delete().key(this.keys.holder(uuid, this.id)).exec());
          this.holders.get(uuid)?.delete(this.id);
          this.log.info({ uuid }, 'no longer holds an indexed image; withdrew as its holder');
        }
        this.synced.delete(uuid);
      });
    }

    const toPull = new Map<string, IndexEntry>();
    for (const [uuid, entry] of this.index) {
      if (local.has(uuid) || this.deleted.has(uuid) || this.store.get(uuid) || this.puller.isPulling(uuid)) continue;
      if (fs.existsSync(this.store.layout.imageDir(uuid))) {
        // A folder is there that does not serve: broken, or still being written by another process.
        if (this.store.brokenImages().has(uuid)) {
          this.warnOnce(`folder:${uuid}`, { uuid }, 'not pulling an indexed image: a broken folder of that uuid is in the way');
        }
        continue;
      }
      if (this.hasLocalTombstone(uuid)) {
        this.warnOnce(`tomb:${uuid}`, { uuid }, 'not pulling an indexed image that was deleted on this server');
        continue;
      }
      toPull.set(uuid, entry);
    }
    this.puller.plan(toPull);

    const level = this.listed && behind === 0 && this.puller.pending() === 0;
    if (level) this.lastLevelAt = Date.now();
    this.level = level;
  }

  /** First holder of an image the index does not know yet, unless it was deleted meanwhile. */
  private async register(record: ImageRecord): Promise<void> {
    const uuid = record.uuid;
    const hash = manifestHash(record.manifest);
    const value = entryValue(record.manifest, record.legacy, this.id);
    const res = await this.etcd(() => this.client
      .if(this.keys.image(uuid), 'Create', '==', 0)
      .and(this.keys.deleted(uuid), 'Create', '==', 0)
      .then(this.client.put(this.keys.image(uuid)).value(value), this.client.put(this.keys.holder(uuid, this.id)).value(this.url))
      .commit());
    if (!res.succeeded) return; // someone else registered or deleted it: the watch brings that.
    const rev = res.header.revision;
    this.index.set(uuid, { manifest: record.manifest, legacy: record.legacy as Record<string, unknown> | null, by: this.id, modRev: rev, hash });
    this.addHolderLocally(uuid);
    this.synced.set(uuid, rev, hash);
    this.log.info({ uuid, name: record.manifest.name, version: record.manifest.version }, 'registered image in the cluster index');
  }

  private async addHolder(uuid: string): Promise<void> {
    const res = await this.etcd(() => this.client
      .if(this.keys.deleted(uuid), 'Create', '==', 0)
      .and(this.keys.image(uuid), 'Create', '>', 0)
      .then(this.client.put(this.keys.holder(uuid, this.id)).value(this.url))
      .commit());
    if (res.succeeded) {
      this.addHolderLocally(uuid);
      this.log.debug({ uuid }, 'listed as a holder');
    }
  }

  private addHolderLocally(uuid: string): void {
    let m = this.holders.get(uuid);
    if (!m) this.holders.set(uuid, (m = new Map()));
    m.set(this.id, this.url);
  }

  /** A change made here (state, manifest) goes to the index, unless etcd moved meanwhile. */
  private async publishChange(record: ImageRecord, entry: IndexEntry, hash: string): Promise<void> {
    const uuid = record.uuid;
    const res = await this.etcd(() => this.client
      .if(this.keys.image(uuid), 'Mod', '==', entry.modRev)
      .then(this.client.put(this.keys.image(uuid)).value(entryValue(record.manifest, record.legacy, this.id)))
      .commit());
    if (!res.succeeded) return; // etcd's newer version arrives through the watch and wins.
    const rev = res.header.revision;
    this.index.set(uuid, { ...entry, manifest: record.manifest, by: this.id, modRev: rev, hash });
    this.synced.set(uuid, rev, hash);
    this.log.info({ uuid, state: record.manifest.state }, 'published a local change to the cluster index');
  }

  /** Applies the index's version of a manifest to the local copy. */
  private async applyRemote(record: ImageRecord, entry: IndexEntry, localHash: string): Promise<void> {
    const uuid = record.uuid;
    const event = record.manifest.disabled !== entry.manifest.disabled
      ? (entry.manifest.disabled ? 'disabled' : 'enabled')
      : 'updated';
    try {
      const after = await this.writer.change(uuid, ({ sidecar }) => {
        // Under the image's lock: a local change that landed since we looked is not overwritten blind.
        const now = this.store.refreshNow(uuid);
        if (!now || manifestHash(now.manifest) !== localHash) throw new Stale();
        return {
          manifest: structuredClone(entry.manifest) as unknown as Record<string, unknown>,
          sidecar: withHistory(sidecar, `${event} (cluster)`, `cluster:${entry.by}`),
        };
      });
      this.synced.set(uuid, entry.modRev, manifestHash(after.manifest));
      this.log.info({ uuid, event, by: entry.by, state: entry.manifest.state }, 'applied a change from the cluster index');
    } catch (err) {
      if (err instanceof Stale) {
        this.kick();
        return;
      }
      throw err;
    }
  }

  private async publishDeletion(uuid: string, entry: IndexEntry): Promise<void> {
    const local = readLocalTombstone(this.store.layout.tombstonePath(uuid));
    const tomb: Tombstone = {
      uuid,
      name: entry.manifest.name,
      version: entry.manifest.version,
      deleted_at: local?.deleted_at ?? new Date().toISOString(),
      by: local?.by ?? 'unknown',
      server: this.id,
    };
    const res = await this.etcd(() => this.client
      .if(this.keys.deleted(uuid), 'Create', '==', 0)
      .then(
        this.client.put(this.keys.deleted(uuid)).value(JSON.stringify(tomb)),
        this.client.delete().key(this.keys.image(uuid)),
        this.client.delete().prefix(this.keys.holders(uuid)),
      )
      .commit());
    if (res.succeeded) {
      this.deleted.set(uuid, tomb);
      this.index.delete(uuid);
      this.holders.delete(uuid);
      this.log.info({ uuid, name: tomb.name, version: tomb.version, by: tomb.by }, 'published a deletion to the cluster index');
    }
  }

  /**
   * Deleted in the index: remove the local copy (leaving a local tombstone).
   * An origin that images kept here are built on stays until they go, as
   * DeleteImage would refuse it here; false while it stays.
   */
  private async removeLocal(uuid: string, tomb: Tombstone): Promise<boolean> {
    const dependents = this.store.dependents(uuid).filter((d) => !this.deleted.has(d.uuid));
    if (dependents.length > 0) {
      this.warnOnce(`dependents:${uuid}`, { uuid, dependents: dependents.map((d) => d.uuid) },
        'deleted in the cluster index, but images here are built on it: keeping it until they are gone');
      return false;
    }
    try {
      await this.writer.remove(uuid, `${tomb.by ?? 'unknown'} (cluster: ${tomb.server ?? 'unknown'})`);
    } catch (err) {
      if (this.store.get(uuid) !== undefined) throw err;
    }
    this.synced.delete(uuid);
    this.log.info({ uuid, name: tomb.name, version: tomb.version, by: tomb.by, server: tomb.server }, 'removed an image deleted in the cluster');
    return true;
  }

  private isLocal(uuid: string): boolean {
    const record = this.store.get(uuid);
    return record !== undefined && activated(record);
  }

  private hasLocalTombstone(uuid: string): boolean {
    return fs.existsSync(this.store.layout.tombstonePath(uuid));
  }

  private warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, msg);
  }
}

function entryValue(manifest: Manifest, legacy: unknown, by: string): string {
  return JSON.stringify({ manifest, legacy: legacy ?? null, by, at: new Date().toISOString() });
}

function parseEntry(text: string, uuid: string, modRev: string): IndexEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(value) || !isObject(value.manifest)) return undefined;
  // Only what this server would load from its own serve_dir: a pulled copy must serve.
  const checked = normalizeManifest(value.manifest, new Date().toISOString());
  if (!checked.ok || checked.value.manifest.uuid !== uuid || checked.value.manifest.files.length !== 1) return undefined;
  const manifest = checked.value.manifest;
  if (manifest.state !== 'active' && manifest.state !== 'disabled') return undefined;
  return {
    manifest,
    legacy: isObject(value.legacy) ? value.legacy : null,
    by: typeof value.by === 'string' ? value.by : 'unknown',
    modRev,
    hash: manifestHash(manifest),
  };
}

function sameFiles(a: Manifest, b: Manifest): boolean {
  return a.files.length === b.files.length && a.files.every((f, i) => f.sha1 === b.files[i]!.sha1 && f.size === b.files[i]!.size);
}

function readLocalTombstone(file: string): Tombstone | undefined {
  try {
    const value: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    return isObject(value) ? (value as unknown as Tombstone) : undefined;
  } catch {
    return undefined;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/*
 * Replication through etcd. The index lives in etcd (layout in etcd.ts):
 * one entry per image with its manifest, one key per (image, server) that
 * holds its file, a tombstone per deleted image, and a leased key per live
 * server. etcd is the only engine: every write that could race another
 * server's is an etcd transaction that compares revisions first
 * (writes.ts).
 *
 * The parts: index-view.ts keeps this server's copy of the index (listed
 * once, then kept current by a watch; listed again after any
 * disconnection, which also covers history compacted while it was away);
 * reconcile.ts decides, without etcd or disk, what each image needs;
 * actions.ts carries out those decisions here and in etcd; puller.ts
 * fetches files from holders, and suspects.ts tells a holder whose bytes
 * did not match, which then checks its copy. This file is the loop that ties
 * them: it reconciles the images an event names (a watch event, a store
 * change, a pull that ended), and every image once per sync interval and
 * after each listing.
 *
 * A server starting up reads the index and applies deletions and state
 * changes before it serves (ready()), so it never offers what the cluster
 * deleted or disabled while it was down. When etcd cannot be reached it
 * serves what it holds, keeps pulling what it already knew about, and
 * catches up (both ways) once etcd answers again.
 */
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import type { Config } from '../config/config.js';
import type { Logger } from '../log.js';
import { manifestHash } from '../manifest/hash.js';
import { isActivated } from '../manifest/states.js';
import type { ImageRecord, ImageStore } from '../store/store.js';
import type { ImageWriter } from '../store/writer.js';
import { Keys, createClient, listAll, nextRevision, watchFrom, withTimeout } from './etcd.js';
import { IndexView, type IndexEntry } from './index-view.js';
import { Puller } from './puller.js';
import { reconcile, type Action, type LocalSide } from './reconcile.js';
import { defaultServerId, type ClusterConfig } from '../config/cluster.js';
import { ActionRunner } from './actions.js';
import { Doorbell } from './doorbell.js';
import { LevelClock } from './level.js';
import { Suspects } from './suspects.js';
import { SyncedState } from './synced.js';
import { IndexWrites } from './writes.js';

export interface ClusterStatus {
  /** This server's id in the index. */
  id: string;
  etcd: 'up' | 'down';
  /** Other servers alive in the cluster now. */
  peers: number;
  /** Images in the index. */
  indexed: number;
  /** Images to pull and holder keys to add that are not in place yet (failed pulls aside). */
  pending: number;
  pulling: number;
  /** Images no holder has good bytes of: not pulled until a holder changes. */
  failed: number;
  /** Some of them, for the operator to look at. */
  failed_images: string[];
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

/** How long the presence key outlives a server that stopped answering. */
const PRESENCE_TTL_S = 10;
/** Between attempts to list the index while etcd does not answer; jittered, so servers do not come back in step. */
const RELIST_BACKOFF = new ExponentialBackoff({ initialDelay: 250, maxDelay: 2000 });
/** How often a server still behind (a write to etcd to retry, a pull to make) compares everything, at most. */
const BEHIND_PASS_MS = 10_000;
const FAILED_SHOWN = 10;
/** A partial pull nobody touched for this long is removed. */
const PARTIAL_TTL_MS = 7 * 24 * 3_600_000;

/** An etcd call failed: the pass stops, and the server lists the index again once etcd answers. */
class EtcdDown extends Error {}

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
  private readonly suspects: Suspects;
  private readonly view: IndexView;
  private readonly writes: IndexWrites;
  private readonly version: string;

  private watcher: Watcher | undefined;
  private lease: Lease | undefined;
  private listed = false;
  private etcdUp = false;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly doorbell = new Doorbell();
  /** Whether the loss of etcd was logged (once per outage). */
  private downReported = false;
  private readonly levelClock: LevelClock;

  /** Images an event named since the last pass. */
  private readonly dirty = new Set<string>();
  /** Whether the next pass looks at every image. */
  private fullPass = true;
  /** Images that need etcd, or a retry, before both sides agree. */
  private readonly behind = new Set<string>();
  /** Images served here that the index does not list this server as holding yet. */
  private readonly unheld = new Set<string>();
  /** uuids deleted here: read once per full pass, then kept by the store's events. */
  private deletedHere = new Set<string>();
  private readonly hashes = new WeakMap<ImageRecord, string>();
  private readonly local: LocalSide;
  private readonly actions: ActionRunner;

  private firstPass: (() => void) | undefined;
  private readonly firstPassDone: Promise<void>;
  /** Problems already logged, so a standing conflict is reported once. */
  private readonly warned = new Set<string>();
  private readonly onStoreChange = (moved?: string[]) => this.storeChanged(moved);

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
    this.synced = new SyncedState(deps.store, prefix, this.log);
    this.levelClock = new LevelClock(deps.store, this.log);
    this.view = new IndexView(this.keys, { id: this.id, url: this.url }, (uuid, rev) =>
      this.warnOnce(`bad:${uuid}:${rev}`, { uuid }, 'ignoring an index entry that is not a manifest'),
    (uuid) => deps.store.get(uuid)?.manifestText);
    this.writes = new IndexWrites(this.client, this.keys, this.view, { id: this.id, url: this.url }, (call) => this.etcd(call));
    this.suspects = new Suspects({ id: this.id, keys: this.keys, client: this.client, store: deps.store, writer: deps.writer, log: this.log });
    const auth = cfg.peer_auth;
    this.puller = new Puller({
      store: deps.store,
      writer: deps.writer,
      log: this.log,
      concurrency: cfg.concurrency,
      smallConcurrency: cfg.small_concurrency,
      authorization: auth ? `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` : undefined,
      userAgent: `smartos-image-server/${deps.version} (cluster ${this.id})`,
      holdersOf: (uuid) => this.view.holdersOf(uuid),
      indexed: (uuid) => this.view.entries.has(uuid),
      pulled: (uuid) => {
        this.view.share(uuid);
        this.touch(uuid);
      },
      badBytes: (uuid, holder, problem) => void this.suspects.report(uuid, holder, problem),
    });
    this.local = {
      image: (uuid) => {
        const record = this.store.get(uuid);
        if (!record || !isActivated(record.state)) return undefined;
        const hash = this.hashOf(record);
        // Built only when a pass finds the index's manifest different, which a level server's never is.
        return { get manifest() { return record.manifest; }, hash };
      },
      deletedHere: (uuid) => this.deletedHere.has(uuid),
      obstacle: (uuid) => (this.store.get(uuid) ? 'unactivated' : this.store.brokenImages().has(uuid) ? 'broken' : undefined),
    };
    this.actions = new ActionRunner({
      id: this.id, store: this.store, writer: this.writer, writes: this.writes, synced: this.synced, local: this.local, log: this.log,
      hashOf: (record) => this.hashOf(record),
      warnOnce: (key, fields, msg) => this.warnOnce(key, fields, msg),
      retry: (uuid) => this.touch(uuid),
      removed: (uuid) => this.deletedHere.add(uuid),
    });
    this.firstPassDone = new Promise((resolve) => {
      this.firstPass = resolve;
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

  /**
   * Resolves once the server has read the index and applied what it says
   * to the images held here (deletions, state changes), or once etcd
   * failed to answer: the server then serves what it holds.
   */
  ready(): Promise<void> {
    return this.firstPassDone;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.store.off('change', this.onStoreChange);
    this.puller.stop();
    this.doorbell.stop();
    await withTimeout(this.suspects.stop(), 1000);
    await withTimeout(this.running ?? Promise.resolve(), 2000);
    await withTimeout(this.watcher?.cancel() ?? Promise.resolve(), 1000);
    // Leave at once rather than when the lease runs out.
    await withTimeout(this.lease?.revoke() ?? Promise.resolve(), 1000);
    await this.synced.save();
    await this.levelClock.close();
    this.client.close();
  }

  status(): ClusterStatus {
    let peers = 0;
    for (const id of this.view.servers.keys()) if (id !== this.id) peers++;
    const failed = this.puller.failedUuids();
    return {
      id: this.id,
      etcd: this.etcdUp ? 'up' : 'down',
      peers,
      indexed: this.view.entries.size,
      pending: this.puller.pending() + this.unheld.size,
      pulling: this.puller.pulling(),
      failed: failed.length,
      failed_images: failed.slice(0, FAILED_SHOWN),
      lag_seconds: this.levelClock.lagSeconds(),
      revision: this.view.revision,
    };
  }

  /** Pull counts since start, for metrics. */
  pullCounts(): { succeeded: number; failed: number } {
    return this.puller.counts;
  }

  /** Something changed about `uuid`: reconcile it soon. */
  private touch(uuid: string): void {
    this.dirty.add(uuid);
    this.doorbell.ring();
  }

  private storeChanged(moved: string[] | undefined): void {
    if (!moved) {
      this.fullPass = true;
      this.doorbell.ring();
      return;
    }
    for (const uuid of moved) {
      // One look on disk per image that went away, not per image in the index.
      if (!this.store.get(uuid) && this.store.isDeleted(uuid)) this.deletedHere.add(uuid);
      this.touch(uuid);
    }
  }

  private async run(): Promise<void> {
    let backoff: IBackoff<unknown> | undefined;
    while (!this.stopped) {
      if (!this.listed) {
        try {
          await this.relist();
          backoff = undefined;
        } catch (err) {
          this.down(err);
          // Offline, the server still pulls what it knew of and applies known deletions.
          await this.passSafely();
          backoff = backoff ? backoff.next(undefined) : RELIST_BACKOFF.next();
          await this.doorbell.pause(backoff.duration);
          continue;
        }
      }
      await this.ensurePresence();
      await this.passSafely();
      // Watch events carry every change; the full pass is a safety net, cheap only when rare.
      const interval = this.levelClock.isLevel ? this.cfg.sync_interval_ms : Math.min(this.cfg.sync_interval_ms, BEHIND_PASS_MS);
      if (!(await this.doorbell.wait(interval))) this.fullPass = true;
    }
    this.servable();
  }

  private async passSafely(): Promise<void> {
    try {
      await this.pass();
    } catch (err) {
      if (!(err instanceof EtcdDown)) this.log.error({ err }, 'cluster reconciliation failed');
      this.fullPass = true;
      this.levelClock.fellBehind();
    }
    this.synced.saveSoon();
    this.servable();
  }

  /** What the server holds agrees with the index (or etcd did not answer): it may open its port. */
  private servable(): void {
    this.firstPass?.();
    this.firstPass = undefined;
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

  private down(err: unknown): void {
    if (!this.downReported) this.log.warn({ err: errorMessage(err) }, 'etcd unreachable; serving what this server holds');
    this.downReported = true;
    this.etcdUp = false;
    this.listed = false;
  }

  /** Reads the whole index at one revision, then watches from the next. */
  private async relist(): Promise<void> {
    const first = this.view.revision === null;
    const old = this.watcher;
    this.watcher = undefined;
    if (old) await withTimeout(old.cancel(), 1000);
    const listing = await listAll(this.client, this.keys.prefix);
    this.view.load(listing.kvs, listing.revision);
    for (const kv of listing.kvs) this.suspects.heard(kv);
    this.fullPass = true;
    this.synced.etcdIs(listing.clusterId);
    this.watcher = await watchFrom(this.client, this.keys.prefix, nextRevision(listing.revision), {
      put: (kv) => {
        const uuid = this.view.put(kv);
        if (uuid) this.touch(uuid);
        this.suspects.heard(kv);
      },
      delete: (kv) => {
        const uuid = this.view.delete(kv);
        if (uuid) this.touch(uuid);
      },
      lost: (err) => {
        this.down(err);
        this.doorbell.ring();
      },
    });
    this.etcdUp = true;
    this.listed = true;
    this.log[this.downReported || first ? 'info' : 'debug']({ revision: listing.revision, images: this.view.entries.size, servers: this.view.servers.size },
      'index listed from etcd; watching');
    this.downReported = false;
  }

  /** Announces this server as alive, on a lease that ends when it stops answering. */
  private async ensurePresence(): Promise<void> {
    if (this.lease || !this.listed || this.stopped) return;
    const lease = this.client.lease(PRESENCE_TTL_S, { autoKeepAlive: true });
    this.lease = lease;
    lease.on('lost', () => {
      if (this.lease === lease) this.lease = undefined;
      this.doorbell.ring();
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

  /* -------------------------------------------------------------------- pass */

  /** Reconciles what events named since the last pass, or every image. */
  private async pass(): Promise<void> {
    const scope = this.fullPass ? this.everything() : new Set(this.dirty);
    // Pulls that will never resume (the image was deleted, or its file replaced) leave their partials.
    if (this.fullPass) void this.store.removeOldPartials(PARTIAL_TTL_MS).catch(() => undefined);
    this.fullPass = false;
    this.dirty.clear();
    const index = { listed: this.listed, entries: this.view.entries, deleted: this.view.deleted, holdsHere: (u: string) => this.view.holdsHere(u) };
    const plan = reconcile(scope, this.local, index, this.synced);
    for (const uuid of scope) {
      this.behind.delete(uuid);
      this.unheld.delete(uuid);
    }
    for (const uuid of plan.behind) this.behind.add(uuid);

    const pulls = new Map<string, IndexEntry>();
    const byImage = new Map<string, Action[]>();
    for (const action of plan.actions) {
      if (action.kind === 'pull') pulls.set(action.uuid, action.entry);
      else byImage.set(action.uuid, [...(byImage.get(action.uuid) ?? []), action]);
    }
    for (const uuid of scope) {
      const entry = pulls.get(uuid);
      if (entry) this.puller.want(uuid, entry);
      else this.puller.drop(uuid);
    }
    // Registering and holding wait for the end of the pass, to go to etcd in batches.
    const registers: ImageRecord[] = [];
    const holds: string[] = [];
    for (const [uuid, actions] of byImage) {
      if (this.stopped) return;
      const now = actions.filter((a) => a.kind !== 'hold' && a.kind !== 'register');
      if (now.length > 0) await this.step(uuid, now);
      const record = this.store.get(uuid);
      if (record && actions.some((a) => a.kind === 'register')) registers.push(record);
      if (actions.some((a) => a.kind === 'hold')) holds.push(uuid);
    }
    // Registering what is here changes nothing the server serves: it need not wait for that.
    this.servable();
    await this.registerAndHold(registers, holds);
    for (const uuid of [...holds, ...registers.map((r) => r.uuid), ...plan.behind]) {
      if (this.local.image(uuid) && !this.view.holdsHere(uuid)) this.unheld.add(uuid);
    }

    this.levelClock.update(this.listed && this.behind.size === 0 && this.unheld.size === 0 && this.puller.pending() === 0);
  }

  /** Every image either side knows of, and every one still unsettled. */
  private everything(): Set<string> {
    this.deletedHere = this.store.deletedUuids();
    const all = new Set<string>([...this.view.entries.keys(), ...this.synced.uuids(), ...this.puller.uuids(), ...this.behind, ...this.unheld]);
    for (const r of this.store.list()) if (isActivated(r.state)) all.add(r.uuid);
    for (const [uuid, holders] of this.view.holders) if (holders.has(this.id)) all.add(uuid);
    return all;
  }

  private async registerAndHold(records: ImageRecord[], holds: string[]): Promise<void> {
    if (this.stopped) return;
    const registered = await this.writes.registerMany(records.map((r) => ({ manifest: r.manifest, legacy: r.legacy, hash: this.hashOf(r) })));
    for (const record of records) {
      const rev = registered.get(record.uuid);
      // Lost the race: someone else registered or deleted it, and the watch brings that.
      if (rev === undefined) continue;
      this.synced.set(record.uuid, rev, this.hashOf(record));
      this.log.info({ uuid: record.uuid, name: record.facts.name, version: record.facts.version }, 'registered image in the cluster index');
    }
    if (this.stopped || holds.length === 0) return;
    const held = await this.writes.holdMany(holds);
    this.log.debug({ images: held.size }, 'listed as a holder');
  }

  /** One image's actions; its own failure (a disk error, say) does not hold up the others. */
  private async step(uuid: string, actions: Action[]): Promise<void> {
    try {
      for (const action of actions) if (!(await this.actions.act(action))) this.behind.add(uuid);
    } catch (err) {
      if (err instanceof EtcdDown) throw err;
      this.behind.add(uuid);
      this.log.warn({ uuid, err: errorMessage(err) }, 'cluster step failed; will retry');
    }
  }

  /** The manifest's hash, computed once per loaded record. */
  private hashOf(record: ImageRecord): string {
    let hash = this.hashes.get(record);
    if (hash === undefined) this.hashes.set(record, (hash = manifestHash(record.manifest)));
    return hash;
  }

  private warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, msg);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

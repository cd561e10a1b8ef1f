/*
 * The image store: an in-memory index of serve_dir, kept in step with the
 * disk without a restart, and the only way to open an image file.
 *
 * Requests never read manifests from disk. Changes made through the server
 * update the index at once. Changes other processes make (import-image,
 * rsync, cp, rm) are found three ways, none of which costs anything that
 * grows with the catalog while nothing changes:
 * - on Linux, inotify tells at once (watcher.ts);
 * - every scanIntervalMs, serve_dir's own stamp is compared, which moves
 *   whenever a folder in it is created, renamed or removed; folders that
 *   were incomplete or broken at the last look are retried too;
 * - a rolling sweep re-checks every folder in full (its stamp, manifest,
 *   server.json and files) once per fullScanIntervalMs, a few folders at
 *   each tick, so the cost is spread evenly rather than a burst; where
 *   inotify watches every folder, the sweep is only a safety net and goes
 *   12 times slower (sweep.ts).
 * A full sweep on demand (SIGHUP, `image-server rescan`) checks everything
 * at once.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { errors } from '../errors.js';
import path from 'node:path';
import { writeFileAtomic } from './atomic.js';
import { Departed } from './departed.js';
import { DigestWorker } from './digests.js';
import { removeLeftovers } from './import.js';
import { removeDeadLocks } from './locks.js';
import { readIndexCache } from './index-cache.js';
import { Layout, RESCAN_REQUEST_FILE, isImageDirName } from './layout.js';
import { partialFile, removeOldPartials } from './partials.js';
import { takeRescanRequest } from './rescan-request.js';
import { compareRecords, dirStamp, filesUnchanged, loadImageDir, sameListing } from './loader.js';
import type { ImageRecord, StoredFile } from './record.js';
import { hasTombstone, listTombstones, readTombstone, type Tombstone } from './tombstones.js';
import { RootLook } from './root-look.js';
import { ScanQueue } from './scan-queue.js';
import { SnapshotSchedule } from './snapshot-schedule.js';
import { RollingSweep } from './sweep.js';
import { FolderWatcher } from './watcher.js';

export type { ImageRecord, StoredFile, Tombstone };

export interface StoreOptions {
  serveDir: string;
  log: Logger;
  /** How often serve_dir itself is looked at. */
  scanIntervalMs?: number;
  /** How long the rolling sweep takes to re-check every folder once. */
  fullScanIntervalMs?: number;
  /** Use inotify where there is one (watcher.ts); false: the looks and the sweep only. */
  watchFs?: boolean;
  /** MB/s the background MD5 pass reads at. */
  md5RateMBps?: number;
  /** How long a download waits for the MD5 of its file before it goes without Content-MD5. */
  md5WaitMs?: number;
  /**
   * false for one-shot commands (import-image, admin tools): no polling and
   * no background hashing, just the index as it is now.
   */
  watch?: boolean;
  /**
   * Start from the index snapshot when there is one (the default when
   * watching). A one-shot command may too when it only needs the index as
   * a server would serve it at start (import-image): folders added, gone or
   * changed by a rename since the snapshot was written are still read.
   */
  fromSnapshot?: boolean;
  /**
   * Serve from the snapshot at once and compare each folder's stamp with it
   * just after open() returns, a batch at a time (the server: a restart is
   * ready sooner). Otherwise open() compares them first.
   */
  stampsInBackground?: boolean;
}

/** How many directories a rescan loads before letting requests run. */
const BATCH = 200;
/** Lets a burst of inotify events (a folder being written) settle into one look. */
const WATCH_SETTLE_MS = 50;

/** The state files parts of the server keep in serve_dir. */
export type StateFile = 'cluster' | 'cluster-level';

export interface SortKey {
  uuid: string;
  publishedMs: number;
}

export class ImageStore extends EventEmitter {
  readonly layout: Layout;
  private readonly log: Logger;
  private readonly realRoot: string;
  private readonly images = new Map<string, ImageRecord>();
  /** uuid → problems last reported, so a broken directory warns once per change. */
  private readonly broken = new Map<string, string[]>();
  private sorted: ImageRecord[] | null = null;
  private readonly departed = new Departed();
  private readonly rootLook: RootLook;
  /** Images loaded, changed or gone since the last 'change' event, which names them. */
  private readonly moved = new Set<string>();
  private timers: NodeJS.Timeout[] = [];
  private readonly scans = new ScanQueue((full) => this.scan(full), (err) => this.log.error({ err }, 'rescan failed'));
  private watcher: FolderWatcher | undefined;
  /** Folders inotify named since the last look. */
  private readonly dirty = new Set<string>();
  private soonTimer: NodeJS.Timeout | undefined;
  private readonly sweep = new RollingSweep(300_000);
  private readonly md5WaitMs: number;
  /** A server's store (not a one-shot command's): the one that answers `image-server rescan`. */
  private readonly serving: boolean;
  private closed = false;
  private readonly snapshots: SnapshotSchedule;
  private readonly digests: DigestWorker;
  /** Bumped on every change, so callers can cache what they derive from the index. */
  generation = 0;
  /** Seconds the last quick and the last full rescan took. */
  readonly lastScanSeconds: { quick?: number; full?: number } = {};

  private constructor(opts: StoreOptions, realRoot: string) {
    super();
    this.layout = new Layout(opts.serveDir);
    this.rootLook = new RootLook(this.layout.root);
    this.log = opts.log.child({ component: 'store' });
    this.realRoot = realRoot;
    this.digests = new DigestWorker(this.layout, this.log, () => this.list(), opts.md5RateMBps ?? 20);
    this.snapshots = new SnapshotSchedule(this.layout, () => this.list(), this.log);
    this.md5WaitMs = opts.md5WaitMs ?? 30_000;
    this.serving = opts.watch !== false;
    if (opts.watch === false) this.digests.stop();
    if (opts.watch !== false && opts.watchFs !== false && FolderWatcher.supported()) {
      this.watcher = new FolderWatcher(this.log, (uuid) => this.heard(uuid));
      this.watcher.watchRoot(this.layout.root);
    }
  }

  static async open(opts: StoreOptions): Promise<ImageStore> {
    const realRoot = await fsp.realpath(opts.serveDir).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`serve_dir ${opts.serveDir}: ${err.code === 'ENOENT' ? 'does not exist' : err.message}`);
    });
    const store = new ImageStore(opts, realRoot);
    const leftovers = [...await removeLeftovers(store.layout), ...await removeDeadLocks(store.layout)];
    if (leftovers.length > 0) store.log.info({ removed: leftovers }, 'removed leftovers of interrupted imports');
    const watch = opts.watch !== false;
    store.rootLook.startEarly();
    const cached = (opts.fromSnapshot ?? watch) ? readIndexCache(store.layout) : null;
    for (const record of cached ?? []) store.images.set(record.uuid, record);
    // With a snapshot, serving can start once the folders added or gone
    // since are known; those whose own stamp moved (a file in them renamed,
    // the usual way to replace one) are re-read before or just after, one
    // stat each. The sweep then checks every folder in full within 30 s
    // (sweep.ts).
    const background = cached !== null && opts.stampsInBackground === true;
    if (cached && !background) for (const uuid of store.stampsMoved(cached)) store.dirty.add(uuid);
    await store.rescan(!cached);
    store.log.info({ images: store.images.size, broken: store.broken.size, from_cache: cached !== null }, 'index loaded');
    if (watch) {
      store.snapshots.start(cached === null);
      if (cached !== null) store.sweep.verifyAll();
      store.startPolling(opts.scanIntervalMs ?? 1000, opts.fullScanIntervalMs ?? 300_000);
    }
    if (background) void store.checkStamps(cached);
    return store;
  }

  /** The cached records whose folder's own stamp is not the one the snapshot saw. */
  private stampsMoved(records: readonly ImageRecord[]): string[] {
    return records.filter((r) => !r.stamp.startsWith(`${dirStamp(this.layout, r.uuid, true)}|`)).map((r) => r.uuid);
  }

  /** stampsMoved() a batch at a time between requests, then a look at the folders that moved. */
  private async checkStamps(records: readonly ImageRecord[]): Promise<void> {
    for (let i = 0; i < records.length && !this.closed; i += BATCH) {
      for (const uuid of this.stampsMoved(records.slice(i, i + BATCH))) this.dirty.add(uuid);
      await yieldToLoop();
    }
    if (this.dirty.size > 0 && !this.closed) await this.rescan(false);
  }

  get(uuid: string): ImageRecord | undefined {
    return this.images.get(uuid);
  }

  /** Every image, ordered by (published_at, uuid) as ListImages pages them. */
  list(): readonly ImageRecord[] {
    this.sorted ??= [...this.images.values()].sort(compareRecords);
    return this.sorted;
  }

  /**
   * Where `uuid` sorts in listings, even shortly after it was removed; a
   * private image has no place for a caller who may not see it, so a marker
   * naming one tells that caller no more than an unknown uuid.
   */
  sortKey(uuid: string, includePrivate: boolean): SortKey | undefined {
    const record = this.images.get(uuid);
    const known = record ? { publishedMs: record.publishedMs, public: record.isPublic } : this.departed.get(uuid);
    if (!known || (!known.public && !includePrivate)) return undefined;
    return { uuid, publishedMs: known.publishedMs };
  }

  /** Image folders the index skips, with why. */
  brokenImages(): ReadonlyMap<string, readonly string[]> {
    return this.broken;
  }

  /** Whether `uuid` belonged to an activated image that was deleted here (it has a tombstone). */
  isDeleted(uuid: string): boolean {
    return hasTombstone(this.layout, uuid);
  }

  /** Every uuid deleted here, for callers that would otherwise ask isDeleted() image by image. */
  deletedUuids(): Set<string> {
    return new Set(listTombstones(this.layout));
  }

  /** What the tombstone of `uuid` says, when it has one. */
  tombstone(uuid: string): Tombstone | undefined {
    return readTombstone(this.layout, uuid);
  }

  /**
   * Whether a folder of that name is in serve_dir, served or not (broken,
   * or still being written by another process).
   */
  hasFolder(uuid: string): boolean {
    return fs.existsSync(this.layout.imageDir(uuid));
  }

  /** A state file the server keeps in serve_dir for one of its parts (the cluster's sync state), if there is one. */
  readState(name: StateFile): string | undefined {
    try {
      return fs.readFileSync(this.statePath(name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Replaces a state file, atomically and durably. */
  async writeState(name: StateFile, text: string): Promise<void> {
    const file = this.statePath(name);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, text, this.layout.stagingRoot());
  }

  private statePath(name: StateFile): string {
    switch (name) {
      case 'cluster': return this.layout.clusterStatePath();
      case 'cluster-level': return this.layout.clusterLevelPath();
    }
  }

  /** Where to download image `uuid`'s file with `sha1` to, resuming what is there (partials.ts). */
  partialFile(uuid: string, sha1: string): Promise<string> {
    return partialFile(this.layout, uuid, sha1);
  }

  /** Removes partial downloads nobody touched for `maxAgeMs`. */
  removeOldPartials(maxAgeMs: number): Promise<string[]> {
    return removeOldPartials(this.layout, maxAgeMs);
  }

  /** The images that name `uuid` as their origin. */
  dependents(uuid: string): ImageRecord[] {
    return this.list().filter((r) => r.facts.origin === uuid);
  }

  /**
   * Opens files[index] of an image for reading. The open file is checked to
   * be the very inode the index vetted, so a file swapped or truncated
   * behind our back is never served. The caller closes the handle.
   */
  async openFile(record: ImageRecord, index: number): Promise<FileHandle> {
    const file = record.files[index];
    if (!file) throw errors.ResourceNotFound(`image "${record.uuid}" has no file`);
    const handle = await fsp.open(this.layout.filePath(record.uuid, file.name), 'r').catch(() => undefined);
    const st = await handle?.stat();
    if (!handle || !st || st.ino !== file.ino || st.dev !== file.dev || st.size !== file.size) {
      await handle?.close();
      this.log.warn({ uuid: record.uuid, file: file.name }, 'image file changed on disk; rescanning');
      this.refreshNow(record.uuid);
      throw errors.ResourceNotFound(`image "${record.uuid}" has no file`);
    }
    return handle;
  }

  /**
   * The file's path below serve_dir as a URI path, for a proxy that serves
   * serve_dir itself; undefined when its name would need escaping.
   */
  fileUri(record: ImageRecord, index: number): string | undefined {
    const name = record.files[index]?.name;
    return name !== undefined && /^[A-Za-z0-9._+-]+$/.test(name) ? `${record.uuid}/${name}` : undefined;
  }

  /**
   * Brings the index in line with the disk; `full` also re-checks known
   * images. Settles after a scan that began after the call (scan-queue.ts).
   */
  rescan(full = false): Promise<void> {
    return this.scans.request(full);
  }

  /**
   * Stops polling and background work; with `snapshot`, writes the index
   * snapshot first, so that the next start (a restart, an upgrade) is quick.
   */
  async close(opts: { snapshot?: boolean } = {}): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    clearTimeout(this.soonTimer);
    this.watcher?.close();
    this.digests.stop();
    await this.digests.idle();
    await this.snapshots.stop(opts.snapshot === true);
  }

  /**
   * Waits, up to md5WaitMs, for the MD5 of files[index] when it isn't known
   * yet, moving that file to the front of the background pass.
   */
  awaitMd5(record: ImageRecord, index: number): Promise<void> {
    return this.digests.want(record, index, this.md5WaitMs);
  }

  /** Resolves once every file the index serves has a known MD5 (or can't have one). */
  digestsIdle(): Promise<void> {
    return this.digests.idle();
  }

  private startPolling(intervalMs: number, sweepPeriodMs: number): void {
    this.sweep.restart(sweepPeriodMs);
    this.timers.push(setInterval(() => void this.rescan(false), intervalMs).unref());
  }

  /** inotify said something changed: look soon, once the burst settles. */
  private heard(uuid: string | null): void {
    if (uuid !== null && isImageDirName(uuid)) this.dirty.add(uuid);
    this.soonTimer ??= setTimeout(() => {
      this.soonTimer = undefined;
      void this.rescan(false);
    }, WATCH_SETTLE_MS).unref();
  }

  private async scan(full: boolean): Promise<void> {
    const started = process.hrtime.bigint();
    const entries = await this.rootLook.take(full);
    let changed = false;
    const names = new Set<string>();
    if (entries) {
      if (this.serving && entries.includes(RESCAN_REQUEST_FILE) && takeRescanRequest(this.layout)) {
        this.log.info('rescan requested: checking every image folder');
        full = true;
      }
      const present = new Set(entries.filter(isImageDirName));
      changed = this.dropMissing(present);
      for (const uuid of present) if (full || !this.images.has(uuid)) names.add(uuid);
    }
    if (full) {
      this.dirty.clear();
    } else {
      for (const uuid of [...this.broken.keys(), ...this.dirty, ...this.sweep.slice(this.images.size, () => [...this.images.keys()], this.watcher?.complete === true)]) names.add(uuid);
      this.dirty.clear();
    }
    const list = [...names];
    for (let i = 0; i < list.length; i += BATCH) {
      for (const uuid of list.slice(i, i + BATCH)) {
        if (!this.refresh(uuid)) continue;
        changed = true;
        this.moved.add(uuid);
      }
      if (i + BATCH < list.length) await yieldToLoop();
    }
    if (changed) this.indexChanged();
    this.lastScanSeconds[full ? 'full' : 'quick'] = Number(process.hrtime.bigint() - started) / 1e9;
  }

  /** Re-reads one image folder now, after this process changed it. */
  refreshNow(uuid: string): ImageRecord | undefined {
    if (this.refresh(uuid)) {
      this.moved.add(uuid);
      this.indexChanged();
    }
    return this.images.get(uuid);
  }

  private indexChanged(): void {
    this.sorted = null;
    this.generation++;
    const moved = [...this.moved];
    this.moved.clear();
    this.emit('change', moved);
    this.digests.kick();
    this.snapshots.changed();
  }

  private dropMissing(present: Set<string>): boolean {
    let changed = false;
    for (const uuid of [...this.images.keys(), ...this.broken.keys()]) {
      if (present.has(uuid)) continue;
      if (this.forget(uuid)) {
        changed = true;
        this.moved.add(uuid);
      }
      this.broken.delete(uuid);
      this.watcher?.unwatchFolder(uuid);
      this.log.info({ uuid }, 'image removed from disk');
    }
    return changed;
  }

  private forget(uuid: string): boolean {
    const record = this.images.get(uuid);
    if (!record) return false;
    this.images.delete(uuid);
    this.departed.remember(record);
    return true;
  }

  /**
   * Re-reads one folder when its stamp, manifest, server.json or files
   * changed; true if what the index serves changed. A change nothing is
   * listed from (an MD5 recorded in server.json) updates the record in
   * place, so cached listings stay.
   */
  private refresh(uuid: string): boolean {
    this.watcher?.watchFolder(uuid, this.layout.imageDir(uuid));
    const known = this.images.get(uuid);
    if (known && !this.broken.has(uuid) && this.unchanged(known)) return false;
    const result = loadImageDir(this.layout, this.realRoot, uuid);
    if (result.ok) {
      this.digests.apply(result.record);
      this.broken.delete(uuid);
      if (known && sameListing(known, result.record)) {
        known.stamp = result.record.stamp;
        known.files.forEach((f, i) => {
          f.md5 = result.record.files[i]?.md5 ?? f.md5;
        });
        return false;
      }
      this.images.set(uuid, result.record);
      if (!known) this.log.debug({ uuid }, 'image loaded');
      for (const r of result.record.relabelled ?? []) {
        this.log.warn({ uuid, file: r.file, labelled: r.labelled, actual: r.actual },
          'the manifest labels this file\'s compression wrongly; it is served as the bytes say');
      }
      return true;
    }
    const hadImage = this.forget(uuid);
    if ('gone' in result) {
      this.broken.delete(uuid);
      this.watcher?.unwatchFolder(uuid);
      return hadImage;
    }
    if (this.broken.get(uuid)?.join('\n') !== result.problems.join('\n')) {
      this.log.warn({ uuid, problems: result.problems }, 'skipping image directory that cannot be served');
    }
    this.broken.set(uuid, result.problems);
    return hadImage;
  }

  /** Whether the folder's stamp (the folder, manifest and server.json) and its files are as the record saw them. */
  private unchanged(record: ImageRecord): boolean {
    return dirStamp(this.layout, record.uuid) === record.stamp && filesUnchanged(this.layout, record);
  }
}

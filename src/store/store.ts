/*
 * The image store: an in-memory index of serve_dir, kept in step with the
 * disk without a restart, and the only way to open an image file.
 *
 * Requests never read manifests from disk. The index notices images that
 * other processes add or remove (import-image, rsync, rm) by polling the
 * serve_dir's own mtime every scanIntervalMs, which moves whenever an entry
 * is created, renamed or removed, and each image directory's, which moves
 * when a file in it is replaced by rename (rsync, an atomic rewrite).
 * Directories that were incomplete or broken at the last look are retried on
 * every poll, and a full sweep every fullScanIntervalMs catches files edited
 * in place.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { FileHandle } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { ResourceNotFound } from '../errors.js';
import { DigestWorker } from './digests.js';
import { removeLeftovers } from './import.js';
import { readIndexCache, writeIndexCache } from './index-cache.js';
import { Layout, isImageDirName } from './layout.js';
import { dirStamp, loadImageDir, type ImageRecord, type StoredFile } from './loader.js';

export type { ImageRecord, StoredFile };

export interface StoreOptions {
  serveDir: string;
  log: Logger;
  scanIntervalMs?: number;
  fullScanIntervalMs?: number;
  /**
   * false for one-shot commands (import-image, admin tools): no polling and
   * no background hashing, just the index as it is now.
   */
  watch?: boolean;
}

/** How many directories a rescan loads before letting requests run. */
const BATCH = 200;
const MAX_DEPARTED = 10_000;
const CACHE_WRITE_DELAY_MS = 5000;

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
  /** Listing positions of images removed lately, so a paging marker naming one still works. */
  private readonly departed = new Map<string, number>();
  private rootStamp = '';
  private timers: NodeJS.Timeout[] = [];
  private scanning: Promise<void> | null = null;
  private pendingFull = false;
  private cacheWrites = false;
  private cacheTimer: NodeJS.Timeout | undefined;
  private readonly digests: DigestWorker;
  /** Bumped on every change, so callers can cache what they derive from the index. */
  generation = 0;
  /** Seconds the last quick and the last full rescan took. */
  readonly lastScanSeconds: { quick?: number; full?: number } = {};

  private constructor(opts: StoreOptions, realRoot: string) {
    super();
    this.layout = new Layout(opts.serveDir);
    this.log = opts.log.child({ component: 'store' });
    this.realRoot = realRoot;
    this.digests = new DigestWorker(this.layout, this.log, () => this.list());
    if (opts.watch === false) this.digests.stop();
  }

  static async open(opts: StoreOptions): Promise<ImageStore> {
    const realRoot = await fsp.realpath(opts.serveDir).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`serve_dir ${opts.serveDir}: ${err.code === 'ENOENT' ? 'does not exist' : err.message}`);
    });
    const store = new ImageStore(opts, realRoot);
    const leftovers = await removeLeftovers(store.layout);
    if (leftovers.length > 0) store.log.info({ removed: leftovers }, 'removed leftovers of interrupted imports');
    const watch = opts.watch !== false;
    const cached = watch ? readIndexCache(store.layout) : null;
    for (const record of cached ?? []) store.images.set(record.uuid, record);
    // With a snapshot, a quick scan (one stat per folder) is enough to start
    // serving; the full scan that checks every file follows at once.
    await store.rescan(!cached);
    store.log.info({ images: store.images.size, broken: store.broken.size, from_cache: cached !== null }, 'index loaded');
    if (watch) {
      store.cacheWrites = true;
      if (cached) void store.rescan(true);
      else store.scheduleCacheWrite();
      store.startPolling(opts.scanIntervalMs ?? 1000, opts.fullScanIntervalMs ?? 30_000);
    }
    return store;
  }

  get(uuid: string): ImageRecord | undefined {
    return this.images.get(uuid);
  }

  /** Every image, ordered by (published_at, uuid) as ListImages pages them. */
  list(): readonly ImageRecord[] {
    this.sorted ??= [...this.images.values()].sort(compareRecords);
    return this.sorted;
  }

  /** Where `uuid` sorts in listings, even shortly after it was removed. */
  sortKey(uuid: string): SortKey | undefined {
    const record = this.images.get(uuid);
    if (record) return { uuid, publishedMs: record.publishedMs };
    const publishedMs = this.departed.get(uuid);
    return publishedMs === undefined ? undefined : { uuid, publishedMs };
  }

  /** Image folders the index skips, with why. */
  brokenImages(): ReadonlyMap<string, readonly string[]> {
    return this.broken;
  }

  /** The images that name `uuid` as their origin. */
  dependents(uuid: string): ImageRecord[] {
    return this.list().filter((r) => r.manifest.origin === uuid);
  }

  /**
   * Opens files[index] of an image for reading. The open file is checked to
   * be the very inode the index vetted, so a file swapped or truncated
   * behind our back is never served. The caller closes the handle.
   */
  async openFile(record: ImageRecord, index: number): Promise<FileHandle> {
    const file = record.files[index];
    if (!file) throw ResourceNotFound(`image "${record.uuid}" has no file`);
    const handle = await fsp.open(this.layout.filePath(record.uuid, file.name), 'r').catch(() => undefined);
    const st = await handle?.stat();
    if (!handle || !st || st.ino !== file.ino || st.dev !== file.dev || st.size !== file.size) {
      await handle?.close();
      this.log.warn({ uuid: record.uuid, file: file.name }, 'image file changed on disk; rescanning');
      void this.rescan(true);
      throw ResourceNotFound(`image "${record.uuid}" has no file`);
    }
    return handle;
  }

  /** Brings the index in line with the disk; `full` also re-checks known images. */
  rescan(full = false): Promise<void> {
    if (full) this.pendingFull = true;
    this.scanning ??= this.drainScans().finally(() => {
      this.scanning = null;
    });
    return this.scanning;
  }

  /**
   * Stops polling and background work; with `snapshot`, writes the index
   * snapshot first, so that the next start (a restart, an upgrade) is quick.
   */
  async close(opts: { snapshot?: boolean } = {}): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    clearTimeout(this.cacheTimer);
    const write = opts.snapshot && this.cacheWrites;
    this.cacheWrites = false;
    this.digests.stop();
    if (write) {
      await writeIndexCache(this.layout, this.list())
        .catch((err: unknown) => this.log.warn({ err }, 'could not write the index snapshot'));
    }
  }

  /** Resolves once every file the index serves has a known MD5 (or can't have one). */
  digestsIdle(): Promise<void> {
    return this.digests.idle();
  }

  private startPolling(intervalMs: number, fullIntervalMs: number): void {
    this.timers.push(setInterval(() => void this.rescan(false), intervalMs).unref());
    this.timers.push(setInterval(() => void this.rescan(true), fullIntervalMs).unref());
  }

  private async drainScans(): Promise<void> {
    let first = true;
    while (first || this.pendingFull) {
      const full = this.pendingFull;
      this.pendingFull = false;
      first = false;
      try {
        await this.scan(full);
      } catch (err) {
        this.log.error({ err }, 'rescan failed');
      }
    }
  }

  private async scan(full: boolean): Promise<void> {
    const started = process.hrtime.bigint();
    const root = await fsp.stat(this.layout.root);
    const rootStamp = `${root.mtimeMs}:${root.ctimeMs}`;
    const rootChanged = rootStamp !== this.rootStamp;
    let names: string[];
    if (rootChanged || full) {
      names = (await fsp.readdir(this.layout.root)).filter(isImageDirName);
      this.rootStamp = rootStamp;
    } else {
      names = [...this.images.keys(), ...this.broken.keys()];
    }
    let changed = rootChanged || full ? this.dropMissing(new Set(names)) : false;
    for (let i = 0; i < names.length; i += BATCH) {
      for (const uuid of names.slice(i, i + BATCH)) changed = this.refresh(uuid, full) || changed;
      if (i + BATCH < names.length) await yieldToLoop();
    }
    if (changed) this.indexChanged();
    this.lastScanSeconds[full ? 'full' : 'quick'] = Number(process.hrtime.bigint() - started) / 1e9;
  }

  /** Re-reads one image folder now, after this process changed it. */
  refreshNow(uuid: string): ImageRecord | undefined {
    if (this.refresh(uuid, true)) this.indexChanged();
    return this.images.get(uuid);
  }

  private indexChanged(): void {
    this.sorted = null;
    this.generation++;
    this.emit('change');
    this.digests.kick();
    this.scheduleCacheWrite();
  }

  /** Writes the index snapshot a little after the last change, not on every one. */
  private scheduleCacheWrite(): void {
    if (!this.cacheWrites || this.cacheTimer) return;
    this.cacheTimer = setTimeout(() => {
      this.cacheTimer = undefined;
      writeIndexCache(this.layout, this.list())
        .catch((err: unknown) => this.log.warn({ err }, 'could not write the index snapshot'));
    }, CACHE_WRITE_DELAY_MS).unref();
  }

  private dropMissing(present: Set<string>): boolean {
    let changed = false;
    for (const uuid of [...this.images.keys(), ...this.broken.keys()]) {
      if (present.has(uuid)) continue;
      changed = this.forget(uuid) || changed;
      this.broken.delete(uuid);
      this.log.info({ uuid }, 'image removed from disk');
    }
    return changed;
  }

  private forget(uuid: string): boolean {
    const record = this.images.get(uuid);
    if (!record) return false;
    this.images.delete(uuid);
    this.departed.set(uuid, record.publishedMs);
    if (this.departed.size > MAX_DEPARTED) this.departed.delete(this.departed.keys().next().value!);
    return true;
  }

  /** Re-reads one directory when it may have changed; true if the index changed. */
  private refresh(uuid: string, full: boolean): boolean {
    const known = this.images.get(uuid);
    if (known && !this.broken.has(uuid) && this.unchanged(known, full)) return false;
    const result = loadImageDir(this.layout, this.realRoot, uuid);
    if (result.ok) {
      this.digests.apply(result.record);
      this.broken.delete(uuid);
      this.images.set(uuid, result.record);
      if (!known) this.log.debug({ uuid }, 'image loaded');
      return true;
    }
    const hadImage = this.forget(uuid);
    if ('gone' in result) {
      this.broken.delete(uuid);
      return hadImage;
    }
    if (this.broken.get(uuid)?.join('\n') !== result.problems.join('\n')) {
      this.log.warn({ uuid, problems: result.problems }, 'skipping image directory that cannot be served');
    }
    this.broken.set(uuid, result.problems);
    return hadImage;
  }

  /**
   * A quick look compares the directory's own stamp, which moves when an
   * entry in it is created, renamed or removed (rsync, an atomic rewrite);
   * a full look also compares the manifest, sidecar and files themselves.
   */
  private unchanged(record: ImageRecord, full: boolean): boolean {
    const stamp = dirStamp(this.layout, record.uuid, !full);
    if (!full) return stamp !== undefined && record.stamp.startsWith(`${stamp}|`);
    return stamp === record.stamp && filesUnchanged(this.layout, record);
  }
}

function filesUnchanged(layout: Layout, record: ImageRecord): boolean {
  return record.files.every((f) => {
    try {
      const st = fs.statSync(layout.filePath(record.uuid, f.name));
      return st.ino === f.ino && st.size === f.size && st.mtimeMs === f.mtimeMs;
    } catch {
      return false;
    }
  });
}

export function compareRecords(a: ImageRecord, b: ImageRecord): number {
  if (a.publishedMs !== b.publishedMs) return a.publishedMs - b.publishedMs;
  return a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
}

/*
 * Hears about changes made by hand in serve_dir the moment they happen,
 * where the platform makes that cheap: inotify on Linux, one watch on
 * serve_dir (folders created, renamed, removed) and one per image folder
 * (a manifest, server.json or file created, replaced by rename, written or
 * removed). Only a hint: the store's one-second look at serve_dir and its
 * rolling sweep find every change without it, so a platform without
 * inotify (illumos event ports, which fire differently), a kernel out of
 * watches or a watch that fails only makes changes slower to show.
 */
import fs from 'node:fs';
import type { Logger } from '../log.js';

/** The name of the entry that changed under serve_dir, or null for serve_dir itself. */
export type ChangeListener = (uuid: string | null) => void;

export class FolderWatcher {
  private root: fs.FSWatcher | undefined;
  private readonly folders = new Map<string, fs.FSWatcher>();
  /** Set once the kernel refuses a watch: from then on the sweep does the work. */
  private exhausted = false;
  private closed = false;

  constructor(
    private readonly log: Logger,
    private readonly onChange: ChangeListener,
  ) {}

  /** Whether watching is worth trying here. */
  static supported(): boolean {
    return process.platform === 'linux';
  }

  watchRoot(dir: string): void {
    this.root = this.open(dir, () => this.onChange(null));
  }

  /** Starts watching one image folder; a folder already watched is left as is. */
  watchFolder(uuid: string, dir: string): void {
    if (this.closed || this.exhausted || this.folders.has(uuid)) return;
    const watcher = this.open(dir, () => this.onChange(uuid));
    if (watcher) this.folders.set(uuid, watcher);
  }

  unwatchFolder(uuid: string): void {
    this.folders.get(uuid)?.close();
    this.folders.delete(uuid);
  }

  /** Whether every folder asked for got its watch (the kernel had watches to spare). */
  get complete(): boolean {
    return !this.exhausted && !this.closed;
  }

  get watching(): number {
    return this.folders.size + (this.root ? 1 : 0);
  }

  close(): void {
    this.closed = true;
    this.root?.close();
    this.root = undefined;
    for (const w of this.folders.values()) w.close();
    this.folders.clear();
  }

  private open(dir: string, listener: () => void): fs.FSWatcher | undefined {
    if (this.closed) return undefined;
    try {
      const watcher = fs.watch(dir, { persistent: false }, listener);
      // A folder removed under its watch ends the watch; the store notices the folder is gone.
      watcher.on('error', () => watcher.close());
      return watcher;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EMFILE') {
        this.exhausted = true;
        this.log.warn({ code, watching: this.watching }, 'no more file watches; changes inside image folders are found by the rolling sweep');
      }
      return undefined;
    }
  }
}

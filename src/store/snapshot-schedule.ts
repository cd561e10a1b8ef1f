/*
 * When the index snapshot (index-cache.ts) is written. A snapshot is only a
 * head start, checked against the folders at the next start, so one a
 * minute after the last change is plenty; after a start that found none it
 * is written within seconds, or a restart soon after would read every
 * folder again; and once more on a clean stop. A failed write costs the
 * next start its head start, nothing else: it is logged, not thrown.
 */
import type { Logger } from '../log.js';
import { writeIndexCache } from './index-cache.js';
import type { Layout } from './layout.js';
import type { ImageRecord } from './record.js';

const AFTER_CHANGE_MS = 60_000;
const AFTER_COLD_START_MS = 2000;

export class SnapshotSchedule {
  private enabled = false;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;

  constructor(
    private readonly layout: Layout,
    private readonly records: () => readonly ImageRecord[],
    private readonly log: Logger,
  ) {}

  /** Writes from now on; `cold`: the start found no snapshot. */
  start(cold: boolean): void {
    this.enabled = true;
    if (cold) this.changed(AFTER_COLD_START_MS);
  }

  /** The index changed: a write is due, unless one already is. */
  changed(delayMs = AFTER_CHANGE_MS): void {
    if (!this.enabled || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.writing = this.write().finally(() => {
        this.writing = undefined;
      });
    }, delayMs).unref();
  }

  /**
   * No more writes; waits for one under way, since whoever stops the store
   * may remove serve_dir next. `last`: writes one more first, so the next
   * start (a restart, an upgrade) is quick.
   */
  async stop(last: boolean): Promise<void> {
    const wasEnabled = this.enabled;
    this.enabled = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing;
    if (last && wasEnabled) await this.write();
  }

  private write(): Promise<void> {
    return writeIndexCache(this.layout, this.records())
      .catch((err: unknown) => this.log.warn({ err }, 'could not write the index snapshot'));
  }
}

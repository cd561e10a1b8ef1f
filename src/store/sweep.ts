/*
 * The rolling sweep: every image folder re-checked in full once per period,
 * a share at each look in proportion to the time since the last one, so
 * the cost is spread evenly and never comes as a burst however large the
 * catalog. Where inotify covers every folder the sweep is only a safety
 * net (the kernel drops events when its queue overflows) and goes slower.
 * After a start from the index snapshot, one pass verifies every folder
 * within a short period, then the sweep returns to its own pace.
 */

/** How many times slower the sweep goes where inotify watches every folder. */
const WATCHED_FACTOR = 12;
/** The verifying pass after a start from the snapshot: spread out, not a burst. */
const VERIFY_MS = 30_000;

export class RollingSweep {
  private order: string[] = [];
  private pos = 0;
  private credit = 0;
  private at: number;
  private verifying = false;

  constructor(private periodMs: number, private readonly now: () => number = Date.now) {
    this.at = now();
  }

  /** Starts the pace over at `periodMs` (the timers begin now). */
  restart(periodMs: number): void {
    this.periodMs = periodMs;
    this.at = this.now();
  }

  /** The next pass checks every folder within VERIFY_MS, then the usual pace resumes. */
  verifyAll(): void {
    this.verifying = true;
  }

  /** The folders due now, out of `folders()` (read only when a new pass begins). */
  slice(size: number, folders: () => string[], fullyWatched: boolean): string[] {
    const now = this.now();
    const periodMs = this.verifying ? VERIFY_MS : this.periodMs * (fullyWatched ? WATCHED_FACTOR : 1);
    this.credit = Math.min(size, this.credit + (size * (now - this.at)) / periodMs);
    this.at = now;
    const take = Math.floor(this.credit);
    this.credit -= take;
    const out: string[] = [];
    while (out.length < take) {
      if (this.pos >= this.order.length) {
        if (this.verifying && this.order.length > 0) {
          this.verifying = false;
          break;
        }
        this.order = folders();
        this.pos = 0;
        if (this.order.length === 0) break;
      }
      out.push(this.order[this.pos++]!);
    }
    // The verifying pass is over once it has reached its last folder.
    if (this.verifying && this.order.length > 0 && this.pos >= this.order.length) this.verifying = false;
    return out;
  }
}

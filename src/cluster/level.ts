/*
 * When this server was last level with the index, kept across restarts.
 * A restarted server is behind since it was last known to be level, not
 * since it started, so lag_seconds never hides a server that came back
 * still missing images. The few bytes are written when the server becomes
 * level or falls behind, when it stops, and while it stays level at most
 * once every REFRESH_MS: a kill -9 overstates the lag by no more than that.
 */
import type { Logger } from '../log.js';
import type { ImageStore } from '../store/store.js';

const REFRESH_MS = 5 * 60_000;

export class LevelClock {
  private at: number;
  private level = false;
  private savedAt = 0;

  constructor(private readonly store: ImageStore, private readonly log: Logger, now = Date.now()) {
    this.at = this.read() ?? now;
  }

  /** Records the outcome of a pass. */
  update(level: boolean, now = Date.now()): void {
    const changed = level !== this.level;
    this.level = level;
    if (level) this.at = now;
    if (changed || (level && now - this.savedAt >= REFRESH_MS)) void this.save(now);
  }

  get isLevel(): boolean {
    return this.level;
  }

  /** Seconds since the server was last level (0 while it is), to a tenth. */
  lagSeconds(now = Date.now()): number {
    return this.level ? 0 : Math.round((now - this.at) / 100) / 10;
  }

  /** Behind from the next pass on (etcd failed): the clock runs from the last level moment. */
  fellBehind(): void {
    this.update(false);
  }

  /** At a stop: a server level until now was level until now. */
  close(now = Date.now()): Promise<void> {
    if (this.level) this.at = now;
    return this.save(now);
  }

  private read(): number | undefined {
    try {
      const value = (JSON.parse(this.store.readState('cluster-level') ?? 'null') as { level_at?: unknown } | null)?.level_at;
      return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
    } catch {
      return undefined;
    }
  }

  private async save(now: number): Promise<void> {
    this.savedAt = now;
    try {
      await this.store.writeState('cluster-level', `${JSON.stringify({ level_at: this.at })}\n`);
    } catch (err) {
      this.log.warn({ err }, 'cannot save when this server was last level');
    }
  }
}

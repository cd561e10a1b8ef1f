/*
 * The store's cheap look at serve_dir itself: its stamp moves whenever a
 * folder in it is created, renamed or removed, so its names are read only
 * when the stamp moved (or when a full sweep wants them all).
 */
import fsp from 'node:fs/promises';

interface Look {
  stamp: string;
  names: string[];
}

export class RootLook {
  private stamp = '';
  /** A look started ahead, taken by the next take(). */
  private early: Promise<Look | null> | undefined;

  constructor(private readonly root: string) {}

  /**
   * Starts the next look now, on the thread pool: open() does so before it
   * parses the index snapshot, so that the two overlap.
   */
  startEarly(): void {
    this.early = this.read(true);
    // Awaited by the next take(); a failure is that caller's to report.
    this.early.catch(() => undefined);
  }

  /** serve_dir's names if its stamp moved since the last look that read them, or `always`; null if not. */
  async take(always: boolean): Promise<string[] | null> {
    const early = this.early;
    this.early = undefined;
    const look = await (early ?? this.read(always));
    if (!look) return null;
    this.stamp = look.stamp;
    return look.names;
  }

  private async read(always: boolean): Promise<Look | null> {
    const st = await fsp.stat(this.root);
    const stamp = `${st.mtimeMs}:${st.ctimeMs}`;
    if (!always && stamp === this.stamp) return null;
    // Read after the stamp, so a change in between shows at the next look.
    return { stamp, names: await fsp.readdir(this.root) };
  }
}

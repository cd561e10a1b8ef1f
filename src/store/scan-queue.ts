/*
 * When the store scans: one scan at a time, and the requests that arrive
 * during one folded into a single scan after it (a full one if any asked
 * for full). What request() returns settles after a scan that began after
 * the call, since the scan under way may have read serve_dir before what
 * the caller wants it to see.
 */
export class ScanQueue {
  private running: Promise<void> | null = null;
  private pendingFull = false;
  private pendingQuick = false;

  constructor(
    private readonly scan: (full: boolean) => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  request(full: boolean): Promise<void> {
    if (full) this.pendingFull = true;
    else if (this.running) this.pendingQuick = true;
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async drain(): Promise<void> {
    let first = true;
    while (first || this.pendingFull || this.pendingQuick) {
      const full = this.pendingFull;
      this.pendingFull = false;
      this.pendingQuick = false;
      first = false;
      try {
        await this.scan(full);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}

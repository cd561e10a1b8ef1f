/*
 * How the cluster's loop waits between passes: until something rings (a
 * watch event, a change in the store, a lost lease), or until the next
 * safety-net pass is due. What rings within BATCH_MS of the first ring is
 * taken in the same pass. A stop ends any wait at once.
 */
const BATCH_MS = 20;

export class Doorbell {
  private rung = false;
  private stopped = false;
  private wake: ((stopping: boolean) => void) | undefined;

  ring(): void {
    this.rung = true;
    this.wake?.(false);
  }

  stop(): void {
    this.stopped = true;
    this.wake?.(true);
  }

  /** Waits `ms` whatever rings (a back-off), unless stopped. */
  async pause(ms: number): Promise<void> {
    if (this.stopped) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = (stopping) => {
        if (!stopping) return;
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }

  /** Waits `ms`, or less if something rings; whether something did. */
  async wait(ms: number): Promise<boolean> {
    let rung = this.rung;
    if (!this.rung && !this.stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        this.wake = () => {
          rung = true;
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    if (!this.stopped) await new Promise((r) => setTimeout(r, BATCH_MS));
    this.rung = false;
    return rung;
  }
}

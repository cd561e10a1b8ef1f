/*
 * The background scrub: `verify` at a gentle rate, every so often, inside
 * the server. Problems go to the log, and then, as configured, the images
 * are disabled, or a corrupt copy is set aside (in a cluster, where peers
 * hold good copies to pull again); a scrub never competes with downloads
 * for more than the rate.
 */
import type { Logger } from '../log.js';
import type { ImageStore } from './store.js';
import { quarantine, repair, verifyImages, type VerifyProblem } from './verify.js';
import type { ImageWriter } from './writer.js';

export interface ScrubOptions {
  rateBytesPerSec: number;
  intervalMs: number;
  /** What becomes of an image that fails: only logged, disabled, or its copy set aside. */
  onCorrupt: 'log' | 'disable' | 'quarantine';
}

const ACTIONS: Record<ScrubOptions['onCorrupt'], (writer: ImageWriter, problems: VerifyProblem[]) => Promise<VerifyProblem[]>> = {
  log: async (_writer, problems) => problems,
  disable: repair,
  quarantine,
};

export function startScrub(store: ImageStore, writer: ImageWriter, opts: ScrubOptions, log: Logger): () => void {
  const stopper = new AbortController();
  let timer: NodeJS.Timeout;
  const round = async () => {
    const started = Date.now();
    try {
      const problems = await verifyImages(store, { rate: opts.rateBytesPerSec, signal: stopper.signal });
      for (const p of problems) log.error({ uuid: p.uuid, problem: p.problem }, 'scrub: image is corrupt or incomplete');
      const left = problems.length > 0 ? await ACTIONS[opts.onCorrupt](writer, problems) : [];
      if (opts.onCorrupt === 'quarantine') {
        for (const p of problems) if (!left.some((l) => l.uuid === p.uuid)) log.warn({ uuid: p.uuid }, 'scrub: corrupt copy set aside; the cluster pulls a good one');
      }
      log.info({ problems: problems.length, seconds: (Date.now() - started) / 1000 }, 'scrub finished');
    } catch (err) {
      if (!stopper.signal.aborted) log.error({ err }, 'scrub failed');
    }
    if (!stopper.signal.aborted) timer = setTimeout(() => void round(), opts.intervalMs).unref();
  };
  timer = setTimeout(() => void round(), Math.min(opts.intervalMs, 60_000)).unref();
  return () => {
    stopper.abort();
    clearTimeout(timer);
  };
}

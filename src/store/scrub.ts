/*
 * The background scrub: `verify` at a gentle rate, every so often, inside
 * the server. Problems go to the log (and, if configured, the images are
 * disabled); a scrub never competes with downloads for more than the rate.
 */
import type { Logger } from '../log.js';
import type { ImageStore } from './store.js';
import { repair, verifyImages } from './verify.js';
import type { ImageWriter } from './writer.js';

export interface ScrubOptions {
  rateBytesPerSec: number;
  intervalMs: number;
  repair: boolean;
}

export function startScrub(store: ImageStore, writer: ImageWriter, opts: ScrubOptions, log: Logger): () => void {
  const stopper = new AbortController();
  let timer: NodeJS.Timeout;
  const round = async () => {
    const started = Date.now();
    try {
      const problems = await verifyImages(store, { rate: opts.rateBytesPerSec, signal: stopper.signal });
      for (const p of problems) log.error({ uuid: p.uuid, problem: p.problem }, 'scrub: image is corrupt or incomplete');
      if (opts.repair && problems.length > 0) await repair(writer, problems);
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

/*
 * Small shared helpers: the progress log (timestamps since the bench began,
 * so a slow phase is obvious) and the statistics every phase uses.
 */
import { performance } from 'node:perf_hooks';

export const MiB = 1024 * 1024;
export const mib = (bytes) => (bytes / MiB).toFixed(1);

/** Middle value (upper middle for an even count); robust to one noisy round on a shared box. */
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export const log = (msg) => process.stdout.write(`[bench ${(performance.now() / 1000).toFixed(1)}s] ${msg}\n`);

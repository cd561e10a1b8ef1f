/*
 * Start-up: from spawning the CLI until a GET /images has returned every
 * image, so it covers Node's boot, module loading, the initial scan of
 * serve_dir and building the first listing. Median of several cold starts
 * of the process (the page cache stays warm: this is a restart, not a boot).
 */
import { limitRow } from '../lib/report.js';
import { timeStartup } from '../lib/server.js';
import { log, median } from '../lib/util.js';

export async function startupPhase({ configFile, port, P }) {
  const times = [];
  for (let i = 0; i < P.startups; i++) {
    times.push(await timeStartup(configFile, port, P.images));
    log(`start-up ${i + 1}/${P.startups}: ${times.at(-1).toFixed(3)} s`);
  }
  return {
    rows: [limitRow(`Start-up to full GET /images, median of ${P.startups}`, 's', median(times), 0.5, 3)],
    setup: [`Start-up runs (s): ${times.map((t) => t.toFixed(3)).join(', ')}.`],
  };
}

/*
 * Our server's resident memory, from the samples RssSampler took while the
 * other phases ran (it labels each sample with the phase in progress).
 *
 * "Flat while streaming" cannot be first-vs-last sample: V8 lets garbage
 * pile up until a major GC, so RSS saws up and down by tens of MB whatever
 * the server does. What matters is whether memory grows with the bytes
 * sent, so the samples of all many-client rounds are placed on an axis of
 * bytes streamed so far (linear within each round) and a least-squares
 * slope is fitted: MiB of RSS per GiB streamed. Retaining even 1 % of the
 * bytes would give ~10 MiB/GiB; bounded buffers give ~0.
 */
import { checkRow, limitRow } from '../lib/report.js';
import { MiB, mib } from '../lib/util.js';

const GiB = 1024 * MiB;
const MAX_SLOPE = 0.5; // MiB per GiB: under 16 MiB over one 32 GiB round

/** Least-squares slope of RSS against bytes streamed, in MiB per GiB. */
function growthPerGiB(rounds, bytesPerRound) {
  const pts = [];
  rounds.forEach((samples, k) => {
    const t0 = samples[0].t;
    const span = samples.at(-1).t - t0 || 1;
    for (const s of samples) pts.push([(k + (s.t - t0) / span) * bytesPerRound, s.bytes]);
  });
  const mx = pts.reduce((a, [x]) => a + x, 0) / pts.length;
  const my = pts.reduce((a, [, y]) => a + y, 0) / pts.length;
  const cov = pts.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const varx = pts.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return ((cov / varx) * GiB) / MiB;
}

export function memoryRows(rss, P, bytesPerRound) {
  const listing = rss.stats('listing');
  const single = rss.stats('download-single');
  const many = rss.stats('download-many');
  const rounds = Array.from({ length: P.manyRounds }, (_, i) => rss.samplesOf(`download-many:${i + 1}`));
  const slope = growthPerGiB(rounds, bytesPerRound);
  const all = rounds.flat().map((s) => s.bytes);
  const first = rounds[0];
  return {
    rows: [
      limitRow('Our RSS, max during listing', 'MiB', listing.max / MiB, 150, 1),
      limitRow('Our RSS, max during downloads', 'MiB', Math.max(single.max, many.max) / MiB, 150, 1),
      checkRow(`Our RSS flat while ${P.clients} clients stream`,
        `${slope >= 0 ? '+' : ''}${slope.toFixed(2)} MiB per GiB over ${((bytesPerRound * P.manyRounds) / GiB).toFixed(0)} GiB `
          + `(range ${mib(Math.min(...all))}–${mib(Math.max(...all))} MiB; round 1 ${mib(first[0].bytes)} at start → `
          + `${mib(first.at(-1).bytes)} at end)`,
        `growth ≤ ${MAX_SLOPE} MiB per GiB sent`, slope <= MAX_SLOPE),
    ],
    setup: [
      `RSS: /proc/<pid>/status VmRSS every 100 ms; ${mib(rss.samples[0].bytes)} MiB just after start-up; samples: `
        + `listing ${listing.samples}, 1-client downloads ${single.samples}, ${P.clients}-client downloads ${many.samples}.`,
    ],
  };
}

/*
 * Download throughput of the big image file, our GET /images/:uuid/file vs
 * nginx (sendfile on) on the same file: one client, then many at once.
 * Rounds alternate between the servers so drift on a shared box hits both
 * alike, and the median round counts.
 */
import { download } from '../lib/load.js';
import { ratioRow } from '../lib/report.js';
import { log, median, mib } from '../lib/util.js';

const LIMIT_SECONDS = 240;

async function rounds(n, servers, rss, label, opts) {
  const mbps = Object.fromEntries(servers.map(([who]) => [who, []]));
  for (let i = 0; i < n; i++) {
    for (const [who, port, url] of servers) {
      if (who === 'ours') rss.phase(`${label}:${i + 1}`);
      const r = await download(port, url, { ...opts, limitSeconds: LIMIT_SECONDS });
      rss.phase('idle');
      mbps[who].push(r.mbps);
      const per = r.clients.map((c) => c.seconds);
      log(`download x${opts.clients} ${who}: ${r.mbps.toFixed(0)} MB/s`
        + (opts.clients > 1 ? ` aggregate (clients took ${Math.min(...per).toFixed(1)}–${Math.max(...per).toFixed(1)} s)` : ''));
    }
  }
  return mbps;
}

export async function downloadPhase({ ours, nginxPort, rss, big, P }) {
  const servers = [['ours', ours.port, `/images/${big.uuid}/file`], ['nginx', nginxPort, `/images/${big.uuid}/file`]];
  const size = big.size;
  const single = await rounds(P.singleRounds, servers, rss, 'download-single', { clients: 1, size });
  const many = await rounds(P.manyRounds, servers, rss, 'download-many', { clients: P.clients, size });
  const list = (xs) => xs.map((x) => x.toFixed(0)).join(', ');
  // Each round's ratio, so one lucky round cannot stand for the machine.
  const spread = (r) => {
    const ratios = r.ours.map((x, i) => x / r.nginx[i]);
    return `ratio per round ${ratios.map((x) => x.toFixed(2)).join(', ')} (spread ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
  };
  return {
    rows: [
      ratioRow(`Download ${mib(size)} MiB, 1 client, median of ${P.singleRounds}`, 'MB/s',
        median(single.ours), median(single.nginx), 0.9),
      ratioRow(`Download ${mib(size)} MiB, ${P.clients} clients, aggregate, median of ${P.manyRounds}`, 'MB/s',
        median(many.ours), median(many.nginx), 0.9),
    ],
    setup: [
      `1-client rounds (MB/s): ours ${list(single.ours)}; nginx ${list(single.nginx)}; ${spread(single)}.`,
      `${P.clients}-client rounds (MB/s): ours ${list(many.ours)}; nginx ${list(many.nginx)}; ${spread(many)}.`,
    ],
  };
}

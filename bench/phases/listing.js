/*
 * Listing throughput: wrk on GET /images and GET /datasets, our server vs
 * nginx serving the bodies ours returned. nginx runs twice, with sendfile on
 * and off, and the better of the two is the yardstick: on loopback nginx
 * serves multi-MB JSON faster without sendfile, and beating a handicapped
 * nginx would prove nothing.
 */
import { wrk } from '../lib/load.js';
import { ratioRow } from '../lib/report.js';
import { log } from '../lib/util.js';

export const LISTING_URLS = ['/images', '/datasets'];

export async function listingPhase({ ours, nginxPorts, rss, P }) {
  const opts = { connections: P.wrkConnections, threads: P.wrkThreads, seconds: P.seconds };
  const targets = [['ours', ours.port], ...Object.entries(nginxPorts).map(([k, port]) => [`nginx ${k}`, port])];
  const rows = [];
  const setup = [];
  for (const url of LISTING_URLS) {
    const r = {};
    for (const [who, port] of targets) {
      // A short unrecorded run first, so JIT and caches are warm for everyone.
      await wrk(port, url, { ...opts, seconds: P.warmupSeconds });
      if (who === 'ours') rss.phase('listing');
      r[who] = await wrk(port, url, opts);
      rss.phase('idle');
      log(`GET ${url} ${who}: ${r[who].rps.toFixed(1)} req/s, ${r[who].mbps.toFixed(0)} MB/s, `
        + `p50 ${(r[who].latency.p50 / 1000).toFixed(1)} ms`);
    }
    const [bestName, best] = Object.entries(r).filter(([k]) => k !== 'ours').sort((a, b) => b[1].rps - a[1].rps)[0];
    rows.push(ratioRow(`GET ${url}`, 'req/s', r.ours.rps, best.rps, 1.0, 1));
    rows.push(ratioRow(`GET ${url}`, 'MB/s', r.ours.mbps, best.mbps, 1.0, 0));
    const ms = (x) => (x / 1000).toFixed(1);
    setup.push(`GET ${url}: ${Object.entries(r).map(([k, v]) => `${k} ${v.rps.toFixed(1)} req/s `
      + `(p50/p99 ${ms(v.latency.p50)}/${ms(v.latency.p99)} ms)`).join(', ')}; nginx column = ${bestName}.`);
  }
  return { rows, setup };
}

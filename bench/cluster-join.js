#!/usr/bin/env node
/*
 * The cluster phase of the bench (phases/cluster.js) on its own: register,
 * join, idle and restart figures for N images, for this repository or
 * another checkout given as the argument (to compare two versions).
 *
 *   node bench/cluster-join.js [repository, default this one]
 *   BENCH_JOIN_IMAGES=10000 BENCH_JOIN_LIMIT_S=600
 *
 * Needs `npm run build` in the repository it runs, and etcd (etcd-server).
 */
import path from 'node:path';
import { forceCleanup } from './lib/cleanup.js';
import { table } from './lib/report.js';
import { REPO_ROOT } from './lib/server.js';
import { clusterPhase } from './phases/cluster.js';

try {
  const { rows, setup } = await clusterPhase({
    images: Number(process.env.BENCH_JOIN_IMAGES ?? 10_000),
    repo: path.resolve(process.argv[2] ?? REPO_ROOT),
    limitS: Number(process.env.BENCH_JOIN_LIMIT_S ?? 600),
  });
  process.stdout.write(`\n${table(rows)}\n\n${setup.join('\n')}\n`);
} catch (err) {
  forceCleanup();
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exitCode = 1;
}

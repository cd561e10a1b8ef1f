/*
 * The cluster's entry point for main.ts, loaded only when config.json has
 * a `cluster` key: a server that runs alone never loads etcd3 or gRPC.
 */
import type { Metrics } from '../http/metrics.js';
import { Cluster, type ClusterDeps } from './cluster.js';
import { registerClusterMetrics } from './metrics.js';

export function createCluster(deps: ClusterDeps & { metrics: Metrics }): Cluster {
  const cluster = new Cluster(deps);
  registerClusterMetrics(deps.metrics.registry, cluster);
  return cluster;
}

/*
 * The cluster's entry point for the server, loaded only when config.json
 * has a `cluster` key: a server that runs alone never loads etcd3 or gRPC.
 */
import type { Registry } from '../metrics.js';
import { Cluster, type ClusterDeps } from './cluster.js';
import { registerClusterMetrics } from './metrics.js';

export function createCluster(deps: ClusterDeps & { registry: Registry }): Cluster {
  const cluster = new Cluster(deps);
  registerClusterMetrics(deps.registry, cluster);
  return cluster;
}

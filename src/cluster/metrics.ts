/*
 * The cluster's gauges on the server's own Prometheus registry: whether
 * etcd answers, live peers, images waiting to be pulled, images no holder
 * has good bytes of, how far behind the index this server is, and pulls
 * by result.
 */
import { Counter, Gauge, type Registry } from '../metrics.js';
import type { Cluster } from './cluster.js';

export function registerClusterMetrics(registry: Registry, cluster: Cluster): void {
  const registers = [registry];
  const gauge = (name: string, help: string, value: () => number) =>
    new Gauge({ name, help, registers, collect() { this.set(value()); } });
  gauge('image_server_cluster_etcd_up', 'Whether etcd answered the last call (1) or not (0)',
    () => (cluster.status().etcd === 'up' ? 1 : 0));
  gauge('image_server_cluster_peers', 'Other servers alive in the cluster', () => cluster.status().peers);
  gauge('image_server_cluster_indexed_images', 'Images in the cluster index', () => cluster.status().indexed);
  gauge('image_server_cluster_pending_pulls', 'Indexed images this server does not hold yet', () => cluster.status().pending);
  gauge('image_server_cluster_failed_pulls', 'Indexed images no holder has good bytes of; pulled again when a holder changes',
    () => cluster.status().failed);
  gauge('image_server_cluster_lag_seconds', 'Seconds since this server was last level with the cluster index (0: it is)',
    () => cluster.status().lag_seconds);
  const reported = { succeeded: 0, failed: 0 };
  new Counter({
    name: 'image_server_cluster_pulls_total',
    help: 'Files pulled from peers, by result (succeeded or failed)',
    labelNames: ['result'],
    registers,
    collect() {
      const counts = cluster.pullCounts();
      for (const result of ['succeeded', 'failed'] as const) {
        this.inc({ result }, counts[result] - reported[result]);
        reported[result] = counts[result];
      }
    },
  });
}

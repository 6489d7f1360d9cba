// rcluster is node:cluster: the same module shape, events and types, taken
// from @types/node's `cluster` module, plus what rcluster adds (Extensions).
// index.d.mts gives the same to `import`.
import type * as nodeCluster from 'node:cluster';

declare namespace rcluster {
  type Worker = nodeCluster.Worker;
  type ClusterSettings = nodeCluster.ClusterSettings;
  type Address = nodeCluster.Address;

  /** What the native dispatcher sees (primary only). */
  interface DispatcherStats {
    listeners: Array<{ id: number; key: string; workers: number[]; accepted: number; pending: number }>;
    workers: Array<{ id: number; inFlight: number; accepted: number }>;
  }

  /** rcluster's additions to node:cluster's API (primary only). */
  interface Extensions {
    /** Listeners and per-worker connection counts from the native dispatcher. */
    stats(): DispatcherStats;
  }

  /**
   * The cluster object: everything @types/node declares for node:cluster, so
   * rcluster can stand wherever `typeof import('node:cluster').default` is
   * expected, and the Extensions.
   */
  interface Cluster extends nodeCluster.Cluster, Extensions {
    /** The Worker class, as on node:cluster's object (@types/node leaves it out). */
    readonly Worker: typeof nodeCluster.Worker;
  }
}

declare const rcluster: rcluster.Cluster;

export = rcluster;

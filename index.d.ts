// rcluster is node:cluster: the same module shape, events and types.
// Types come from @types/node's `cluster` module; rcluster adds `stats()`.
import type nodeCluster from 'node:cluster';

declare namespace rcluster {
  /** What the native dispatcher sees (primary only). */
  interface DispatcherStats {
    listeners: Array<{ id: number; key: string; workers: number[]; accepted: number; pending: number }>;
    workers: Array<{ id: number; inFlight: number; accepted: number }>;
  }
}

declare const rcluster: typeof nodeCluster & {
  /** Listeners and per-worker connection counts from the native dispatcher (primary only). */
  stats(): rcluster.DispatcherStats;
};

export = rcluster;

// rcluster is node:cluster: the same module shape, events and types.
// Types come from @types/node's `cluster` module; rcluster adds `stats()` and
// opt-in worker management (restart policy, shutdown, graceful exit on errors).
import type nodeCluster from 'node:cluster';
import type { ClusterSettings, Worker } from 'node:cluster';

declare namespace rcluster {
  /** What the native dispatcher sees (primary only). */
  interface DispatcherStats {
    listeners: Array<{ id: number; key: string; workers: number[]; accepted: number; pending: number }>;
    workers: Array<{ id: number; inFlight: number; accepted: number }>;
  }

  /** `setupPrimary({ restart })`. All times in milliseconds. */
  interface RestartOptions {
    /** Delay before the first restart after a stable run. Default 100. */
    minDelay?: number;
    /** Cap of the delay, which doubles per consecutive crash. Default 15000. */
    maxDelay?: number;
    /** A worker that ran this long starts the backoff over. Default 30000. */
    resetAfter?: number;
    /** More restarts than this within `window` is a crash loop. Default 10. */
    maxRestarts?: number;
    /** Default 60000. */
    window?: number;
  }

  interface Settings extends ClusterSettings {
    /**
     * Replace workers that exit without exitedAfterDisconnect (crash, signal,
     * process.exit() without disconnect), with the env of the original fork.
     * Workers stopped by disconnect(), by the primary's worker.kill() or by
     * cluster.shutdown() are not replaced. Off by default.
     */
    restart?: boolean | RestartOptions;
    /** Signals on which the primary runs cluster.shutdown() then exits 0; a second one kills at once. Default none. */
    shutdownSignals?: NodeJS.Signals[];
    /** Deadline of cluster.shutdown() and of the signal handlers. Default 30000. */
    shutdownTimeout?: number;
    /**
     * After an uncaught exception a worker closes its servers, finishes its
     * requests in progress and exits with code 1 (after `timeout` ms at most,
     * default 5000); its replacement is forked at once. Off by default.
     */
    exitOnUncaughtException?: boolean | { timeout?: number };
  }

  interface ShutdownSummary {
    /** Workers that were alive when the shutdown started. */
    workers: number;
    /** How many of them had to be SIGKILLed at the deadline. */
    killed: number;
  }

  interface RestartInfo {
    /** Consecutive crashes in this worker's slot, this one included. */
    attempt: number;
    /** Milliseconds waited before the fork. */
    delay: number;
    /** How long the replaced worker ran, in milliseconds. */
    uptime: number;
    code: number | null;
    signal: NodeJS.Signals | null;
    reason: 'exit' | 'signal' | 'uncaughtException' | 'forkFailed';
    /** For 'uncaughtException': the worker's error, as it reported it. */
    error?: { name: string; message: string };
  }

  interface CrashLoopInfo {
    restarts: number;
    maxRestarts: number;
    window: number;
    /** The worker whose exit exceeded the budget. */
    worker: Worker;
    code: number | null;
    signal: NodeJS.Signals | null;
    reason: RestartInfo['reason'];
  }

  interface ManagedWorker extends Worker {
    /** Replacements so far in this worker's slot (0 for an original fork). */
    restarts: number;
    /** Id of the worker this one replaced, if it is a replacement. */
    replaces?: number;
  }
}

// rcluster's own members come first, so that their event overloads are picked
// before node:cluster's catch-all `on(event: string, ...)`.
declare const rcluster: {
  setupPrimary(settings?: rcluster.Settings): void;
  setupMaster(settings?: rcluster.Settings): void;
  readonly settings: rcluster.Settings;
  /** Listeners and per-worker connection counts from the native dispatcher (primary only). */
  stats(): rcluster.DispatcherStats;
  /**
   * Stops the restart policy, disconnects every worker (each closes its
   * servers and finishes its requests), SIGKILLs what is left after
   * `timeout` ms (default: shutdownTimeout, else 30000). The same promise on
   * every call. Emits 'shutdown' with the summary.
   */
  shutdown(options?: { timeout?: number }): Promise<rcluster.ShutdownSummary>;
  /** Restarts decided but not forked yet (waiting for their delay). */
  readonly pendingRestarts: number;
  on(event: 'restart', listener: (worker: rcluster.ManagedWorker, oldWorker: rcluster.ManagedWorker, info: rcluster.RestartInfo) => void): typeof rcluster;
  on(event: 'crashloop', listener: (info: rcluster.CrashLoopInfo) => void): typeof rcluster;
  on(event: 'shutdown', listener: (summary: rcluster.ShutdownSummary) => void): typeof rcluster;
  once(event: 'restart', listener: (worker: rcluster.ManagedWorker, oldWorker: rcluster.ManagedWorker, info: rcluster.RestartInfo) => void): typeof rcluster;
  once(event: 'crashloop', listener: (info: rcluster.CrashLoopInfo) => void): typeof rcluster;
  once(event: 'shutdown', listener: (summary: rcluster.ShutdownSummary) => void): typeof rcluster;
} & Omit<typeof nodeCluster, 'setupPrimary' | 'setupMaster' | 'settings'>;

export = rcluster;

// rcluster is node:cluster: the same module shape, events and types, taken
// from @types/node's `cluster` module, plus what rcluster adds (Extensions):
// `stats()`, `queueTimeout`, and opt-in worker management (restart policy,
// shutdown, graceful exit on errors). index.d.mts gives the same to `import`.
import type * as nodeCluster from 'node:cluster';
import type { EventEmitter } from 'node:events';

declare namespace rcluster {
  type Worker = nodeCluster.Worker;
  type ClusterSettings = nodeCluster.ClusterSettings;
  type Address = nodeCluster.Address;

  /** What the native dispatcher sees (primary only). */
  interface DispatcherStats {
    listeners: Array<{
      id: number;
      key: string;
      workers: number[];
      accepted: number;
      /** Connections the primary holds for a worker (none listens, or all refused). */
      pending: number;
      /** Connections closed after waiting longer than `queueTimeout`. */
      expired: number;
      /** Its scheduling policy. */
      policy: 'rr' | 'none' | 'lc' | 'sticky' | 'reuseport';
      /** Its listening sockets: 1, or one per worker slot under SCHED_REUSEPORT. */
      sockets: number;
      /** Whether they hold each connection until its first bytes arrive (TCP_DEFER_ACCEPT). */
      deferAccept: boolean;
      /** Per worker in its rotation: connections it holds open, and its server's maxConnections if set. */
      connections: Array<{ worker: number; open: number; maxConnections?: number }>;
      /** Connections closed for a malformed or late PROXY header, or from an untrusted peer. */
      proxyRejected: number;
      /** Connections waiting in its header stage (a PROXY header, or a sticky request's head). */
      stageWaiting: number;
      /** Most that may wait there at once; absent where the listener has no header stage. */
      stageBudget?: number;
      /** Connections that waited past the stage's deadline. */
      stageExpired: number;
    }>;
    workers: Array<{
      id: number;
      inFlight: number;
      accepted: number;
      /**
       * How long the worker's event loop has been busy, in ms, by the loop
       * stamp the dispatcher reads (0 while it waits for I/O). Absent before
       * the worker's first stamp.
       */
      loopBusyMs?: number;
      /** Time since the worker's event loop last entered or left its wait for I/O, in ms. Absent before its first stamp. */
      lastTurnAgeMs?: number;
    }>;
    /**
     * Time from the primary's accept of a connection to the acknowledgement
     * of the worker that took it: `buckets[i]` counts times <= `bounds[i]`
     * seconds (cumulative); `count` and `sum` (seconds) cover them all.
     * Absent before the first worker is forked.
     */
    ackLatency?: { bounds: number[]; buckets: number[]; count: number; sum: number };
    /** Offers of a connection that a worker refused (maxConnections, closing). */
    refused?: number;
    /**
     * Connections taken back unread from a worker whose event loop stayed
     * busy, and dealt to another (docs/routing.md). Absent before the first
     * worker is forked.
     */
    takenBack?: number;
    /** How many dispatcher threads run. Absent before the first worker is forked. */
    dispatcherThreads?: number;
    /**
     * Untrusted input this process refused, by surface (`busRecord`,
     * `proxyHeader`, `sharedMemory`, ...): see docs/SECURITY.md.
     */
    rejected: Record<string, number>;
  }

  /** `setupPrimary({ routing })`. */
  interface RoutingOptions {
    /**
     * Connections start with a PROXY protocol header (v1 or v2, as HAProxy,
     * nginx or an AWS NLB send): the primary reads and strips it, and the
     * worker's socket shows the client it names as remoteAddress/remotePort.
     * `true` accepts it from any peer; `trusted` only from those blocks
     * (`'10.0.0.0/8'`, `'::1'`). A connection whose header is malformed, late
     * (`timeout` ms, default 3000) or from another peer is closed and counted
     * (`stats().listeners[].proxyRejected`). No effect under SCHED_NONE.
     */
    proxyProtocol?: boolean | { trusted?: string[]; timeout?: number };
    /**
     * SCHED_STICKY by a query parameter (socket.io: `{ query: 'sid' }`) or a
     * cookie of each connection's first request (plaintext HTTP only),
     * instead of the client's address. The dispatcher peeks at up to 8 KiB for
     * up to `timeout` ms (default 1000); a connection without the value goes
     * to the next worker in turn. A session reaches the worker that called
     * `cluster.worker.stick(id)` for it, else the one its id hashes to.
     */
    sticky?: { query: string; timeout?: number } | { cookie: string; timeout?: number };
    /**
     * SCHED_REUSEPORT, for a server whose clients speak first (an
     * http/https/http2 secure or tls server): the kernel holds each
     * connection until its first bytes arrive (TCP_DEFER_ACCEPT, as nginx's
     * `deferred`), so a worker accepts a request it can read at once. A
     * connection that sends nothing reaches the server after about a second.
     * Default true; never for other servers.
     */
    deferAccept?: boolean;
    /**
     * Least connections (and sticky routing for a connection without a key)
     * passes over a worker whose event loop has been busy longer than this,
     * in ms, while another can take the connection. Default 1; 0 to 2147483647,
     * fractions allowed. Round-robin passes over a worker only when it has
     * left a connection unread for 1 ms and its loop is busy past this, and
     * for 10 ms at least, too.
     */
    busyThreshold?: number;
    /**
     * How many native dispatcher threads share the workers: each accepts
     * from the same listening sockets and deals to its own share of the
     * workers (docs/DESIGN.md §16). Default 'auto': one per 8 CPUs, so one
     * below 16 CPUs, where round-robin is one exact rotation. Also
     * `RCLUSTER_DISPATCHER_THREADS`. 1 to 64.
     */
    dispatcherThreads?: number | 'auto';
  }

  /** `setupPrimary({ restart })`. All times in milliseconds. */
  interface RestartOptions {
    /** Delay before the first restart after a stable run. Default 100. */
    minDelay?: number;
    /** Cap of the delay, which doubles per consecutive crash. Default 15000. */
    maxDelay?: number;
    /** A worker that ran this long starts the backoff over. Default 30000. */
    resetAfter?: number;
    /**
     * A worker that dies sooner failed to start (PM2's min_uptime): only such
     * crashes count toward maxRestarts. One alive, ready and up this long is
     * healthy. Default 1000.
     */
    minUptime?: number;
    /**
     * More crashes of workers up less than minUptime than this within
     * `window`, with no worker healthy within it, is a crash loop. Default 10.
     */
    maxRestarts?: number;
    /** Default 60000. */
    window?: number;
  }

  interface Settings extends nodeCluster.ClusterSettings {
    /**
     * Longest a connection waits in the primary for a worker to take it (no
     * worker listens on its socket, or every one refuses it at
     * maxConnections), in milliseconds; then it is closed. Default 30000;
     * Infinity for no limit. Read when the first worker is forked.
     */
    queueTimeout?: number;
    /** Routing options (read when the first worker is forked). */
    routing?: RoutingOptions;
    /**
     * Replace workers that exit without exitedAfterDisconnect (crash, signal,
     * process.exit() without disconnect), with the env of the original fork.
     * Workers stopped by disconnect(), by the primary's worker.kill() or by
     * cluster.shutdown() are not replaced. Off by default.
     */
    restart?: boolean | RestartOptions;
    /**
     * Signals on which the primary runs cluster.shutdown() then exits 0 (1 if a
     * worker had to be SIGKILLed at shutdownTimeout); a second one kills at once.
     * Default none.
     */
    shutdownSignals?: NodeJS.Signals[];
    /** Deadline of cluster.shutdown() and of the signal handlers. Default 30000. */
    shutdownTimeout?: number;
    /**
     * After an uncaught exception a worker closes its servers, finishes its
     * requests in progress and exits with code 1 (after `timeout` ms at most,
     * default 5000); its replacement is forked at once. Off by default.
     */
    exitOnUncaughtException?: boolean | { timeout?: number };
    /**
     * The agent: one process beside the workers, forked before them; workers
     * forked before it is ready wait for it. A path, or { exec, args, env }.
     */
    agent?: string | { exec: string; args?: string[]; env?: NodeJS.ProcessEnv };
    /** How long the agent may take to be ready before it is restarted. Default 30000. */
    agentReadyTimeout?: number;
    /** Across machines: broadcasts, sends to 'machine/target' and counter sums through Redis pub/sub. */
    bus?: BusOptions;
    /**
     * How long a replacement (cluster.reload(), recycling) may take to be
     * ready before it is killed and the rollover aborted. Default 30000.
     */
    readyTimeout?: number;
    /**
     * How long a replaced worker may take to finish its requests in progress
     * before it is SIGKILLed. Default 30000.
     */
    drainTimeout?: number;
    /**
     * A replacement is ready once it calls cluster.worker.ready() or
     * process.send('ready') (PM2's wait_ready), not once it listens on the
     * old worker's addresses. Default false.
     */
    waitReady?: boolean;
    /** How cluster.reload() proves the new workers before it retires the old ones. */
    reload?: ReloadOptions;
    /** A signal on which the primary runs cluster.reload(), e.g. 'SIGHUP'. Default none. */
    reloadSignal?: NodeJS.Signals | false;
    /** Replace a worker gracefully (replacement first) past a limit. Off by default. */
    recycle?: RecycleOptions | false;
    /**
     * Hang detection: each worker's event loop sends heartbeats to the native
     * dispatcher. Read when the first worker is forked. Off by default.
     */
    health?: HealthOptions | false;
  }

  interface BusOptions {
    /** redis:// or rediss:// URL. Needs the optional peer dependency `ioredis`. */
    redis?: string;
    /** Prefix of the Redis channels; machines with the same one form one cluster. Default 'rcluster'. */
    namespace?: string;
    /** How often counters are exchanged, in ms (1 to 100). Default 100. */
    syncInterval?: number;
  }

  /** Who sent a bus message: a worker id, 'agent', 'primary', or 'machine/sender' from another machine. */
  type BusPeer = number | 'agent' | 'primary' | string;

  /** cluster.bus: the same in the primary, every worker and the agent. */
  interface Bus extends EventEmitter {
    /** This machine's id with bus.redis, else null. */
    readonly machine: string | null;
    /** To every worker and the agent (on every machine, with bus.redis). */
    broadcast(topic: string, data?: unknown): void;
    /** To a worker id, 'agent', 'primary', or 'machine/target' (bus.redis). */
    send(target: BusPeer, topic: string, data?: unknown): void;
    on(topic: string, listener: (data: any, from: BusPeer) => void): this;
    once(topic: string, listener: (data: any, from: BusPeer) => void): this;
    /** Resolves with what the target's responder returns; rejects if it dies, at `timeout` (10000), or with its error. */
    request<T = any>(target: number | 'agent' | 'primary', topic: string, data?: unknown, options?: { timeout?: number }): Promise<T>;
    respond(topic: string, fn: (data: any, from: BusPeer) => unknown): this;
  }

  interface SharedCounter {
    readonly name: string;
    /** Adds n (default 1); returns the new value (with bus.redis: the latest known total). */
    add(n?: number): number;
    get(): number;
    /** This machine's part. */
    local(): number;
    /** On this machine's part only. */
    compareAndSet(expected: number, value: number): boolean;
    /** Exchanges parts with the other machines now (bus.redis); resolves with get(). */
    sync(): Promise<number>;
  }

  /** cluster.shared: counters and a small key/value table in shared memory. */
  interface SharedState {
    readonly limits: { counters: number; nameMax: number; tableKeys: number; valueMax: number };
    counter(name: string): SharedCounter;
    counters(): Record<string, number>;
    get(key: string): unknown;
    set(key: string, value: unknown): void;
    delete(key: string): void;
    keys(): string[];
  }

  /** The primary's handle on the agent (not in cluster.workers). */
  interface AgentHandle extends EventEmitter {
    readonly id: 'agent';
    readonly isAgent: true;
    readonly process: import('child_process').ChildProcess;
    state: 'none' | 'starting' | 'ready' | 'dead';
    restarts: number;
    send(message: unknown, ...args: any[]): boolean;
    kill(signal?: NodeJS.Signals): boolean;
    isConnected(): boolean;
    isDead(): boolean;
  }

  interface RecycleOptions {
    /**
     * RSS limits. A size (bytes, or '300M', '1G': PM2's max_memory_restart)
     * is the soft limit: past it a worker is recycled. Past the hard limit
     * (1.5 times the soft one unless given) a worker is SIGKILLed, whatever
     * its state, draining included. cluster.settings holds `{ soft, hard }`
     * in bytes.
     */
    maxMemory?: number | string | { soft: number | string; hard?: number | string };
    /** Requests ('request' events of its HTTP servers) a worker serves before it is recycled. */
    maxRequests?: number;
    /** Milliseconds a worker runs before it is recycled. */
    maxAge?: number;
    /** 0..1: each worker's maxRequests/maxAge is drawn from [limit, limit * (1 + jitter)]. Default 0. */
    jitter?: number;
    /** A 5-field cron schedule (PM2's cron_restart) at which every worker is recycled in turn. */
    cron?: string;
  }

  /** At least one of the two. */
  interface HealthOptions {
    /** A worker that sends no heartbeat for this many ms is withdrawn, replaced first, then killed ('unhealthy', reason 'hung'). */
    hangTimeout?: number;
    /**
     * A worker whose event-loop delay (99th percentile over a 1 s window)
     * exceeds this many ms is withdrawn, replaced first, then killed
     * ('unhealthy', reason 'eventLoopDelay').
     */
    maxEventLoopDelay?: number;
  }

  interface RecycleInfo {
    /** 'maxMemoryHard': the worker passed the hard memory limit, or was growing past it before the next sample, and was SIGKILLed (it may have been recycled for 'maxMemory' before). */
    reason: 'maxMemory' | 'maxMemoryHard' | 'maxRequests' | 'maxAge' | 'cron';
    /** For 'maxMemory' and 'maxMemoryHard': the RSS sampled, the soft limit and the hard one, in bytes. */
    rss?: number;
    maxMemory?: number;
    hard?: number;
    /** For 'maxMemoryHard': the RSS its growth since the previous sample would reach 300 ms later, in bytes. */
    projected?: number;
    /** For 'maxRequests': the requests served. */
    requests?: number;
    /** For 'maxAge': how long it had run, in ms. */
    age?: number;
  }

  interface ReloadOptions {
    /**
     * Once the last new worker is ready, every new worker must stay up this
     * long (ms) before the old workers are retired; meanwhile both serve. A
     * new worker that dies before rolls the reload back. 0: each old worker
     * is retired as soon as its replacement is ready. Default 3000.
     */
    probation?: number;
  }

  /** What cluster.reload() resolves with (also emitted as 'reload'). */
  interface ReloadResult {
    /** Every worker replaced. */
    ok: boolean;
    /**
     * Each old worker's id, its replacement's, and whether the old one had to
     * be SIGKILLed at drainTimeout. Empty when the reload was rolled back.
     */
    replaced: Array<{ old: number; replacement: number; killed: boolean }>;
    /**
     * Why the reload stopped (ok false): a new worker exited before it was
     * ready, was not ready within readyTimeout, died during the probation,
     * could not be forked, or the cluster began shutting down.
     */
    reason?: 'readyTimeout' | 'exited' | 'probation' | 'forkFailed' | 'shutdown';
    /**
     * ok false: true if every new worker was withdrawn and retired and the old
     * workers serve on, untouched (a reload with a probation); false if the
     * workers in `replaced` stay replaced (probation 0).
     */
    rolledBack?: boolean;
    /** The worker that was to be replaced (it stays), and its failed replacement. */
    old?: number;
    replacement?: number;
    /** For 'exited' and 'probation': how the replacement exited. */
    code?: number | null;
    signal?: NodeJS.Signals | null;
    /** For 'probation': how long (ms) the replacement had been ready when it died, and the probation. */
    uptime?: number;
    probation?: number;
    /** For 'readyTimeout': readyTimeout in ms. */
    timeout?: number;
    /** For 'forkFailed'. */
    error?: Error;
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
    /** It ran less than restart.minUptime (or its fork failed): the crash counts toward maxRestarts. */
    young: boolean;
    code: number | null;
    signal: NodeJS.Signals | null;
    /** A worker the primary killed as unhealthy is replaced for the same `reason`. */
    reason: 'exit' | 'signal' | 'uncaughtException' | 'forkFailed' | UnhealthyInfo['reason'];
    /** For 'uncaughtException': the worker's error, as it reported it. */
    error?: { name: string; message: string };
  }

  /**
   * Why the primary found a worker broken ('unhealthy'; it is then SIGKILLed,
   * and replaced under the restart policy).
   */
  interface UnhealthyInfo {
    /**
     * 'channelFailed': the worker broke its private channel to the native
     * dispatcher (junk on it, a failed read), so it could be sent nothing.
     * 'hung': it sent no heartbeat for longer than health.hangTimeout; the
     * dispatcher withdrew it at once, and its replacement is forked before
     * it is killed. 'eventLoopDelay': its event loop lagged past
     * health.maxEventLoopDelay; replaced first, then killed.
     */
    reason: 'channelFailed' | 'hung' | 'eventLoopDelay';
    /** What went wrong, in words. */
    detail: string;
  }

  interface CrashLoopInfo {
    /** Crashes of workers up less than minUptime within `window`, before this one. */
    restarts: number;
    maxRestarts: number;
    window: number;
    minUptime: number;
    /** The worker whose exit exceeded the budget. */
    worker: Worker;
    code: number | null;
    signal: NodeJS.Signals | null;
    reason: RestartInfo['reason'];
  }

  interface ManagedWorker extends nodeCluster.Worker {
    /** Replacements so far in this worker's slot (0 for an original fork). */
    restarts: number;
    /** Id of the worker this one replaced, if it is a replacement. */
    replaces?: number;
    /** In a worker: this worker is ready to take over (setupPrimary({ waitReady: true })). */
    ready(): void;
  }

  /** rcluster's additions to node:cluster's API (primary only). */
  interface Extensions {
    /** Listeners and per-worker connection counts from the native dispatcher. */
    stats(): DispatcherStats;
    /** `schedulingPolicy`: each new connection to the worker holding the fewest open (`NODE_CLUSTER_SCHED_POLICY=lc`). */
    readonly SCHED_LC: 3;
    /** `schedulingPolicy`: connections by client address, the same client to the same worker (`NODE_CLUSTER_SCHED_POLICY=sticky`). */
    readonly SCHED_STICKY: 4;
    /** `schedulingPolicy`: each worker accepts from a SO_REUSEPORT socket of its own, kept by the primary (`NODE_CLUSTER_SCHED_POLICY=reuseport`). */
    readonly SCHED_REUSEPORT: 5;
    /**
     * Under the `rcluster` command only (in the primary and in every worker):
     * the Prometheus text its --metrics serves, for an app that serves its own
     * /metrics. Undefined elsewhere.
     */
    metrics?(): Promise<string>;
    /**
     * Stops the restart policy, disconnects every worker (each closes its
     * servers and finishes its requests), SIGKILLs what is left after
     * `timeout` ms (default: shutdownTimeout, else 30000). The same promise on
     * every call. Emits 'shutdown' with the summary.
     */
    shutdown(options?: { timeout?: number }): Promise<ShutdownSummary>;
    /** Restarts decided but not forked yet (waiting for their delay). */
    readonly pendingRestarts: number;
    /** Messages between the primary, the workers and the agent (every process). */
    readonly bus: Bus;
    /** Counters and a key/value table in shared memory (every process). */
    readonly shared: SharedState;
    /** True in the agent only. */
    readonly isAgent: boolean;
    /** In the primary, the agent's handle (null without one); in the agent, { ready() }. */
    readonly agent: AgentHandle | { ready(): void } | null;
    /**
     * Replaces every worker: forks the replacements `concurrency` at a time
     * (default 1), each must be ready, then all must stay up for `probation`
     * ms (default setupPrimary's reload.probation, 3000) while the old workers
     * serve on; then each old worker is withdrawn from every rotation and
     * drains. A replacement that dies, or is not ready within readyTimeout,
     * rolls the reload back: the replacements are retired, the old workers
     * stay. With probation 0, each old worker is retired as soon as its
     * replacement is ready. During a reload, the same promise. Emits 'reload'
     * with the result.
     */
    reload(options?: { concurrency?: number; probation?: number }): Promise<ReloadResult>;
    /**
     * Sets the number of live workers (primary only): forks the missing ones
     * with cluster.fork() and the settings of setupPrimary(), or retires the
     * surplus as a reload retires an old worker (out of every rotation,
     * disconnected, SIGKILLed after drainTimeout), the newest first (by the
     * age of a worker's line: a replacement keeps its predecessor's). A
     * restart pending counts as a worker, and is cancelled if its line is
     * retired. Resolves with the number of live workers once `n` is reached
     * (the new workers ready, the retired ones exited), or once nothing more
     * is on its way (a new worker died unreplaced). `n`: an integer from 0 to
     * 4096, else ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE.
     */
    scale(n: number): Promise<number>;
  }

  /**
   * The cluster object: everything @types/node declares for node:cluster, so
   * rcluster can stand wherever `typeof import('node:cluster').default` is
   * expected, and the Extensions.
   */
  interface Cluster extends nodeCluster.Cluster, Extensions {
    /** The Worker class, as on node:cluster's object (@types/node leaves it out). */
    readonly Worker: typeof nodeCluster.Worker;
    readonly settings: Settings;
    /** In a worker. */
    readonly worker?: ManagedWorker;
    setupPrimary(settings?: Settings): void;
    setupMaster(settings?: Settings): void;
    // rcluster's events, then a catch-all like the first overload
    // @types/node declares, which also covers node:cluster's own events.
    on(event: 'restart', listener: (worker: ManagedWorker, oldWorker: ManagedWorker, info: RestartInfo) => void): this;
    on(event: 'crashloop', listener: (info: CrashLoopInfo) => void): this;
    on(event: 'shutdown', listener: (summary: ShutdownSummary) => void): this;
    on(event: 'unhealthy', listener: (worker: ManagedWorker, info: UnhealthyInfo) => void): this;
    on(event: 'agentError', listener: (error: Error, agent: AgentHandle) => void): this;
    on(event: 'agentReady', listener: (agent: AgentHandle) => void): this;
    on(event: 'agentExit', listener: (agent: AgentHandle, code: number | null, signal: NodeJS.Signals | null) => void): this;
    on(event: 'recycle', listener: (worker: ManagedWorker, info: RecycleInfo) => void): this;
    on(event: 'reload', listener: (result: ReloadResult) => void): this;
    on(event: string | symbol, listener: (...args: any[]) => void): this;
    once(event: 'restart', listener: (worker: ManagedWorker, oldWorker: ManagedWorker, info: RestartInfo) => void): this;
    once(event: 'crashloop', listener: (info: CrashLoopInfo) => void): this;
    once(event: 'shutdown', listener: (summary: ShutdownSummary) => void): this;
    once(event: 'unhealthy', listener: (worker: ManagedWorker, info: UnhealthyInfo) => void): this;
    once(event: 'agentError', listener: (error: Error, agent: AgentHandle) => void): this;
    once(event: 'agentReady', listener: (agent: AgentHandle) => void): this;
    once(event: 'recycle', listener: (worker: ManagedWorker, info: RecycleInfo) => void): this;
    once(event: 'reload', listener: (result: ReloadResult) => void): this;
    once(event: string | symbol, listener: (...args: any[]) => void): this;
  }
}

declare const rcluster: rcluster.Cluster;

export = rcluster;

// Checked by packaging/types.test.js with `tsc --noEmit`, never run. CommonJS form:
// `require('rcluster')` where code expects node:cluster.
import cluster = require('rcluster');
import nodeCluster from 'node:cluster';
import type { Worker as NodeWorker, ClusterSettings, Address } from 'node:cluster';

type NodeCluster = typeof import('node:cluster').default;

// rcluster can stand wherever node:cluster is expected.
const asNode: NodeCluster = cluster;
function takesNodeCluster(c: typeof nodeCluster): boolean {
  return c.isPrimary;
}
takesNodeCluster(cluster);

// Its members have node:cluster's types.
const settings: ClusterSettings = { exec: 'worker.js', args: ['--x'], silent: false, inspectPort: () => 9229 };
cluster.setupPrimary(settings);
cluster.setupMaster({ serialization: 'advanced' });
const w: NodeWorker = cluster.fork({ PORT: '8080' });
const w2: cluster.Worker = w;
w2.on('listening', (address: Address) => address.port);
cluster.on('exit', (worker: NodeWorker, code: number, signal: string) => [worker.id, code, signal]);
cluster.on('setup', (s: ClusterSettings) => s.exec);
cluster.disconnect(() => {});
const policy: number = cluster.schedulingPolicy === cluster.SCHED_RR ? cluster.SCHED_RR : cluster.SCHED_NONE;
const self: NodeWorker | undefined = cluster.worker;
const all = cluster.workers;
if (all) for (const id of Object.keys(all)) all[id]?.send({ hello: id });
const WorkerClass: typeof NodeWorker = cluster.Worker;

// rcluster's additions are declared.
const stats: cluster.DispatcherStats = cluster.stats();
const accepted: number = stats.workers.reduce((n, x) => n + x.accepted, 0);
const busiest: number = Math.max(0, ...stats.workers.map((x) => x.loopBusyMs ?? 0));
const takenBack: number = stats.takenBack ?? 0;
cluster.setupPrimary({ routing: { busyThreshold: 2 } });
// @ts-expect-error busyThreshold is milliseconds, a number
cluster.setupPrimary({ routing: { busyThreshold: '2' } });
const extensions: cluster.Extensions = cluster;

// And typed: the test fails if these were `any`.
// @ts-expect-error settings.exec is a path string
cluster.setupPrimary({ exec: 42 });
// @ts-expect-error stats() returns the dispatcher's numbers, not a string
const notStats: string = cluster.stats();
// @ts-expect-error node:cluster has no such member, and rcluster adds none
cluster.notAClusterMethod();

export { asNode, w, policy, self, WorkerClass, accepted, busiest, takenBack, extensions, notStats };

// Worker management and queueTimeout are declared and typed.
cluster.setupPrimary({ queueTimeout: 5000, restart: { minDelay: 50, minUptime: 2000 }, shutdownSignals: ['SIGTERM'], exitOnUncaughtException: true });
cluster.on('restart', (nw, old, info) => [nw.restarts, old.id, info.delay, info.reason, info.young === true]);
cluster.on('crashloop', (info) => [info.restarts, info.minUptime, info.worker.id]);
cluster.on('unhealthy', (w, info) => [w.restarts, info.reason === 'channelFailed', info.detail.length]);
cluster.on('exit', (worker, code) => [worker.id, code]);
const summary: Promise<cluster.ShutdownSummary> = cluster.shutdown({ timeout: 1000 });
// @ts-expect-error queueTimeout is a number of milliseconds
cluster.setupPrimary({ queueTimeout: '5s' });
export { summary };

// The agent, the bus and shared state.
cluster.setupPrimary({ agent: { exec: 'agent.js', args: [], env: {} }, agentReadyTimeout: 1000, bus: { redis: 'redis://127.0.0.1:6379' } });
cluster.setupPrimary({ agent: 'agent.js' });
const hits: number = cluster.shared.counter('hits').add();
const swapped: boolean = cluster.shared.counter('hits').compareAndSet(hits, 0);
void swapped;
cluster.shared.counter('hits').sync().then((n: number) => n);
cluster.shared.set('k', { a: 1 });
cluster.bus.broadcast('topic', { x: 1 });
cluster.bus.send('agent', 'topic', 1);
cluster.bus.on('topic', (data: unknown, from: number | string) => void [data, from]);
cluster.bus.respond('add', ([a, b]: number[]) => a + b);
cluster.bus.request<number>(1, 'add', [1, 2], { timeout: 100 }).then((n: number) => n);
cluster.on('agentError', (err: Error) => void err.message);
const isAgent: boolean = cluster.isAgent;
void isAgent;
// Zero-downtime operations are declared and typed.
cluster.setupPrimary({
  readyTimeout: 10000, drainTimeout: 5000, waitReady: true, reloadSignal: 'SIGHUP',
  recycle: { maxMemory: '300M', maxRequests: 10000, maxAge: 3600000, jitter: 0.1, cron: '0 3 * * *' },
  health: { hangTimeout: 5000, maxEventLoopDelay: 500 },
});
const reloaded: Promise<cluster.ReloadResult> = cluster.reload({ concurrency: 2 });
reloaded.then((r) => [r.ok, r.replaced.map((x) => x.old + x.replacement), r.reason]);
cluster.on('recycle', (w, info) => [w.id, info.reason === 'maxMemory', info.rss]);
cluster.setupPrimary({ recycle: { maxMemory: { soft: '100M', hard: 200 * 1024 * 1024 } } });
cluster.on('recycle', (w, info) => [info.reason === 'maxMemoryHard', info.hard]);
// @ts-expect-error maxMemory's object form names its soft limit
cluster.setupPrimary({ recycle: { maxMemory: { hard: '200M' } } });
cluster.on('unhealthy', (w, info) => info.reason === 'hung');
cluster.worker?.ready();
// @ts-expect-error recycle.maxAge is a number of milliseconds
cluster.setupPrimary({ recycle: { maxAge: '1h' } });
// @ts-expect-error concurrency is a number
cluster.reload({ concurrency: 'all' });
const scaled: Promise<number> = cluster.scale(4);
// @ts-expect-error the count is a number
cluster.scale('4');
export { reloaded, scaled };

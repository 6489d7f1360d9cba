// Checked by packaging/types.test.js with `tsc --noEmit`, never run. ESM form: the
// default import and named imports of 'rcluster'.
import cluster, { isPrimary, isWorker, isMaster, fork, workers, setupPrimary, setupMaster, disconnect,
  settings, schedulingPolicy, SCHED_NONE, SCHED_RR, worker, stats, scale, Worker } from 'rcluster';
import type { DispatcherStats, ClusterSettings } from 'rcluster';
import nodeCluster from 'node:cluster';
import type { Worker as NodeWorker } from 'node:cluster';

const asNode: typeof nodeCluster = cluster;
const flags: boolean[] = [isPrimary, isWorker, isMaster];
setupPrimary({ exec: 'worker.mjs' } satisfies ClusterSettings);
setupMaster();
const w: NodeWorker = fork();
const sameClass: typeof NodeWorker = Worker;
const instance: Worker = w;
const list = workers;
const own = worker;
disconnect();
const s: ClusterSettings = settings;
const policies: number[] = [schedulingPolicy, SCHED_NONE, SCHED_RR];
const numbers: DispatcherStats = stats();
const scaled: Promise<number> = scale(2);

// @ts-expect-error named exports keep their types: isPrimary is a boolean
const wrong: string = isPrimary;

export { asNode, flags, sameClass, instance, list, own, s, policies, numbers, scaled, wrong };

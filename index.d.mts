// Types of index.mjs: the cluster object as the default export, and its
// properties as named exports. Those of the other role are undefined at run
// time (index.mjs says why), as the properties are on the cluster object.
import type { Cluster } from './index.js';

declare const cluster: Cluster;
export default cluster;

export type {
  Address, ClusterSettings, CrashLoopInfo, DispatcherStats, Extensions, HealthOptions, ManagedWorker, RecycleInfo,
  RecycleOptions, ReloadOptions, ReloadResult, RestartInfo, RestartOptions, Settings, ShutdownSummary, UnhealthyInfo,
  Bus, BusOptions, BusPeer, SharedCounter, SharedState, AgentHandle,
} from './index.js';
export { Worker } from 'node:cluster';

export declare const isWorker: Cluster['isWorker'];
export declare const isMaster: Cluster['isMaster'];
export declare const isPrimary: Cluster['isPrimary'];

// Primary.
export declare const workers: Cluster['workers'];
export declare const settings: Cluster['settings'];
export declare const SCHED_NONE: Cluster['SCHED_NONE'];
export declare const SCHED_RR: Cluster['SCHED_RR'];
export declare const schedulingPolicy: Cluster['schedulingPolicy'];
export declare const setupPrimary: Cluster['setupPrimary'];
export declare const setupMaster: Cluster['setupMaster'];
export declare const fork: Cluster['fork'];
export declare const disconnect: Cluster['disconnect'];
export declare const stats: Cluster['stats'];
export declare const shutdown: Cluster['shutdown'];
export declare const reload: Cluster['reload'];
export declare const scale: Cluster['scale'];

// Worker.
export declare const worker: Cluster['worker'];

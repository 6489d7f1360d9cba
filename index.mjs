// ESM entry point: `import cluster from 'rcluster'` and named imports. The
// cluster object is the CommonJS one (index.js), so `require('rcluster')`, the
// worker preload and this module are one cluster.
//
// node:cluster's ESM module exports the own properties of the cluster object,
// which differ between primary and worker (`fork` and `workers` only in the
// primary, `worker` only in a worker). An ES module's names are fixed before
// it runs, so this one exports the names of both roles; those of the other
// role are undefined, as the same properties are on the cluster object. Like
// node:cluster's, the named exports are the values at import time (assigning
// `cluster.schedulingPolicy` later does not change `schedulingPolicy`).
import cluster from './index.js';

export default cluster;

// Both roles.
export const isWorker = cluster.isWorker;
export const isMaster = cluster.isMaster;
export const isPrimary = cluster.isPrimary;
export const Worker = cluster.Worker;
export const _events = cluster._events;
export const _eventsCount = cluster._eventsCount;
export const _maxListeners = cluster._maxListeners;

// Primary.
export const workers = cluster.workers;
export const settings = cluster.settings;
export const SCHED_NONE = cluster.SCHED_NONE;
export const SCHED_RR = cluster.SCHED_RR;
export const schedulingPolicy = cluster.schedulingPolicy;
export const setupPrimary = cluster.setupPrimary;
export const setupMaster = cluster.setupMaster;
export const fork = cluster.fork;
export const disconnect = cluster.disconnect;

// Worker.
export const worker = cluster.worker;
export const _setupWorker = cluster._setupWorker;
export const _getServer = cluster._getServer;

// rcluster's additions to the primary's API.
export const stats = cluster.stats;
export const shutdown = cluster.shutdown;
export const reload = cluster.reload;
export const scale = cluster.scale;

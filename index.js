'use strict';
// rcluster: a drop-in replacement for node:cluster. As lib/cluster.js does in
// Node, this file only picks the role; lib/primary/cluster.js and lib/worker/cluster.js hold
// each side. The module is cached on a global symbol so that two copies of
// rcluster in one process (e.g. the preload's and the app's) are one cluster.
const kCluster = Symbol.for('rcluster.cluster');

if (globalThis[kCluster] === undefined) {
  const { fallbackReason, fallbackDetail } = require('./lib/native');
  if (fallbackReason !== null) {
    // Where rcluster cannot run, an app that required it still runs, on
    // Node's own cluster (the same API), and is told so once per process:
    // the global cache keeps this branch from running twice.
    globalThis[kCluster] = require('node:cluster');
    process.emitWarning(`rcluster is using node:cluster because ${fallbackReason}.`, {
      code: 'RCLUSTER_FALLBACK',
      detail: fallbackDetail,
    });
  } else {
    // The cluster object is Node's own (lib/builtin.js): from here on,
    // require('cluster') anywhere in this process gives rcluster.
    const { isWorker, isAgent } = require('./lib/role').role();
    const cluster = isAgent ? require('./lib/agent/cluster') : isWorker ? require('./lib/worker/cluster') : require('./lib/primary/cluster');
    if (isWorker) cluster._setupWorker();
    if (isAgent) cluster._setupAgent();
    require('./lib/builtin').syncExports();
    globalThis[kCluster] = cluster;
  }
}

module.exports = globalThis[kCluster];

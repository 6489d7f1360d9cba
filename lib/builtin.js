'use strict';
// rcluster's cluster object is Node's own `cluster` exports object, emptied
// and refilled. Every `require('cluster')` and `import 'node:cluster'` in the
// process returns that one object, including the ones libraries made before
// rcluster loaded, and so do Node's own lib/net.js and lib/dgram.js, which
// then see a worker as a worker (isPrimary false) and call
// cluster._getServer() exactly as in a node:cluster worker.
const { syncBuiltinESMExports } = require('module');

// EventEmitter state is kept: listeners a library added before rcluster
// loaded stay registered and hear rcluster's events.
const KEEP = new Set(['_events', '_eventsCount', '_maxListeners']);

// Node's lib/cluster.js picks its worker or primary module by
// `'NODE_UNIQUE_ID' in process.env`, once, on first load. A worker loads the
// worker module, so that the ES module names Node fixes at that first load
// are a node:cluster worker's (`worker`, not `fork`). The variable is set only
// in this process and only for that require: Node's bootstrap, which acts on
// it, has run already, and no child is spawned meanwhile.
function load(isWorker) {
  if (!isWorker || 'NODE_UNIQUE_ID' in process.env) return require('node:cluster');
  process.env.NODE_UNIQUE_ID = '0';
  try {
    return require('node:cluster');
  } finally {
    delete process.env.NODE_UNIQUE_ID;
  }
}

// Returns the builtin cluster object, emptied of Node's API, for rcluster's
// primary or worker module to fill. `null` when it must stay Node's: a
// node:cluster worker (run by PM2's cluster mode, say) that loads rcluster
// keeps node:cluster for Node's own listen path and the app's libraries.
function claim(isWorker) {
  const cluster = load(isWorker);
  if (!isWorker && cluster.isWorker === true) return null;
  for (const key of Object.getOwnPropertyNames(cluster)) {
    if (!KEEP.has(key)) delete cluster[key];
  }
  return cluster;
}

// ES module named imports of node:cluster are copies of the object's
// properties, made when first imported; this updates them.
function syncExports() {
  syncBuiltinESMExports();
}

module.exports = { claim, syncExports };

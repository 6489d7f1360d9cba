'use strict';
// Which side of the cluster this process is on. The primary marks a worker with
// its own variables, never NODE_UNIQUE_ID (Node's bootstrap would act on that).
// They are read once and removed from process.env at start-up, so processes a
// worker spawns are not mistaken for workers.
const path = require('path');

const WORKER_ID = 'RCLUSTER_WORKER_ID';
const CHANNEL_FD = 'RCLUSTER_CHANNEL_FD';
const kRole = Symbol.for('rcluster.role');
// The worker-side set-up the primary preloads into every worker.
const PRELOAD = path.join(__dirname, 'preload.js');

function role() {
  if (globalThis[kRole] === undefined) {
    const id = process.env[WORKER_ID];
    const fd = process.env[CHANNEL_FD];
    delete process.env[WORKER_ID];
    delete process.env[CHANNEL_FD];
    // Likewise the `--require` of the preload: process.execArgv shows what the
    // app set, as under node:cluster, and a worker's own forks don't inherit it.
    const i = process.execArgv.indexOf(PRELOAD);
    if (i > 0 && process.execArgv[i - 1] === '--require') process.execArgv.splice(i - 1, 2);
    globalThis[kRole] = id !== undefined && fd !== undefined ?
      { isWorker: true, id: Number(id), channelFd: Number(fd) } :
      { isWorker: false };
  }
  return globalThis[kRole];
}

module.exports = { role, WORKER_ID, CHANNEL_FD, PRELOAD };
